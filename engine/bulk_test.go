package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/store"
)

// withFlows loads more flows from testdata next to the harness's.
func withFlows(files ...string) option {
	return func(c *engine.Config) {
		defs, err := c.Loader.LoadFiles(files)
		if err != nil {
			panic(fmt.Sprintf("load %v: %v", files, err))
		}
		c.Definitions = append(c.Definitions, defs...)
	}
}

// drivenClock is the bundle's fake clock that also reports every wait the
// engine starts, so a test can advance the clock exactly as far as the bulk
// runner's rate limiter asks.
type drivenClock struct {
	*engine.FakeClock
	waits chan time.Duration
}

func (c *drivenClock) After(d time.Duration) <-chan time.Time {
	ch := c.FakeClock.After(d)
	select {
	case c.waits <- d:
	default:
	}
	return ch
}

// withDrivenClock wraps the bundle's fake clock in dc.
func withDrivenClock(dc *drivenClock) option {
	return func(c *engine.Config) {
		dc.FakeClock = c.Clock.(*engine.FakeClock)
		dc.waits = make(chan time.Duration, 1<<16)
		c.Clock = dc
	}
}

// drive advances the clock by each wait shorter than a second (the rate
// limiter's; the services' waits are longer) as it is asked for, n times
// (all, when n < 0), and returns a func that stops it and reports how often
// it advanced.
func (c *drivenClock) drive(n int) (stop func() int) {
	quit, done := make(chan struct{}), make(chan int)
	go func() {
		advanced := 0
		for n < 0 || advanced < n {
			select {
			case <-quit:
				done <- advanced
				return
			case d := <-c.waits:
				if d > 0 && d < time.Second {
					c.Advance(d)
					advanced++
				}
			}
		}
		<-quit
		done <- advanced
	}()
	return sync.OnceValue(func() int {
		close(quit)
		return <-done
	})
}

// escalate submits n tasks of the bulk flow that escalate at once with error
// code kind (and are ready for a retry from readyAt on), from 64 goroutines
// so that they share group commits, and returns their ids.
func (b *bundle) escalate(n int, kind string, readyAt time.Time) []uuid.UUID {
	b.t.Helper()
	ids := make([]uuid.UUID, n)
	errs := make(chan error, n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range jobs {
				data := map[string]any{"ready_at": json.Number(strconv.FormatInt(readyAt.Unix(), 10)), "kind": kind}
				v, _, err := b.eng.Submit(context.Background(), engine.SubmitRequest{Process: "bulk", Data: data})
				if err != nil {
					errs <- err
					continue
				}
				if v.Status != store.StatusEscalated {
					errs <- fmt.Errorf("task %s is %s, want escalated", v.ID, v.Status)
				}
				ids[i] = v.ID
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.t.Fatalf("submit: %v", err)
	}
	return ids
}

// waitJob waits (bounded) until the stored job satisfies pred.
func (b *bundle) waitJob(id uuid.UUID, what string, pred func(*store.Job) bool) *store.Job {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := b.st.Job(context.Background(), id)
		if err != nil {
			b.t.Fatal(err)
		}
		if pred(j) {
			return j
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("job %s never became %s: %+v", id, what, j)
		}
		select {
		case <-b.notify:
		case <-time.After(5 * time.Millisecond): // job writes do not notify
		}
	}
}

// waitCount waits (bounded) until n tasks stand in a node of the bulk flow.
func (b *bundle) waitCount(node string, n int64) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		counts, err := b.st.Counts(context.Background(), "bulk")
		if err != nil {
			b.t.Fatal(err)
		}
		var got int64
		for _, c := range counts {
			if c.Node == node {
				for _, k := range c.Now {
					got += k
				}
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%d tasks in %s, never %d", got, node, n)
		}
		select {
		case <-b.notify:
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// results reads every result of a job.
func (b *bundle) results(id uuid.UUID) []store.JobResult {
	b.t.Helper()
	var all []store.JobResult
	cursor := ""
	for {
		page, next, err := b.eng.JobResults(context.Background(), id, cursor, 1000)
		if err != nil {
			b.t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

// actions counts the history entries of a task with event that job wrote.
func (b *bundle) actions(id uuid.UUID, event, job string) int {
	b.t.Helper()
	n := 0
	for _, h := range b.history(id) {
		if h.Event == event && h.JobID == job {
			n++
		}
	}
	return n
}

var bulkFlows = withFlows("testdata/bulk.yaml")

func TestEngine_BulkDryRun(t *testing.T) {
	t.Parallel()
	b := setup(t, bulkFlows)
	ctx := context.Background()
	later := b.clock.Now().Add(time.Hour)
	limit := b.escalate(30, "limit", later)
	b.escalate(5, "other", later)
	for _, id := range limit[:2] { // canceled tasks stay in the node, finished
		if _, err := b.eng.Cancel(ctx, id, engine.Action{Actor: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	b.clock.Advance(10 * time.Minute)
	fresh := b.escalate(3, "limit", later)

	for _, tc := range []struct {
		name string
		req  engine.BulkRequest
		want int
	}{
		{"error_code", engine.BulkRequest{Action: "retry", Filter: store.JobFilter{Process: "bulk", Node: "escalation", ErrorCode: "limit"}}, 31},
		{"older_than", engine.BulkRequest{Action: "retry", Filter: store.JobFilter{Process: "bulk", ErrorCode: "limit", OlderThan: 5 * time.Minute}}, 28},
		{"process", engine.BulkRequest{Action: "cancel", Filter: store.JobFilter{Process: "bulk"}}, 36},
		{"status", engine.BulkRequest{Action: "move", To: "done", Filter: store.JobFilter{Process: "bulk", Status: store.StatusEscalated}}, 36},
		{"nothing", engine.BulkRequest{Action: "cancel", Filter: store.JobFilter{Process: "bulk", Node: "parked"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, sample, err := b.eng.BulkDryRun(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want || len(sample) != min(n, 10) {
				t.Errorf("dry run = %d tasks, %d in the sample; want %d and %d", n, len(sample), tc.want, min(tc.want, 10))
			}
		})
	}
	_, sample, err := b.eng.BulkDryRun(ctx, engine.BulkRequest{Action: "retry", Filter: store.JobFilter{Process: "bulk", ErrorCode: "limit"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []uuid.UUID{fresh[0], fresh[1], fresh[2]} {
		found := false
		for _, v := range sample[:3] {
			found = found || v.ID == id
		}
		if !found || sample[i].Status != store.StatusEscalated || sample[i].Error.Code != "limit" {
			t.Errorf("sample %d is %s (%s), want the newest tasks first", i, sample[i].ID, sample[i].Status)
		}
	}

	for _, tc := range []struct {
		name string
		req  engine.BulkRequest
		code string
	}{
		{"unknown_action", engine.BulkRequest{Action: "frob", Filter: store.JobFilter{Process: "bulk"}}, conveyor.EInvalid},
		{"no_process", engine.BulkRequest{Action: "cancel"}, conveyor.EInvalid},
		{"unknown_process", engine.BulkRequest{Action: "cancel", Filter: store.JobFilter{Process: "nope"}}, conveyor.ENotFound},
		{"unknown_node", engine.BulkRequest{Action: "cancel", Filter: store.JobFilter{Process: "bulk", Node: "nope"}}, conveyor.EInvalid},
		{"move_without_to", engine.BulkRequest{Action: "move", Filter: store.JobFilter{Process: "bulk"}}, conveyor.EInvalid},
		{"move_to_unknown_node", engine.BulkRequest{Action: "move", To: "nope", Filter: store.JobFilter{Process: "bulk"}}, conveyor.EInvalid},
		{"to_without_move", engine.BulkRequest{Action: "cancel", To: "done", Filter: store.JobFilter{Process: "bulk"}}, conveyor.EInvalid},
		{"final_status", engine.BulkRequest{Action: "cancel", Filter: store.JobFilter{Process: "bulk", Status: store.StatusCanceled}}, conveyor.EInvalid},
		{"retry_of_waiting_tasks", engine.BulkRequest{Action: "retry", Filter: store.JobFilter{Process: "bulk", Status: store.StatusWaiting}}, conveyor.EInvalid},
		{"rate_too_high", engine.BulkRequest{Action: "cancel", Rate: engine.MaxBulkRate + 1, Filter: store.JobFilter{Process: "bulk"}}, conveyor.EInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := b.eng.BulkDryRun(ctx, tc.req); conveyor.ErrorCode(err) != tc.code {
				t.Errorf("dry run: %v, want %s", err, tc.code)
			}
			if _, err := b.eng.StartBulk(ctx, tc.req); conveyor.ErrorCode(err) != tc.code {
				t.Errorf("start: %v, want %s", err, tc.code)
			}
		})
	}
	if jobs, err := b.eng.Jobs(ctx, 0); err != nil || len(jobs) != 0 {
		t.Errorf("jobs after dry runs and refusals: %d, %v; want none", len(jobs), err)
	}
}

func TestEngine_StartBulk_retryAcrossRestart(t *testing.T) {
	t.Parallel()
	dc := &drivenClock{}
	b := setup(t, bulkFlows, withDrivenClock(dc))
	ctx := context.Background()
	const n = 250
	ids := b.escalate(n, "limit", b.clock.Now().Add(time.Second))
	b.clock.Advance(time.Second) // a retry now finishes them

	// Rate 100/s: a burst of 10, then one task per wait. 140 waits give 150
	// tasks: a page of 100 stored, 50 acted on but not stored.
	stop := dc.drive(140)
	job, err := b.eng.StartBulk(ctx, engine.BulkRequest{Action: "retry", Filter: store.JobFilter{Process: "bulk", Node: "escalation"},
		Reason: "provider fixed", Rate: 100, Actor: "token:alice"})
	if err != nil {
		t.Fatal(err)
	}
	if job.Total != n || job.Status != store.JobPending || job.Filter.Status != store.StatusEscalated || job.Filter.EnteredBefore.IsZero() {
		t.Fatalf("new job %+v", job)
	}
	b.waitCount("escalation", n-150)
	b.waitJob(job.ID, "100 done", func(j *store.Job) bool { return j.Done == 100 })
	if got := stop(); got != 140 {
		t.Fatalf("the clock advanced %d times, want 140", got)
	}
	b.restart() // mid-page, as a crash would leave it
	j := b.waitJob(job.ID, "running", func(*store.Job) bool { return true })
	if j.Status != store.JobRunning || j.Done != 100 || len(j.Pending) != 100 || j.Cursor == "" {
		t.Fatalf("after the restart the job is %s with %d done and %d pending (cursor %q), want running with 100 and 100",
			j.Status, j.Done, len(j.Pending), j.Cursor)
	}

	stop = dc.drive(-1)
	defer stop()
	j = b.waitJob(job.ID, "done", func(j *store.Job) bool { return j.Status.Final() })
	if j.Status != store.JobDone || j.Done != n || j.Total != n || j.Succeeded != n || j.Failed != 0 || j.Finished.IsZero() {
		t.Errorf("finished job %+v, want done with %d succeeded", j, n)
	}
	for _, id := range ids {
		if got := b.actions(id, "operator_retry", job.ID.String()); got != 1 {
			t.Errorf("task %s was retried %d times by the job, want once", id, got)
		}
		task, err := b.st.Task(ctx, id)
		if err != nil || task.Status != store.StatusSucceeded {
			t.Errorf("task %s is %v after the retry, want succeeded (%v)", id, task.Status, err)
		}
	}
	results := b.results(job.ID)
	if len(results) != n {
		t.Fatalf("%d results, want %d", len(results), n)
	}
	for _, r := range results {
		if !r.OK || r.Error != "" {
			t.Errorf("result %+v, want ok", r)
		}
	}
}

func TestEngine_StartBulk_tenThousand(t *testing.T) {
	t.Parallel()
	dc := &drivenClock{}
	b := setup(t, bulkFlows, withDrivenClock(dc))
	ctx := context.Background()
	const n, rate = 10000, 5000
	start := time.Now()
	ids := b.escalate(n, "limit", b.clock.Now().Add(time.Second))
	created := time.Since(start)
	b.clock.Advance(time.Second)

	stop := dc.drive(-1)
	defer stop()
	start = time.Now()
	job, err := b.eng.StartBulk(ctx, engine.BulkRequest{Action: "retry", Filter: store.JobFilter{Process: "bulk", Node: "escalation", ErrorCode: "limit"},
		Reason: "incident over", Rate: rate, Actor: "token:alice"})
	if err != nil {
		t.Fatal(err)
	}
	j := b.waitJob(job.ID, "done", func(j *store.Job) bool { return j.Status.Final() })
	t.Logf("%d escalated tasks created in %v; the bulk retry took %v (wall), %v on the engine's clock",
		n, created.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), j.Finished.Sub(j.Started))
	if j.Status != store.JobDone || j.Done != n || j.Total != n || j.Succeeded != n {
		t.Fatalf("finished job %+v, want %d done and succeeded", j, n)
	}
	// At most rate tasks a second after a burst of rate/10.
	if took, least := j.Finished.Sub(j.Started), time.Duration(n-rate/10)*time.Second/rate; took < least {
		t.Errorf("the job took %v on the engine's clock, faster than the rate allows (%v)", took, least)
	}
	counts, err := b.st.Counts(ctx, "bulk")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range counts {
		if c.Node == "done" && c.Total != n || c.Node != "done" && len(c.Now) > 0 {
			t.Errorf("counts %+v, want all %d tasks done", c, n)
		}
	}
	for _, id := range ids[:100] {
		if got := b.actions(id, "operator_retry", job.ID.String()); got != 1 {
			t.Errorf("task %s was retried %d times, want once", id, got)
		}
	}
	page, err := b.eng.Audit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil || len(page.Entries) != 1000 || page.Entries[0].JobID != job.ID.String() {
		t.Errorf("audit: %d entries, %v; want a full page of the job's retries", len(page.Entries), err)
	}
}

func TestEngine_CancelBulk(t *testing.T) {
	t.Parallel()
	dc := &drivenClock{}
	b := setup(t, bulkFlows, withDrivenClock(dc))
	ctx := context.Background()
	const n = 50
	b.escalate(n, "limit", b.clock.Now().Add(time.Hour))
	stop := dc.drive(5) // rate 10/s, burst 1: 6 tasks
	job, err := b.eng.StartBulk(ctx, engine.BulkRequest{Action: "cancel", Filter: store.JobFilter{Process: "bulk"}, Rate: 10, Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	b.waitCount("escalation", n-6)
	b.waitJob(job.ID, "running", func(j *store.Job) bool { return j.Status == store.JobRunning })
	canceled, err := b.eng.CancelBulk(ctx, job.ID)
	if err != nil || canceled.Status != store.JobCanceled {
		t.Fatalf("CancelBulk = %+v, %v", canceled, err)
	}
	j := b.waitJob(job.ID, "6 done", func(j *store.Job) bool { return j.Done == 6 })
	if j.Status != store.JobCanceled || j.Succeeded != 6 || j.Total != n || j.Finished.IsZero() {
		t.Errorf("canceled job %+v", j)
	}
	stop()
	b.clock.Advance(time.Minute)
	b.waitCount("escalation", n-6) // nothing moves after the cancel
	if got := len(b.results(job.ID)); got != 6 {
		t.Errorf("%d results, want 6", got)
	}
	if _, err := b.eng.CancelBulk(ctx, job.ID); conveyor.ErrorCode(err) != conveyor.EConflict {
		t.Errorf("second cancel: %v, want conflict", err)
	}
	if _, err := b.eng.CancelBulk(ctx, uuid.Must(uuid.NewV7())); conveyor.ErrorCode(err) != conveyor.ENotFound {
		t.Errorf("cancel of an unknown job: %v, want not_found", err)
	}
	if _, _, err := b.eng.JobResults(ctx, uuid.Must(uuid.NewV7()), "", 0); conveyor.ErrorCode(err) != conveyor.ENotFound {
		t.Errorf("results of an unknown job: %v, want not_found", err)
	}
}

func TestEngine_StartBulk_moveThenCancel(t *testing.T) {
	t.Parallel()
	b := setup(t, bulkFlows)
	ctx := context.Background()
	ids := b.escalate(20, "limit", b.clock.Now().Add(time.Hour))
	other := b.escalate(1, "other", b.clock.Now().Add(time.Hour))[0]

	move, err := b.eng.StartBulk(ctx, engine.BulkRequest{Action: "move", To: "parked", Rate: engine.MaxBulkRate,
		Filter: store.JobFilter{Process: "bulk", ErrorCode: "limit"}, Reason: "park them", Actor: "token:carol"})
	if err != nil {
		t.Fatal(err)
	}
	j := b.waitJob(move.ID, "done", func(j *store.Job) bool { return j.Status.Final() })
	if j.Status != store.JobDone || j.Succeeded != 20 {
		t.Fatalf("move job %+v", j)
	}
	b.waitCount("parked", 20)
	b.waitCount("escalation", 1)

	cancel, err := b.eng.StartBulk(ctx, engine.BulkRequest{Action: "cancel", Rate: engine.MaxBulkRate,
		Filter: store.JobFilter{Process: "bulk", Node: "parked"}, Reason: "customer left", Actor: "token:dave"})
	if err != nil {
		t.Fatal(err)
	}
	j = b.waitJob(cancel.ID, "done", func(j *store.Job) bool { return j.Status.Final() })
	if j.Status != store.JobDone || j.Succeeded != 20 {
		t.Fatalf("cancel job %+v", j)
	}
	for _, id := range ids {
		task, err := b.st.Task(ctx, id)
		if err != nil || task.Status != store.StatusCanceled || task.Node != "parked" {
			t.Errorf("task %s: %s in %s, %v; want canceled in parked", id, task.Status, task.Node, err)
		}
		h := b.history(id)
		mv, cn := h[len(h)-2], h[len(h)-1]
		if mv.Event != "operator_move" || mv.JobID != move.ID.String() || mv.From != "escalation" || mv.To != "parked" ||
			mv.Actor != "token:carol" || mv.Reason != "park them" {
			t.Errorf("move entry %+v", mv)
		}
		if cn.Event != "operator_cancel" || cn.JobID != cancel.ID.String() || cn.Actor != "token:dave" ||
			cn.Reason != "customer left" || cn.Detail != "status escalated -> canceled" {
			t.Errorf("cancel entry %+v", cn)
		}
	}
	if task, _ := b.st.Task(ctx, other); task.Node != "escalation" || task.Status != store.StatusEscalated {
		t.Errorf("a task outside the filter moved: %s in %s", task.Status, task.Node)
	}
	jobs, err := b.eng.Jobs(ctx, 10)
	if err != nil || len(jobs) != 2 || jobs[0].ID != cancel.ID || jobs[1].ID != move.ID {
		t.Errorf("Jobs = %d jobs, %v; want the cancel, then the move", len(jobs), err)
	}
}

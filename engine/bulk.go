package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/store"
)

// Bulk jobs apply one operator action (retry, move or cancel) to every task a
// filter selects, as a durable store.Job that a runner service works through
// at a bounded rate, one result per task.
//
// The selection is frozen when the job is created: the filter's
// EnteredBefore is fixed then (to the creation time, or OlderThan before it),
// so a task that arrives in the node later never joins; and the runner pages
// down by task id, so it never meets a task twice. A job never selects a
// finished task, and a retry selects only escalated ones.
//
// The runner pages through the selection newest first. It stores the tasks of
// a page in the job as Pending (with the cursor after the page), acts on each
// through the same code as the single actions (Retry, Move, Cancel), which
// record the job's id in the task's history entry and so in the audit log,
// then stores the page's results, and the job's counts with nothing pending:
// progress is durable at least every maxBulkPage tasks. A runner stopped
// mid-page (Stop, a crash) finishes the pending tasks after a restart: a task
// the job already acted on is recognised by the job id in its history and is
// not acted on again, and the store keeps one result per task, so every
// selected task gets one result and is counted once, even when the action
// took it out of the selection.
//
// Rate is kept with a token bucket on the engine's Clock: at most Rate tasks a
// second after a burst of Rate/10 (at least 1). A single engine runs every
// unfinished job at Start. Engines sharing a store (a cluster) claim a job by
// writing their Owner into it and renew the claim at each page (and every
// bulkBeat); another engine takes the job over once the claim is older than
// bulkStale.

// Bulk limits.
const (
	// DefaultBulkRate is the rate of a job that does not ask for one, in
	// tasks per second.
	DefaultBulkRate = 50
	// MaxBulkRate is the highest rate a job may ask for.
	MaxBulkRate = 10000
	// maxBulkPage is the most tasks between two progress writes; slow jobs
	// write more often (every five seconds of work).
	maxBulkPage = 100
	// bulkParallel is how many actions of one job are in flight at once, so
	// that they share group commits.
	bulkParallel = 16
	// bulkSample is how many tasks a dry run shows.
	bulkSample = 10
	// countPage is the page size of a dry run's count.
	countPage = 1000
	// maxJobScan is how many of the newest jobs the runner looks at for
	// unfinished ones.
	maxJobScan = 1000
	// bulkPoll is how often the runner looks for jobs it was not told about
	// (created by another engine), and how long it waits after a store error.
	bulkPoll = 30 * time.Second
	// bulkStale is how old a cluster engine's claim on a running job must be
	// before another engine takes the job over; bulkBeat is how often the
	// running engine renews it.
	bulkStale = time.Minute
	bulkBeat  = bulkStale / 4
)

// errJobCanceled is the cause of a running job's context when an operator
// cancels the job; errJobGone means another engine took the job over.
var (
	errJobCanceled = errors.New("the bulk job was canceled")
	errJobGone     = errors.New("another engine runs the bulk job")
)

// BulkRequest asks for a bulk action.
type BulkRequest struct {
	// Action is store.JobRetry, store.JobMove or store.JobCancel.
	Action string
	// Filter selects the tasks; Process is required. OlderThan counts back
	// from now; EnteredBefore is ignored and fixed by the engine.
	Filter store.JobFilter
	// To is the node a move sends the tasks to.
	To string
	// Reason is recorded in each task's history.
	Reason string
	// Rate caps the tasks acted on per second: 0 for DefaultBulkRate, at most
	// MaxBulkRate.
	Rate int
	// Actor is who asks, recorded in each task's history.
	Actor string
}

// selection checks req and returns its frozen filter and rate.
func (e *Engine) selection(req BulkRequest, now time.Time) (store.JobFilter, int, error) {
	f := req.Filter
	switch req.Action {
	case store.JobRetry, store.JobMove, store.JobCancel:
	default:
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "action must be retry, move or cancel, not %q", req.Action)
	}
	if f.Process == "" {
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "a bulk action needs filter.process")
	}
	def, ok := e.Definition(f.Process)
	if !ok {
		return f, 0, conveyor.Errorf(conveyor.ENotFound, "process %q does not exist", f.Process)
	}
	switch {
	case f.Node != "" && def.Node(f.Node) == nil:
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "process %s has no node %q", def.Name, f.Node)
	case f.Status != "" && !f.Status.Valid():
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "status must be one of active, waiting, escalated")
	case f.Status.Final():
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "finished tasks cannot be retried, moved or canceled")
	case req.Action == store.JobRetry && f.Status != "" && f.Status != store.StatusEscalated:
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "retry acts on escalated tasks only")
	case f.OlderThan < 0:
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "older_than must not be negative")
	case req.Action == store.JobMove && req.To == "":
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "move needs to: the node to send the tasks to")
	case req.Action == store.JobMove && def.Node(req.To) == nil:
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "process %s has no node %q", def.Name, req.To)
	case req.Action != store.JobMove && req.To != "":
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "to is for move only")
	case req.Rate < 0 || req.Rate > MaxBulkRate:
		return f, 0, conveyor.Errorf(conveyor.EInvalid, "rate must be from 1 to %d tasks per second (0 for %d)", MaxBulkRate, DefaultBulkRate)
	}
	if req.Action == store.JobRetry {
		f.Status = store.StatusEscalated
	}
	// At or before now, or older than OlderThan: tasks that enter the node
	// later never join.
	f.EnteredBefore = now.Add(time.Nanosecond)
	if f.OlderThan > 0 {
		f.EnteredBefore = now.Add(-f.OlderThan)
	}
	rate := req.Rate
	if rate == 0 {
		rate = DefaultBulkRate
	}
	return f, rate, nil
}

// selected reports whether a task the filter lists belongs to a job's
// selection: finished tasks never do.
func selected(t *store.Task) bool { return !t.Status.Final() }

// count pages through the whole selection of f and returns its size and up to
// sample of its tasks, newest first.
func (e *Engine) count(ctx context.Context, f store.JobFilter, sample int) (int, []*store.Task, error) {
	lf := f.Filter()
	lf.Limit = countPage
	n := 0
	var some []*store.Task
	for {
		page, err := e.st.List(ctx, lf)
		if err != nil {
			return 0, nil, err
		}
		for _, t := range page.Tasks {
			if !selected(t) {
				continue
			}
			n++
			if len(some) < sample {
				some = append(some, t)
			}
		}
		if page.Next == "" {
			return n, some, nil
		}
		lf.Cursor = page.Next
	}
}

// BulkDryRun counts the tasks a bulk action would select now, paging through
// all of them, and returns up to 10 of them (newest first, without history).
func (e *Engine) BulkDryRun(ctx context.Context, req BulkRequest) (int, []*TaskView, error) {
	f, _, err := e.selection(req, e.clock.Now())
	if err != nil {
		return 0, nil, err
	}
	n, some, err := e.count(ctx, f, bulkSample)
	if err != nil {
		return 0, nil, err
	}
	views := make([]*TaskView, 0, len(some))
	for _, t := range some {
		v, err := e.viewOf(ctx, t, false)
		if err != nil {
			return 0, nil, err
		}
		views = append(views, v)
	}
	return n, views, nil
}

// StartBulk checks req, freezes its selection, stores the job (pending, with
// the selection's size as Total) and returns it; the runner service picks it
// up at once.
func (e *Engine) StartBulk(ctx context.Context, req BulkRequest) (*store.Job, error) {
	now := e.clock.Now()
	f, rate, err := e.selection(req, now)
	if err != nil {
		return nil, err
	}
	n, _, err := e.count(ctx, f, 0)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	j := &store.Job{ID: id, Action: req.Action, Filter: f, To: req.To, Reason: req.Reason, Actor: actorOr(req.Actor, "operator"),
		Rate: rate, Status: store.JobPending, Total: n, Created: now, Updated: now}
	if err := e.st.PutJob(ctx, j); err != nil {
		return nil, storeError(err)
	}
	e.log.Info("bulk job created", "job_id", id, "action", j.Action, "process", f.Process, "node", f.Node, "total", n, "rate", rate, "actor", j.Actor)
	e.bulk.kick()
	return j, nil
}

// CancelBulk stops a job that has not finished: it is stored canceled at
// once, and its runner stops after the actions in flight, adding their
// results. Tasks already acted on stay as they are. A finished job is a
// conflict.
func (e *Engine) CancelBulk(ctx context.Context, id uuid.UUID) (*store.Job, error) {
	for range 10 {
		j, err := e.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.Status.Final() {
			return nil, conveyor.Errorf(conveyor.EConflict, "bulk job %s is already %s", id, j.Status)
		}
		now := e.clock.Now()
		j.Status, j.Updated, j.Finished = store.JobCanceled, now, now
		err = e.st.PutJob(ctx, j)
		if errors.Is(err, store.ErrConflict) {
			continue // its runner wrote progress meanwhile
		}
		if err != nil {
			return nil, storeError(err)
		}
		e.bulk.cancel(id)
		e.log.Info("bulk job canceled", "job_id", id, "done", j.Done, "total", j.Total)
		return j, nil
	}
	return nil, conveyor.Errorf(conveyor.EConflict, "bulk job %s kept changing; try again", id)
}

// Jobs returns up to limit bulk jobs (default 50, at most 1000), newest
// first.
func (e *Engine) Jobs(ctx context.Context, limit int) ([]*store.Job, error) {
	return e.st.Jobs(ctx, limit)
}

// Job returns a bulk job.
func (e *Engine) Job(ctx context.Context, id uuid.UUID) (*store.Job, error) {
	j, err := e.st.Job(ctx, id)
	if err != nil {
		return nil, notFound(err, "bulk job %s not found", id)
	}
	return j, nil
}

// JobResults returns a page of a job's results in task id order, and the
// cursor of the next page ("" on the last).
func (e *Engine) JobResults(ctx context.Context, id uuid.UUID, cursor string, limit int) ([]store.JobResult, string, error) {
	rs, next, err := e.st.JobResults(ctx, id, cursor, limit)
	if err != nil {
		return nil, "", notFound(err, "bulk job %s not found", id)
	}
	return rs, next, nil
}

// bulkService is the runner's state: the jobs running in this engine.
type bulkService struct {
	wake    chan struct{}
	mu      sync.Mutex
	running map[uuid.UUID]context.CancelCauseFunc
}

func newBulkService() *bulkService {
	return &bulkService{wake: make(chan struct{}, 1), running: map[uuid.UUID]context.CancelCauseFunc{}}
}

// kick wakes the runner: a job was created.
func (b *bulkService) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// cancel stops the job's runner in this engine, if it runs here.
func (b *bulkService) cancel(id uuid.UUID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if stop := b.running[id]; stop != nil {
		stop(errJobCanceled)
	}
}

// claim registers a runner of job id, unless one runs already.
func (b *bulkService) claim(id uuid.UUID, stop context.CancelCauseFunc) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running[id] != nil {
		return false
	}
	b.running[id] = stop
	return true
}

func (b *bulkService) release(id uuid.UUID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.running, id)
}

// bulkRunner is the runner service: it starts a runner for every unfinished
// job it may run, when woken, every bulkPoll, and at once on Start (which
// resumes the jobs a previous run left). Stop ends the runners between two
// actions.
func (e *Engine) bulkRunner() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		if err := e.startJobs(ctx); err != nil {
			e.log.Error("bulk runner: read jobs", "err", err)
		}
		select {
		case <-e.stop:
			return
		case <-e.bulk.wake:
		case <-e.clock.After(bulkPoll):
		}
	}
}

// startJobs starts a runner for each unfinished job this engine may run,
// oldest first.
func (e *Engine) startJobs(ctx context.Context) error {
	jobs, err := e.st.Jobs(ctx, maxJobScan)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	for i := len(jobs) - 1; i >= 0; i-- {
		j := jobs[i]
		if j.Status.Final() || !e.mayRun(j, now) {
			continue
		}
		jctx, stop := context.WithCancelCause(ctx)
		if !e.bulk.claim(j.ID, stop) {
			stop(nil)
			continue
		}
		e.wg.Go(func() {
			defer e.bulk.release(j.ID)
			defer stop(nil)
			e.runJob(jctx, j)
		})
	}
	return nil
}

// mayRun reports whether this engine may run an unfinished job: a single
// engine runs them all; in a cluster, a pending job, one it claimed itself,
// or one whose claim is stale.
func (e *Engine) mayRun(j *store.Job, now time.Time) bool {
	owner := e.Owner()
	return owner == "" || j.Status == store.JobPending || j.Runner == owner || now.Sub(j.Beat) > bulkStale
}

// bulkRun is one job being run: the job as last stored, which only the
// runner's goroutine touches.
type bulkRun struct {
	e     *Engine
	j     *store.Job
	owner string
}

// runJob runs a job until it is done, canceled, failed, taken over or the
// engine stops. Each round either lists the next page of the selection and
// stores its tasks as Pending (with the cursor after it), or acts on the
// Pending tasks and stores their results, counts and an empty Pending.
func (e *Engine) runJob(ctx context.Context, j *store.Job) {
	r := &bulkRun{e: e, j: j, owner: e.Owner()}
	// A job that was running before may have acted on some of its pending
	// tasks without storing their results: verify them against the history.
	verify := j.Status == store.JobRunning
	err := r.save(ctx, func(n *store.Job) bool {
		if n.Status == store.JobPending {
			n.Status, n.Started = store.JobRunning, r.now()
		}
		return !n.Status.Final() // finished since it was read
	})
	if err != nil {
		r.stopped(err)
		return
	}
	if verify {
		e.log.Info("bulk job resumed", "job_id", j.ID, "done", r.j.Done, "total", r.j.Total, "pending", len(r.j.Pending))
	}
	lim := newLimiter(e.clock, r.j.Rate)
	lf := r.j.Filter.Filter()
	lf.Limit = pageSize(r.j.Rate)
	for !r.j.Status.Final() {
		if len(r.j.Pending) == 0 && !r.j.Listed {
			lf.Cursor = r.j.Cursor
			page, err := e.st.List(ctx, lf)
			if err == nil {
				err = r.save(ctx, func(n *store.Job) bool {
					if n.Status != store.JobRunning {
						return false // canceled meanwhile
					}
					n.Pending, n.Cursor, n.Listed = nil, page.Next, page.Next == ""
					for _, t := range page.Tasks {
						if selected(t) {
							n.Pending = append(n.Pending, t.ID)
						}
					}
					return true
				})
			}
			if err != nil && !r.retryable(ctx, err) {
				return
			}
			continue
		}
		results, complete := r.act(ctx, lim, r.j.Pending, verify)
		if !complete && context.Cause(ctx) != errJobCanceled && !r.j.Status.Final() {
			return // the engine stops: the next run finishes the pending tasks
		}
		if !complete {
			// Canceled: keep the results of what was done, then stop.
			r.stopped(r.flush(context.WithoutCancel(ctx), results))
			return
		}
		if err := r.flush(ctx, results); err != nil {
			if !r.retryable(ctx, err) {
				return
			}
			verify = true // act again: the tasks acted on are in the history
			continue
		}
		verify = false
	}
	e.log.Info("bulk job finished", "job_id", j.ID, "status", r.j.Status, "done", r.j.Done,
		"succeeded", r.j.Succeeded, "failed", r.j.Failed)
}

// pageSize is the page of a job: five seconds of work, at most maxBulkPage.
func pageSize(rate int) int { return max(1, min(maxBulkPage, rate*5)) }

// retryable handles a store error of a running job: it fails the job for
// errors that will not go away (a bad cursor), and otherwise waits bulkPoll
// and reports whether to go on.
func (r *bulkRun) retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, errJobGone) {
		r.stopped(err)
		return false
	}
	switch conveyor.ErrorCode(err) {
	case conveyor.EInvalid, conveyor.ENotFound:
		r.stopped(r.save(ctx, func(n *store.Job) bool {
			if n.Status != store.JobRunning {
				return false
			}
			n.Status, n.Error, n.Finished = store.JobFailed, conveyor.ErrorMessage(err), r.now()
			return true
		}))
		return false
	}
	r.e.log.Error("bulk job: store error; trying again", "job_id", r.j.ID, "err", err, "in", bulkPoll)
	select {
	case <-ctx.Done():
		return false
	case <-r.e.clock.After(bulkPoll):
		return true
	}
}

// stopped logs why a runner stopped early, unless it is normal.
func (r *bulkRun) stopped(err error) {
	switch {
	case err == nil:
	case errors.Is(err, errJobGone):
		r.e.log.Info("bulk job: another engine runs it now", "job_id", r.j.ID)
	case errors.Is(err, context.Canceled):
	default:
		r.e.log.Error("bulk job: cannot store progress", "job_id", r.j.ID, "err", err)
	}
}

func (r *bulkRun) now() time.Time { return r.e.clock.Now() }

// act acts on tasks, at the job's rate, bulkParallel at a time. It returns
// the results and whether every task has one: false when the job was
// canceled or the engine stops (the actions in flight are finished first).
func (r *bulkRun) act(ctx context.Context, lim *limiter, ids []uuid.UUID, verify bool) ([]store.JobResult, bool) {
	var (
		mu      sync.Mutex
		results []store.JobResult
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, bulkParallel)
	act := context.WithoutCancel(ctx) // an action, once started, is finished
	job := r.j                        // never changed in place: beat replaces r.j
	complete := true
	for _, id := range ids {
		if lim.wait(ctx) != nil || !r.beat(ctx) {
			complete = false
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res := r.actOn(act, job, id, verify)
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		})
	}
	wg.Wait()
	return results, complete
}

// beat renews a cluster engine's claim on the job when it is due, and reports
// whether the job may go on.
func (r *bulkRun) beat(ctx context.Context) bool {
	if r.owner == "" || r.now().Sub(r.j.Beat) < bulkBeat {
		return true
	}
	err := r.save(ctx, func(n *store.Job) bool { return !n.Status.Final() })
	r.stopped(err)
	return err == nil && !r.j.Status.Final()
}

// actOn applies the job's action to one task and returns its result. With
// verify, a task whose history shows the job acted on it already (before a
// restart) counts as done and is left alone.
func (r *bulkRun) actOn(ctx context.Context, j *store.Job, id uuid.UUID, verify bool) store.JobResult {
	e := r.e
	res := store.JobResult{TaskID: id}
	if verify {
		done, err := e.actedOn(ctx, id, j.ID.String())
		if err == nil && done {
			res.OK, res.At = true, r.now()
			return res
		}
	}
	a := Action{Actor: j.Actor, Reason: j.Reason, job: j.ID.String()}
	var err error
	switch j.Action {
	case store.JobRetry:
		_, err = e.Retry(ctx, id, a)
	case store.JobMove:
		_, err = e.Move(ctx, id, j.To, a)
	case store.JobCancel:
		_, err = e.Cancel(ctx, id, a)
	default:
		err = conveyor.Errorf(conveyor.EInvalid, "unknown bulk action %q", j.Action)
	}
	res.At = r.now()
	if err != nil {
		res.Error = conveyor.ErrorMessage(err)
		if code := conveyor.ErrorCode(err); code == conveyor.EInternal || code == conveyor.EUnavailable {
			e.log.Error("bulk job: action failed", "job_id", j.ID, "task_id", id, "err", err)
		}
		return res
	}
	res.OK = true
	return res
}

// actedOn reports whether the job's id is in the task's history.
func (e *Engine) actedOn(ctx context.Context, id uuid.UUID, job string) (bool, error) {
	hist, err := e.st.History(ctx, id)
	if err != nil {
		return false, err
	}
	for _, h := range hist {
		if h.JobID == job {
			return true, nil
		}
	}
	return false, nil
}

// flush stores the results of the pending tasks, then the job's counts with
// no task pending (the job is done after the last page).
func (r *bulkRun) flush(ctx context.Context, results []store.JobResult) error {
	if err := r.e.st.PutJobResults(ctx, r.j.ID, results); err != nil {
		return err
	}
	ok := 0
	for _, res := range results {
		if res.OK {
			ok++
		}
	}
	return r.save(ctx, func(n *store.Job) bool {
		n.Done += len(results)
		n.Succeeded += ok
		n.Failed += len(results) - ok
		n.Pending = nil
		if n.Status == store.JobRunning && n.Listed {
			n.Status, n.Finished, n.Total = store.JobDone, r.now(), n.Done
		}
		return true // a canceled job still counts the results
	})
}

// save writes the job changed by change, and renews the claim; change
// returns false when there is nothing to write. When the stored job moved on
// (an operator canceled it), change is applied to the stored one instead;
// when another engine claimed it, save fails with errJobGone.
func (r *bulkRun) save(ctx context.Context, change func(*store.Job) bool) error {
	for range 5 {
		n := r.j.Clone()
		if !change(n) {
			return nil
		}
		n.Updated = r.now()
		if r.owner != "" {
			n.Runner, n.Beat = r.owner, n.Updated
		}
		err := r.e.st.PutJob(ctx, n)
		if err == nil {
			r.j = n
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
		stored, err := r.e.st.Job(ctx, r.j.ID)
		if err != nil {
			return err
		}
		if stored.Runner != r.j.Runner || r.owner != "" && stored.Runner != r.owner && !r.e.mayRun(stored, r.now()) {
			return errJobGone
		}
		r.j = stored
	}
	return fmt.Errorf("bulk job %s: the stored job keeps changing: %w", r.j.ID, store.ErrConflict)
}

// limiter is a token bucket on the engine's clock (GCRA): a task may start
// once the theoretical arrival time tat, less the burst window, has passed.
// Only the runner's goroutine uses it.
type limiter struct {
	clock    Clock
	interval time.Duration // between two tasks at the rate
	window   time.Duration // the burst, as time
	tat      time.Time
}

// newLimiter allows rate tasks a second after a burst of rate/10 (at least
// 1). The interval is rounded up, so the rate is never exceeded.
func newLimiter(clock Clock, rate int) *limiter {
	rate = max(rate, 1)
	interval := (time.Second + time.Duration(rate) - 1) / time.Duration(rate)
	burst := max(1, rate/10)
	return &limiter{clock: clock, interval: interval, window: interval * time.Duration(burst-1)}
}

// wait returns when the next task may start, or ctx's error.
func (l *limiter) wait(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := l.clock.Now()
		tat := l.tat
		if tat.Before(now) {
			tat = now
		}
		if allow := tat.Add(-l.window); now.Before(allow) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-l.clock.After(allow.Sub(now)):
			}
			continue
		}
		l.tat = tat.Add(l.interval)
		return nil
	}
}

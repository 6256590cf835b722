package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/store"
)

// act commits an operator action on t at time at: one history entry with
// event, moving t to node to, and returns the audit entry it implies.
func (f *fixture) act(t *store.Task, event, to, actor, jobID string, at time.Time) store.AuditEntry {
	f.t.Helper()
	from, rev := t.Node, t.Rev
	t.Node = to
	t.HistoryLen++
	h := store.HistoryEntry{Seq: t.HistoryLen - 1, At: at, From: from, To: to, Event: event, Actor: actor,
		Reason: "because " + actor, Detail: "detail of " + event, JobID: jobID}
	f.commit(store.Change{Task: t, Rev: rev, History: []store.HistoryEntry{h}})
	return store.AuditEntry{At: at, Actor: actor, Action: event, TaskID: t.ID, Seq: h.Seq, Process: t.Process,
		From: from, To: to, Reason: h.Reason, Detail: h.Detail, JobID: jobID}
}

// wantAudit fails the test unless Audit(af) returns want, in order, on one
// page.
func wantAudit(t *testing.T, f *fixture, af store.AuditFilter, want ...store.AuditEntry) {
	t.Helper()
	page, err := f.s.Audit(f.ctx, af)
	if err != nil {
		t.Fatalf("Audit(%+v): %v", af, err)
	}
	if diff := cmp.Diff(want, page.Entries, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Audit(%+v) (-want +got):\n%s", af, diff)
	}
	if page.Next != "" {
		t.Errorf("Audit(%+v): Next = %q on the only page, want empty", af, page.Next)
	}
}

var auditTests = []test{
	{"copies_each_operator_action_of_the_history_newest_first", func(t *testing.T, f *fixture) {
		a, b := f.task(), f.task()
		b.Process = "refund"
		f.create(a, b)
		f.update(a, func(t *store.Task) { t.Node = "charge" }) // not an operator action
		retry := f.act(a, "operator_retry", "charge", "token:alice", "", f.at(time.Second))
		move := f.act(b, "operator_move", "done", "token:bob", "0190aaaa-0000-7000-8000-000000000001", f.at(2*time.Second))
		cancel := f.act(a, "operator_cancel", "charge", "token:alice", "", f.at(3*time.Second))
		wantAudit(t, f, store.AuditFilter{}, cancel, move, retry)
		h, err := f.s.History(f.ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if last := h[len(h)-1]; last.JobID != move.JobID {
			t.Errorf("the history entry's JobID = %q, want %q", last.JobID, move.JobID)
		}
	}},
	{"selects_by_task_actor_process_and_since", func(t *testing.T, f *fixture) {
		a, b := f.task(), f.task()
		b.Process = "refund"
		f.create(a, b)
		a1 := f.act(a, "operator_retry", "charge", "token:alice", "", f.at(time.Second))
		b1 := f.act(b, "operator_move", "done", "token:bob", "", f.at(2*time.Second))
		a2 := f.act(a, "operator_edit", "charge", "token:bob", "", f.at(3*time.Second))
		wantAudit(t, f, store.AuditFilter{TaskID: a.ID}, a2, a1)
		wantAudit(t, f, store.AuditFilter{Actor: "token:bob"}, a2, b1)
		wantAudit(t, f, store.AuditFilter{Process: "refund"}, b1)
		wantAudit(t, f, store.AuditFilter{Since: f.at(2 * time.Second)}, a2, b1)
		wantAudit(t, f, store.AuditFilter{TaskID: a.ID, Actor: "token:bob"}, a2)
		wantAudit(t, f, store.AuditFilter{TaskID: f.task().ID})
		wantAudit(t, f, store.AuditFilter{Actor: "nobody"})
	}},
	{"pages_with_a_cursor_without_gaps_or_duplicates", func(t *testing.T, f *fixture) {
		tasks := f.tasks(5)
		f.create(tasks...)
		var all []store.AuditEntry
		for i := range 25 {
			task := tasks[i%5]
			all = append(all, f.act(task, "operator_move", fmt.Sprintf("n%d", i), "token:alice", "", f.at(time.Duration(i)*time.Second)))
		}
		newest := func(es []store.AuditEntry) []store.AuditEntry {
			out := make([]store.AuditEntry, 0, len(es))
			for i := len(es) - 1; i >= 0; i-- {
				out = append(out, es[i])
			}
			return out
		}
		var ofTask []store.AuditEntry
		for _, e := range all {
			if e.TaskID == tasks[2].ID {
				ofTask = append(ofTask, e)
			}
		}
		for _, tc := range []struct {
			af    store.AuditFilter
			want  []store.AuditEntry
			pages int
		}{
			{store.AuditFilter{Limit: 10}, newest(all), 3},
			{store.AuditFilter{Limit: 10, Actor: "token:alice"}, newest(all), 3},
			{store.AuditFilter{Limit: 2, TaskID: tasks[2].ID}, newest(ofTask), 3},
		} {
			var got []store.AuditEntry
			pages := 0
			for {
				page, err := f.s.Audit(f.ctx, tc.af)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page.Entries...)
				if pages++; page.Next == "" || pages > 10 {
					break
				}
				tc.af.Cursor = page.Next
			}
			if pages != tc.pages {
				t.Errorf("filter %+v: %d pages, want %d", tc.af, pages, tc.pages)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("filter %+v: the pages of Audit (-want +got):\n%s", tc.af, diff)
			}
		}
		if _, err := f.s.Audit(f.ctx, store.AuditFilter{Cursor: "not-a-cursor"}); err == nil {
			t.Error("Audit with a bad cursor = nil error, want one")
		}
	}},
	{"applies_a_default_limit_of_50", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		for i := range 51 {
			f.act(task, "operator_move", fmt.Sprintf("n%d", i), "token:alice", "", f.at(time.Duration(i)*time.Millisecond))
		}
		page, err := f.s.Audit(f.ctx, store.AuditFilter{})
		if err != nil || len(page.Entries) != 50 || page.Next == "" {
			t.Errorf("Audit() = %d entries, Next %q, %v; want 50 and a next page", len(page.Entries), page.Next, err)
		}
	}},
	{"writes_nothing_for_a_failed_commit", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		c := f.step(task.Clone(), func(t *store.Task) { t.Node = "charge" })
		c.History[0].Event = "operator_move"
		c.Rev = 9
		wantErr(t, f.s.Commit(f.ctx, c), store.ErrConflict)
		wantAudit(t, f, store.AuditFilter{})
	}},
	{"outlives_the_purged_task", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		task.Status, task.Finished = store.StatusCanceled, f.at(time.Second)
		cancel := f.act(task, "operator_cancel", "start", "token:alice", "", f.at(time.Second))
		wantPurge(t, f, f.at(time.Hour), 10, 1)
		_, err := f.s.Task(f.ctx, task.ID)
		wantErr(t, err, store.ErrNotFound)
		wantAudit(t, f, store.AuditFilter{}, cancel)
		wantAudit(t, f, store.AuditFilter{TaskID: task.ID}, cancel)
	}},
}

// job returns a new, unstored pending job.
func (f *fixture) job() *store.Job {
	return &store.Job{
		ID: uuid.Must(uuid.NewV7()), Action: store.JobRetry, Actor: "token:alice", Reason: "provider is back", Rate: 50,
		Filter: store.JobFilter{Process: "payment", Node: "escalation", Status: store.StatusEscalated, ErrorCode: "http_503",
			OlderThan: 10 * time.Minute, EnteredBefore: f.at(-10 * time.Minute)},
		Status: store.JobPending, Total: 3, Created: f.t0, Updated: f.t0,
	}
}

// putJob stores j and fails the test on error.
func (f *fixture) putJob(j *store.Job) {
	f.t.Helper()
	if err := f.s.PutJob(f.ctx, j); err != nil {
		f.t.Fatalf("PutJob: %v", err)
	}
}

// wantJob fails the test unless the stored job equals want.
func (f *fixture) wantJob(want *store.Job) {
	f.t.Helper()
	got, err := f.s.Job(f.ctx, want.ID)
	if err != nil {
		f.t.Fatalf("Job(%s): %v", want.ID, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		f.t.Errorf("stored job (-want +got):\n%s", diff)
	}
}

var jobTests = []test{
	{"creates_a_job_that_reads_back_and_replaces_it_at_its_rev", func(t *testing.T, f *fixture) {
		j := f.job()
		f.putJob(j)
		if j.Rev != 1 {
			t.Errorf("Rev after create = %d, want 1", j.Rev)
		}
		f.wantJob(j)
		j.Status, j.Done, j.Succeeded, j.Failed, j.Cursor = store.JobRunning, 2, 1, 1, "0190aaaa"
		j.Started, j.Updated = f.at(time.Second), f.at(time.Second)
		f.putJob(j)
		if j.Rev != 2 {
			t.Errorf("Rev after update = %d, want 2", j.Rev)
		}
		f.wantJob(j)
	}},
	{"fails_with_ErrExists_ErrConflict_and_ErrNotFound", func(t *testing.T, f *fixture) {
		j := f.job()
		f.putJob(j)
		again := f.job()
		again.ID = j.ID
		wantErr(t, f.s.PutJob(f.ctx, again), store.ErrExists)
		stale := j.Clone()
		f.putJob(j)
		stale.Status = store.JobCanceled
		wantErr(t, f.s.PutJob(f.ctx, stale), store.ErrConflict)
		f.wantJob(j)
		missing := f.job()
		missing.Rev = 4
		wantErr(t, f.s.PutJob(f.ctx, missing), store.ErrNotFound)
		_, err := f.s.Job(f.ctx, missing.ID)
		wantErr(t, err, store.ErrNotFound)
	}},
	{"rejects_a_job_without_an_id_or_with_an_unknown_status", func(t *testing.T, f *fixture) {
		j := f.job()
		j.ID = uuid.Nil
		if err := f.s.PutJob(f.ctx, j); err == nil {
			t.Error("PutJob without an id = nil, want an error")
		}
		j = f.job()
		j.Status = "sleeping"
		if err := f.s.PutJob(f.ctx, j); err == nil {
			t.Error("PutJob with status sleeping = nil, want an error")
		}
	}},
	{"lets_one_of_many_concurrent_writes_of_one_rev_win", func(t *testing.T, f *fixture) {
		j := f.job()
		f.putJob(j)
		const n = 10
		errs := make(chan error, n)
		for i := range n {
			c := j.Clone()
			c.Done = i
			go func() { errs <- f.s.PutJob(f.ctx, c) }()
		}
		won := 0
		for range n {
			if err := <-errs; err == nil {
				won++
			} else if !errors.Is(err, store.ErrConflict) {
				t.Errorf("a losing PutJob = %v, want ErrConflict", err)
			}
		}
		if won != 1 {
			t.Errorf("%d writes of rev 1 won, want 1", won)
		}
	}},
	{"Jobs_lists_newest_first_up_to_limit", func(t *testing.T, f *fixture) {
		var jobs []*store.Job
		for range 4 {
			j := f.job()
			f.putJob(j)
			jobs = append(jobs, j)
		}
		got, err := f.s.Jobs(f.ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := []*store.Job{jobs[3], jobs[2], jobs[1]}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Jobs(3) (-want +got):\n%s", diff)
		}
		if got, err := f.s.Jobs(f.ctx, 0); err != nil || len(got) != 4 {
			t.Errorf("Jobs(0) = %d jobs, %v; want all 4", len(got), err)
		}
	}},
}

var resultTests = []test{
	{"appends_results_and_pages_them_in_task_id_order", func(t *testing.T, f *fixture) {
		j := f.job()
		f.putJob(j)
		var want []store.JobResult
		for i := range 7 {
			r := store.JobResult{TaskID: uuid.Must(uuid.NewV7()), OK: i%3 != 0, At: f.at(time.Duration(i) * time.Second)}
			if !r.OK {
				r.Error = "task is waiting; only escalated tasks can be retried"
			}
			want = append(want, r)
		}
		if err := f.s.PutJobResults(f.ctx, j.ID, want[:4]); err != nil {
			t.Fatal(err)
		}
		if err := f.s.PutJobResults(f.ctx, j.ID, want[4:]); err != nil {
			t.Fatal(err)
		}
		var got []store.JobResult
		cursor, pages := "", 0
		for {
			page, next, err := f.s.JobResults(f.ctx, j.ID, cursor, 3)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if pages++; next == "" || pages > 5 {
				break
			}
			cursor = next
		}
		if pages != 3 {
			t.Errorf("%d pages of 3 for 7 results, want 3", pages)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("JobResults (-want +got):\n%s", diff)
		}
		if _, _, err := f.s.JobResults(f.ctx, j.ID, "not-a-cursor", 3); err == nil {
			t.Error("JobResults with a bad cursor = nil error, want one")
		}
	}},
	{"keeps_one_result_per_task", func(t *testing.T, f *fixture) {
		j := f.job()
		f.putJob(j)
		id := uuid.Must(uuid.NewV7())
		first := store.JobResult{TaskID: id, OK: false, Error: "conflict", At: f.t0}
		again := store.JobResult{TaskID: id, OK: true, At: f.at(time.Second)}
		if err := f.s.PutJobResults(f.ctx, j.ID, []store.JobResult{first}); err != nil {
			t.Fatal(err)
		}
		if err := f.s.PutJobResults(f.ctx, j.ID, []store.JobResult{again}); err != nil {
			t.Fatal(err)
		}
		got, next, err := f.s.JobResults(f.ctx, j.ID, "", 0)
		if err != nil || next != "" {
			t.Fatalf("JobResults = %v, next %q", err, next)
		}
		if diff := cmp.Diff([]store.JobResult{again}, got); diff != "" {
			t.Errorf("JobResults after a second result for one task (-want +got):\n%s", diff)
		}
	}},
	{"fails_with_ErrNotFound_for_an_unknown_job", func(t *testing.T, f *fixture) {
		id := f.job().ID
		err := f.s.PutJobResults(f.ctx, id, []store.JobResult{{TaskID: uuid.Must(uuid.NewV7()), OK: true, At: f.t0}})
		wantErr(t, err, store.ErrNotFound)
		_, _, err = f.s.JobResults(f.ctx, id, "", 10)
		wantErr(t, err, store.ErrNotFound)
	}},
}

var alarmTests = []test{
	{"records_crossings_and_keeps_the_latest_as_the_state", func(t *testing.T, f *fixture) {
		crossings := []store.AlarmCrossing{
			{Process: "payment", Node: "escalation", Seq: 1, On: true, Count: 100, Threshold: 100, Signal: "backlog",
				TaskID: uuid.Must(uuid.NewV7()), At: f.at(time.Second)},
			{Process: "payment", Node: "charge", Seq: 1, On: true, Count: 7, Threshold: 5, At: f.at(2 * time.Second)},
			{Process: "payment", Node: "escalation", Seq: 2, On: false, Count: 99, Threshold: 100, Signal: "backlog",
				TaskID: uuid.Must(uuid.NewV7()), At: f.at(3 * time.Second)},
		}
		for _, c := range crossings {
			if err := f.s.PutAlarmCrossing(f.ctx, c); err != nil {
				t.Fatalf("PutAlarmCrossing(%+v): %v", c, err)
			}
		}
		states, err := f.s.AlarmStates(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]store.AlarmCrossing{crossings[1], crossings[2]}, states); diff != "" {
			t.Errorf("AlarmStates (-want +got):\n%s", diff)
		}
		recent, err := f.s.AlarmCrossings(f.ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]store.AlarmCrossing{crossings[2], crossings[1]}, recent); diff != "" {
			t.Errorf("AlarmCrossings(2) (-want +got):\n%s", diff)
		}
	}},
	{"fails_with_ErrConflict_for_a_Seq_that_does_not_follow", func(t *testing.T, f *fixture) {
		c := store.AlarmCrossing{Process: "payment", Node: "escalation", Seq: 2, On: true, Count: 3, Threshold: 3, At: f.t0}
		wantErr(t, f.s.PutAlarmCrossing(f.ctx, c), store.ErrConflict)
		c.Seq = 1
		if err := f.s.PutAlarmCrossing(f.ctx, c); err != nil {
			t.Fatal(err)
		}
		c.On = false
		wantErr(t, f.s.PutAlarmCrossing(f.ctx, c), store.ErrConflict)
		states, err := f.s.AlarmStates(f.ctx)
		if err != nil || len(states) != 1 || !states[0].On {
			t.Errorf("AlarmStates = %+v, %v; want the first crossing alone", states, err)
		}
	}},
	{"returns_nothing_before_the_first_crossing", func(t *testing.T, f *fixture) {
		states, err := f.s.AlarmStates(f.ctx)
		if err != nil || len(states) != 0 {
			t.Errorf("AlarmStates = %v, %v; want none", states, err)
		}
		recent, err := f.s.AlarmCrossings(f.ctx, 0)
		if err != nil || len(recent) != 0 {
			t.Errorf("AlarmCrossings = %v, %v; want none", recent, err)
		}
	}},
}

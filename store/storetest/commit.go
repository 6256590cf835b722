package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/store"
)

var commitTests = []test{
	{"creates_a_task_that_reads_back", func(t *testing.T, f *fixture) {
		task := f.task()
		task.Ref, task.InputHash = "order-1", "sha256:abc"
		task.Token, task.TimerAt, task.Timer = "tok-1", f.at(time.Minute), "timeout"
		task.Status, task.Node = store.StatusWaiting, "wait_callback"
		task.Error = &store.TaskError{Code: "http_503", Description: "bank down", Node: "charge"}
		task.Marks = []store.Mark{{Hash: "h1", Node: "wait_callback", At: f.t0}}
		task.Attempt, task.Steps = 2, 3
		f.create(task)
		if task.Rev != 1 {
			t.Errorf("caller's Rev = %d after create, want 1", task.Rev)
		}
		f.wantStored(task)
	}},
	{"sets_Rev_to_the_change_Rev_plus_one", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		f.update(task, func(t *store.Task) { t.Data = []byte(`{"amount":200}`) })
		if task.Rev != 2 {
			t.Errorf("caller's Rev = %d after an update, want 2", task.Rev)
		}
		f.wantStored(task)
	}},
	{"fails_with_ErrExists_for_an_id_already_stored", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		again := task.Clone()
		again.Data = []byte(`{"other":true}`)
		wantErr(t, f.s.Commit(f.ctx, f.creation(again)), store.ErrExists)
		f.wantStored(task)
	}},
	{"fails_with_RefTakenError_carrying_the_task_that_holds_the_ref", func(t *testing.T, f *fixture) {
		first, second := f.task(), f.task()
		first.Ref, first.InputHash = "order-1", "hash-1"
		second.Ref, second.InputHash = "order-1", "hash-2"
		f.create(first)
		err := f.s.Commit(f.ctx, f.creation(second))
		var taken *store.RefTakenError
		if !errors.As(err, &taken) {
			t.Fatalf("err = %v, want a *RefTakenError", err)
		}
		if taken.Existing.ID != first.ID || taken.Existing.InputHash != "hash-1" {
			t.Errorf("Existing = %s with input hash %q, want %s with %q", taken.Existing.ID, taken.Existing.InputHash, first.ID, "hash-1")
		}
		_, err = f.s.Task(f.ctx, second.ID)
		wantErr(t, err, store.ErrNotFound)
	}},
	{"takes_the_same_ref_in_another_process", func(t *testing.T, f *fixture) {
		a, b := f.task(), f.task()
		a.Ref, b.Ref, b.Process = "order-1", "order-1", "refund"
		f.create(a, b)
		got, err := f.s.TaskByRef(f.ctx, "refund", "order-1")
		if err != nil || got.ID != b.ID {
			t.Fatalf("TaskByRef(refund, order-1) = %v, %v; want task %s", got, err, b.ID)
		}
	}},
	{"fails_with_RefTakenError_for_two_new_tasks_with_one_ref_in_one_commit", func(t *testing.T, f *fixture) {
		a, b := f.task(), f.task()
		a.Ref, b.Ref = "order-1", "order-1"
		var taken *store.RefTakenError
		if err := f.s.Commit(f.ctx, f.creation(a), f.creation(b)); !errors.As(err, &taken) {
			t.Fatalf("err = %v, want a *RefTakenError", err)
		}
		_, err := f.s.Task(f.ctx, a.ID)
		wantErr(t, err, store.ErrNotFound)
	}},
	{"fails_with_ErrConflict_when_Rev_is_not_the_stored_one", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		want := task.Clone()
		c := f.step(task, func(t *store.Task) { t.Node = "charge" })
		c.Rev = 7
		wantErr(t, f.s.Commit(f.ctx, c), store.ErrConflict)
		f.wantStored(want)
	}},
	{"fails_a_stale_Rev_after_a_successful_commit", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		mine, theirs := task.Clone(), task.Clone()
		f.update(mine, func(t *store.Task) { t.Node = "charge" })
		err := f.s.Commit(f.ctx, f.step(theirs, func(t *store.Task) { t.Node = "refund" }))
		wantErr(t, err, store.ErrConflict)
		f.wantStored(mine)
	}},
	{"fails_with_ErrNotFound_for_a_Rev_on_a_missing_task", func(t *testing.T, f *fixture) {
		task := f.task()
		task.Rev = 3
		err := f.s.Commit(f.ctx, f.step(task, func(*store.Task) {}))
		wantErr(t, err, store.ErrNotFound)
	}},
	{"rejects_a_change_of_Process_or_Ref", func(t *testing.T, f *fixture) {
		task := f.task()
		task.Ref = "order-1"
		f.create(task)
		for _, mutate := range []func(*store.Task){
			func(t *store.Task) { t.Process = "refund" },
			func(t *store.Task) { t.Ref = "order-2" },
			func(t *store.Task) { t.Ref = "" },
		} {
			if err := f.s.Commit(f.ctx, f.step(task.Clone(), mutate)); err == nil {
				t.Errorf("Commit changing process or ref = nil, want an error")
			}
		}
		f.wantStored(task)
	}},
	{"applies_all_changes_or_none", func(t *testing.T, f *fixture) {
		a, b := f.task(), f.task()
		f.create(a, b)
		wantA, wantB := a.Clone(), b.Clone()
		good := f.step(a.Clone(), func(t *store.Task) { t.Node = "charge" })
		bad := f.step(b.Clone(), func(t *store.Task) { t.Node = "charge" })
		bad.Rev = 9
		wantErr(t, f.s.Commit(f.ctx, good, bad), store.ErrConflict)
		f.wantStored(wantA)
		f.wantStored(wantB)
		h, err := f.s.History(f.ctx, a.ID)
		if err != nil || len(h) != 1 {
			t.Errorf("History of the first task = %d entries, %v; want 1 (nothing appended)", len(h), err)
		}
	}},
	{"fails_one_bad_commit_without_failing_the_concurrent_others", func(t *testing.T, f *fixture) {
		const n, bad = 50, 17
		tasks := f.tasks(n)
		f.create(tasks...)
		start := make(chan struct{})
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, task := range tasks {
			c := f.step(task, func(t *store.Task) { t.Node = "charge" })
			if i == bad {
				c.Rev = 5
			}
			wg.Go(func() {
				<-start
				errs[i] = f.s.Commit(f.ctx, c)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			switch {
			case i == bad && !errors.Is(err, store.ErrConflict):
				t.Errorf("commit %d (wrong Rev) = %v, want ErrConflict", i, err)
			case i != bad && err != nil:
				t.Errorf("commit %d = %v, want nil", i, err)
			}
		}
		for i, task := range tasks {
			want := uint64(2)
			if i == bad {
				want = 1
			}
			if got := f.get(task.ID).Rev; got != want {
				t.Errorf("task %d at rev %d, want %d", i, got, want)
			}
		}
	}},
	{"lets_one_of_many_concurrent_changes_of_one_revision_win", func(t *testing.T, f *fixture) {
		const n = 20
		task := f.task()
		f.create(task)
		start := make(chan struct{})
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			c := f.step(task.Clone(), func(t *store.Task) { t.Node = "charge" })
			wg.Go(func() {
				<-start
				errs <- f.s.Commit(f.ctx, c)
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		won := 0
		for err := range errs {
			if err == nil {
				won++
			} else if !errors.Is(err, store.ErrConflict) {
				t.Errorf("a losing commit = %v, want ErrConflict", err)
			}
		}
		if won != 1 {
			t.Errorf("%d commits of rev 1 succeeded, want 1", won)
		}
		if got := f.get(task.ID); got.Rev != 2 || got.HistoryLen != 2 {
			t.Errorf("stored rev %d with %d history entries, want 2 and 2", got.Rev, got.HistoryLen)
		}
	}},
	{"does_not_apply_a_commit_whose_ctx_is_done", func(t *testing.T, f *fixture) {
		ctx, cancel := context.WithCancel(f.ctx)
		cancel()
		task := f.task()
		wantErr(t, f.s.Commit(ctx, f.creation(task)), context.Canceled)
		_, err := f.s.Task(f.ctx, task.ID)
		wantErr(t, err, store.ErrNotFound)
	}},
}

var historyTests = []test{
	{"returns_the_entries_in_order_across_commits", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		f.update(task, func(t *store.Task) { t.Node = "charge" })
		c := f.step(task, func(t *store.Task) { t.Node = "wait" })
		c.History = append(c.History, store.HistoryEntry{Seq: task.HistoryLen, At: f.t0, From: "wait", To: "wait", Event: "late_callback"})
		task.HistoryLen++
		f.commit(c)
		h, err := f.s.History(f.ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		var events []string
		for i, e := range h {
			if e.Seq != uint32(i) {
				t.Errorf("entry %d has Seq %d", i, e.Seq)
			}
			events = append(events, e.To+":"+e.Event)
		}
		want := []string{"start:submit", "charge:next", "wait:next", "wait:late_callback"}
		if len(events) != len(want) {
			t.Fatalf("History = %v, want %v", events, want)
		}
		for i := range want {
			if events[i] != want[i] {
				t.Errorf("History = %v, want %v", events, want)
				break
			}
		}
	}},
	{"rejects_entries_whose_Seq_does_not_continue_HistoryLen", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		want := task.Clone()
		c := f.step(task.Clone(), func(t *store.Task) { t.Node = "charge" })
		c.History[0].Seq = 5
		if err := f.s.Commit(f.ctx, c); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("Commit with a gap in Seq = %v, want a validation error", err)
		}
		f.wantStored(want)
	}},
	{"rejects_a_HistoryLen_that_does_not_count_the_entries", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		want := task.Clone()
		c := f.step(task.Clone(), func(t *store.Task) { t.Node = "charge" })
		c.Task.HistoryLen = 7
		if err := f.s.Commit(f.ctx, c); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("Commit with a wrong HistoryLen = %v, want a validation error", err)
		}
		f.wantStored(want)
		if h, _ := f.s.History(f.ctx, task.ID); len(h) != 1 {
			t.Errorf("History has %d entries, want 1", len(h))
		}
	}},
	{"fails_with_ErrNotFound_for_an_unknown_task", func(t *testing.T, f *fixture) {
		_, err := f.s.History(f.ctx, f.task().ID)
		wantErr(t, err, store.ErrNotFound)
	}},
}

package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conveyor-dev/conveyor/store"
)

var purgeTests = []test{
	{"deletes_tasks_finished_before_t_with_their_history", func(t *testing.T, f *fixture) {
		tasks := f.tasks(4)
		f.create(tasks...)
		f.finish(tasks[0], store.StatusSucceeded, f.at(1*time.Second))
		f.finish(tasks[1], store.StatusFailed, f.at(2*time.Second))
		f.finish(tasks[2], store.StatusCanceled, f.at(3*time.Second))
		wantPurge(t, f, f.at(2*time.Second), 10, 1)
		_, err := f.s.Task(f.ctx, tasks[0].ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.History(f.ctx, tasks[0].ID)
		wantErr(t, err, store.ErrNotFound)
		f.wantStored(tasks[1])
		wantPurge(t, f, f.at(time.Hour), 10, 2)
		f.wantStored(tasks[3])
		page, err := f.s.List(f.ctx, store.Filter{})
		if err != nil || len(page.Tasks) != 1 {
			t.Errorf("List after Purge = %d tasks, %v; want only the unfinished one", len(page.Tasks), err)
		}
	}},
	{"deletes_at_most_limit_tasks_oldest_first", func(t *testing.T, f *fixture) {
		tasks := f.tasks(3)
		f.create(tasks...)
		for i, task := range tasks {
			f.finish(task, store.StatusSucceeded, f.at(time.Duration(3-i)*time.Second))
		}
		wantPurge(t, f, f.at(time.Hour), 2, 2)
		f.wantStored(tasks[0])
		wantPurge(t, f, f.at(time.Hour), 2, 1)
		wantPurge(t, f, f.at(time.Hour), 2, 0)
	}},
	{"never_deletes_an_unfinished_task", func(t *testing.T, f *fixture) {
		a, b, c := f.task(), f.task(), f.task()
		b.Status, b.Node, b.TimerAt = store.StatusWaiting, "wait", f.at(time.Second)
		c.Status, c.Node = store.StatusEscalated, "charge"
		f.create(a, b, c)
		wantPurge(t, f, f.at(24*time.Hour), 10, 0)
	}},
	{"frees_the_ref_that_outlived_the_finished_task", func(t *testing.T, f *fixture) {
		first := f.task()
		first.Ref = "order-1"
		f.create(first)
		f.finish(first, store.StatusSucceeded, f.at(time.Second))
		again := f.task()
		again.Ref = "order-1"
		var taken *store.RefTakenError
		if err := f.s.Commit(f.ctx, f.creation(again.Clone())); !errors.As(err, &taken) {
			t.Fatalf("Commit with the ref of a finished task = %v, want a *RefTakenError", err)
		}
		wantPurge(t, f, f.at(time.Hour), 10, 1)
		f.create(again)
		got, err := f.s.TaskByRef(f.ctx, "payment", "order-1")
		if err != nil || got.ID != again.ID {
			t.Errorf("TaskByRef after Purge = %v, %v; want the new task", got, err)
		}
	}},
}

// wantPurge fails the test unless Purge(before, limit) deletes n tasks.
func wantPurge(t *testing.T, f *fixture, before time.Time, limit, n int) {
	t.Helper()
	got, err := f.s.Purge(f.ctx, before, limit)
	if err != nil || got != n {
		t.Fatalf("Purge(%v, %d) = %d, %v; want %d, nil", before, limit, got, err, n)
	}
}

var versionTests = []test{
	{"stores_a_version_once", func(t *testing.T, f *fixture) {
		v := store.Version{Process: "payment", Version: "v1", File: "payment.yaml", Source: []byte("nodes: []"), Loaded: f.t0}
		if err := f.s.PutVersion(f.ctx, v); err != nil {
			t.Fatal(err)
		}
		changed := v
		changed.Source = []byte("nodes: [changed]")
		if err := f.s.PutVersion(f.ctx, changed); err != nil {
			t.Fatalf("PutVersion of a stored version = %v, want nil", err)
		}
		got, err := f.s.Version(f.ctx, "payment", "v1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&v, got); diff != "" {
			t.Errorf("Version (-want +got):\n%s", diff)
		}
	}},
	{"fails_with_ErrNotFound_for_an_unknown_version", func(t *testing.T, f *fixture) {
		_, err := f.s.Version(f.ctx, "payment", "v9")
		wantErr(t, err, store.ErrNotFound)
	}},
}

var closeTests = []test{
	{"fails_later_calls_with_ErrClosed", func(t *testing.T, f *fixture) {
		task := f.task()
		f.create(task)
		if err := f.s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wantErr(t, f.s.Commit(f.ctx, f.creation(f.task())), store.ErrClosed)
		_, err := f.s.Task(f.ctx, task.ID)
		wantErr(t, err, store.ErrClosed)
		_, err = f.s.Audit(f.ctx, store.AuditFilter{})
		wantErr(t, err, store.ErrClosed)
		wantErr(t, f.s.PutJob(f.ctx, f.job()), store.ErrClosed)
	}},
}

// Package storetest is the conformance suite of store.Store. Every backend
// runs Run against fresh, empty stores and must pass it unchanged; the suite
// uses nothing but the store.Store interface.
//
//	func TestDB(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			db, err := bolt.Open(filepath.Join(t.TempDir(), "conveyor.db"), bolt.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { db.Close() })
//			return db
//		})
//	}
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/store"
)

// Checker is implemented by stores that can verify their own consistency.
// Run calls Check after every subtest, unless the subtest closed the store.
type Checker interface {
	Check() error
}

// test is one specification of the suite.
type test struct {
	name string
	run  func(t *testing.T, f *fixture)
}

// groups names the specifications by the method they describe; subtests read
// as "Commit/fails_a_stale_Rev_after_a_successful_commit".
var groups = []struct {
	name  string
	tests []test
}{
	{"Commit", commitTests},
	{"Task", taskTests},
	{"TaskByToken", tokenTests},
	{"History", historyTests},
	{"Due", dueTests},
	{"Runnable", runnableTests},
	{"List", listTests},
	{"Counts", countsTests},
	{"Purge", purgeTests},
	{"Version", versionTests},
	{"Audit", auditTests},
	{"Job", jobTests},
	{"JobResults", resultTests},
	{"Alarm", alarmTests},
	{"Close", closeTests},
}

// Run runs the conformance suite. open must return a new, empty store that
// belongs to the subtest and arrange (with t.Cleanup) to close it; Close may
// then be called a second time, after the subtest closed the store itself.
// Subtests run in parallel, each on its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					s := open(t)
					t.Cleanup(func() { check(t, s) })
					tc.run(t, newFixture(t, s))
				})
			}
		})
	}
}

// check runs the store's own consistency check, if it has one.
func check(t *testing.T, s store.Store) {
	c, ok := s.(Checker)
	if !ok {
		return
	}
	if err := c.Check(); err != nil && !errors.Is(err, store.ErrClosed) {
		t.Errorf("after the test, Check: %v", err)
	}
}

// fixture is a store and the helpers the specifications share.
type fixture struct {
	t   *testing.T
	s   store.Store
	ctx context.Context
	// t0 is the base of every time the tests write; the store's own clock is
	// never consulted.
	t0 time.Time
}

func newFixture(t *testing.T, s store.Store) *fixture {
	return &fixture{t: t, s: s, ctx: t.Context(), t0: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)}
}

// at is t0 plus d.
func (f *fixture) at(d time.Duration) time.Time { return f.t0.Add(d) }

// task returns a new, uncommitted active task of process "payment" in node
// "start". Tasks made later have greater ids.
func (f *fixture) task() *store.Task {
	return &store.Task{
		ID:      uuid.Must(uuid.NewV7()),
		Process: "payment",
		Version: "v1",
		Node:    "start",
		Status:  store.StatusActive,
		Data:    []byte(`{"amount":100}`),
		Created: f.t0,
		Updated: f.t0,
		Entered: f.t0,
	}
}

// tasks returns n new tasks, oldest first.
func (f *fixture) tasks(n int) []*store.Task {
	ts := make([]*store.Task, n)
	for i := range ts {
		ts[i] = f.task()
	}
	return ts
}

// creation is the Change that creates t, with its "submit" history entry.
func (f *fixture) creation(t *store.Task) store.Change {
	t.HistoryLen = 1
	return store.Change{Task: t, History: []store.HistoryEntry{{Seq: 0, At: f.t0, To: t.Node, Event: "submit", Actor: "engine"}}}
}

// create commits the creation of tasks in one Commit.
func (f *fixture) create(tasks ...*store.Task) {
	f.t.Helper()
	changes := make([]store.Change, len(tasks))
	for i, t := range tasks {
		changes[i] = f.creation(t)
	}
	f.commit(changes...)
}

// step applies mutate to t and returns the Change from t's current revision,
// with one "next" history entry. t is changed even when the commit fails.
func (f *fixture) step(t *store.Task, mutate func(*store.Task)) store.Change {
	from, rev := t.Node, t.Rev
	mutate(t)
	t.HistoryLen++
	return store.Change{Task: t, Rev: rev, History: []store.HistoryEntry{
		{Seq: t.HistoryLen - 1, At: f.t0, From: from, To: t.Node, Event: "next", Actor: "engine"},
	}}
}

// commit commits changes and fails the test on error.
func (f *fixture) commit(changes ...store.Change) {
	f.t.Helper()
	if err := f.s.Commit(f.ctx, changes...); err != nil {
		f.t.Fatalf("Commit: %v", err)
	}
}

// update commits one step of t.
func (f *fixture) update(t *store.Task, mutate func(*store.Task)) {
	f.t.Helper()
	f.commit(f.step(t, mutate))
}

// finish moves t into final node "done" with status s at finished.
func (f *fixture) finish(t *store.Task, s store.Status, finished time.Time) {
	f.t.Helper()
	f.update(t, func(t *store.Task) {
		t.Node, t.Status, t.Finished, t.TimerAt, t.Token = "done", s, finished, time.Time{}, ""
	})
}

// get reads the task with id, failing the test when it cannot.
func (f *fixture) get(id uuid.UUID) *store.Task {
	f.t.Helper()
	t, err := f.s.Task(f.ctx, id)
	if err != nil {
		f.t.Fatalf("Task(%s): %v", id, err)
	}
	return t
}

// wantStored fails the test unless the stored task equals want.
func (f *fixture) wantStored(want *store.Task) {
	f.t.Helper()
	if diff := cmp.Diff(want, f.get(want.ID), cmpopts.EquateEmpty()); diff != "" {
		f.t.Errorf("stored task (-want +got):\n%s", diff)
	}
}

// wantErr fails the test unless errors.Is(err, target).
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

// ids returns the ids of tasks.
func ids(tasks []*store.Task) []uuid.UUID {
	out := make([]uuid.UUID, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID
	}
	return out
}

// newestFirst returns the ids of tasks, which are oldest first, reversed.
func newestFirst(tasks ...*store.Task) []uuid.UUID {
	out := ids(tasks)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// wantIDs fails the test unless got equals want, in order.
func wantIDs(t *testing.T, what string, got, want []uuid.UUID) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

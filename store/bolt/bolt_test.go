package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/storetest"
)

func TestDB(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, tempPath(t), Options{})
	})
}

// TestDB_throughTheBacklog runs the conformance suite with every commit's
// history for existing tasks sent through the history backlog (backlog.go),
// moved into history whenever the writer idles for a millisecond: readers,
// purges and the consistency check after each test must not tell.
func TestDB_throughTheBacklog(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, tempPath(t), Options{backlogFrom: 1, backlogIdle: time.Millisecond})
	})
}

// tempPath is a fresh data file path.
func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "conveyor.db")
}

// openTest opens path and closes it when the test ends.
func openTest(t testing.TB, path string, opts Options) *DB {
	t.Helper()
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newTask returns an uncommitted active task.
func newTask(process, ref string) *store.Task {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	return &store.Task{
		ID: uuid.Must(uuid.NewV7()), Process: process, Version: "v1", Ref: ref,
		Node: "start", Status: store.StatusActive, Data: []byte(`{"amount":100}`),
		Created: now, Updated: now, Entered: now, HistoryLen: 1,
	}
}

// creation is the change that creates t.
func creation(t *store.Task) store.Change {
	return store.Change{Task: t, History: []store.HistoryEntry{{Seq: 0, At: t.Created, To: t.Node, Event: "submit"}}}
}

// finishing is the change that moves t to a final node with status s, leaving
// Finished as it is.
func finishing(t *store.Task, s store.Status) store.Change {
	rev := t.Rev
	t.Node, t.Status = "done", s
	t.HistoryLen++
	return store.Change{Task: t, Rev: rev, History: []store.HistoryEntry{{Seq: t.HistoryLen - 1, From: "start", To: "done", Event: "next"}}}
}

// mustCheck fails the test when db.Check finds a problem.
func mustCheck(t *testing.T, db *DB) {
	t.Helper()
	if err := db.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// blockWriter keeps the writer busy inside a transaction until release is
// called, so that the requests sent meanwhile queue up.
func blockWriter(db *DB) (release func()) {
	entered, unblock := make(chan struct{}), make(chan struct{})
	go db.submit(context.Background(), 1, func(*bbolt.Tx) (func() error, error) {
		close(entered)
		<-unblock
		return nil, nil
	})
	<-entered
	return sync.OnceFunc(func() { close(unblock) })
}

// waitQueued returns once n requests wait for the writer.
func waitQueued(db *DB, n int) {
	for len(db.reqs) < n {
		runtime.Gosched()
	}
}

// commitAsync commits in a goroutine; the error arrives on the channel.
func commitAsync(ctx context.Context, db *DB, changes ...store.Change) <-chan error {
	done := make(chan error, 1)
	go func() { done <- db.Commit(ctx, changes...) }()
	return done
}

func TestOpen(t *testing.T) {
	t.Parallel()
	t.Run("keeps_the_data_across_Close_and_reopen", func(t *testing.T) {
		t.Parallel()
		ctx, path := t.Context(), tempPath(t)
		db := openTest(t, path, Options{})
		task := newTask("payment", "order-1")
		task.Token, task.TimerAt = "tok-1", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := db.Commit(ctx, creation(task)); err != nil {
			t.Fatal(err)
		}
		if err := db.PutVersion(ctx, store.Version{Process: "payment", Version: "v1", Source: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		db = openTest(t, path, Options{})
		got, err := db.TaskByToken(ctx, "tok-1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(task, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("task after reopen (-want +got):\n%s", diff)
		}
		if _, err := db.Version(ctx, "payment", "v1"); err != nil {
			t.Errorf("Version after reopen: %v", err)
		}
		if due, err := db.Due(ctx, task.TimerAt, 10); err != nil || len(due) != 1 {
			t.Errorf("Due after reopen = %v, %v; want the task's timer", due, err)
		}
		mustCheck(t, db)
	})
	t.Run("fails_with_a_clear_error_while_another_DB_holds_the_file", func(t *testing.T) {
		t.Parallel()
		path := tempPath(t)
		openTest(t, path, Options{})
		db, err := Open(path, Options{Timeout: 50 * time.Millisecond})
		if err == nil {
			db.Close()
			t.Fatal("second Open = nil error, want a timeout")
		}
		if !errors.Is(err, berrors.ErrTimeout) || !strings.Contains(err.Error(), "locked") {
			t.Errorf("second Open = %q, want a timeout that says the file is locked", err)
		}
	})
}

func TestDB_Commit(t *testing.T) {
	t.Parallel()
	t.Run("groups_queued_requests_into_one_transaction_and_fails_only_the_bad_one", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		var mu sync.Mutex
		var groups []GroupCommit
		db := openTest(t, tempPath(t), Options{Metrics: func(g GroupCommit) {
			mu.Lock()
			defer mu.Unlock()
			groups = append(groups, g)
		}})
		existing := newTask("payment", "")
		if err := db.Commit(ctx, creation(existing)); err != nil {
			t.Fatal(err)
		}
		release := blockWriter(db)
		defer release()
		var results []<-chan error
		for range 4 {
			results = append(results, commitAsync(ctx, db, creation(newTask("payment", ""))))
		}
		stale := finishing(existing.Clone(), store.StatusSucceeded)
		stale.Rev = 9
		results = append(results, commitAsync(ctx, db, stale))
		waitQueued(db, len(results))
		release()

		for i, done := range results {
			err := <-done
			if i == 4 && !errors.Is(err, store.ErrConflict) {
				t.Errorf("stale commit = %v, want ErrConflict", err)
			}
			if i < 4 && err != nil {
				t.Errorf("commit %d = %v, want nil", i, err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		var batches []int
		for _, g := range groups {
			batches = append(batches, g.Requests)
			// A new file's buckets are small enough to live inline in
			// the root's leaf: the pages written are that leaf and the
			// freelist; syncing them takes time.
			if g.Pages < 2 || g.Write <= 0 || g.Write > g.Took {
				t.Errorf("group commit of %d requests: %d pages written in %v of %v, want at least 2 pages and 0 < write time <= transaction time",
					g.Requests, g.Pages, g.Write, g.Took)
			}
		}
		if want := []int{1, 5}; !cmp.Equal(batches, want) {
			t.Errorf("group commits answered %v requests, want %v", batches, want)
		}
		mustCheck(t, db)
	})
	t.Run("fails_every_request_of_a_batch_whose_transaction_fails", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		db := openTest(t, tempPath(t), Options{bolt: func(o *bbolt.Options) { o.MaxSize = 4 << 20 }})
		small, huge := newTask("payment", ""), newTask("payment", "")
		huge.Data = make([]byte, 8<<20)
		release := blockWriter(db)
		defer release()
		results := []<-chan error{commitAsync(ctx, db, creation(small)), commitAsync(ctx, db, creation(huge))}
		waitQueued(db, 2)
		release()

		for _, done := range results {
			err := <-done
			if !errors.Is(err, berrors.ErrMaxSizeReached) || !strings.HasPrefix(err.Error(), "store: commit: ") {
				t.Errorf("commit in a failed batch = %v, want \"store: commit: \" and the disk error", err)
			}
		}
		if _, err := db.Task(ctx, small.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Task of a failed batch = %v, want ErrNotFound", err)
		}
		if err := db.Commit(ctx, creation(newTask("payment", ""))); err != nil {
			t.Errorf("Commit after a failed batch = %v, want nil", err)
		}
		mustCheck(t, db)
	})
	t.Run("does_not_apply_a_request_whose_ctx_ends_while_queued", func(t *testing.T) {
		t.Parallel()
		db := openTest(t, tempPath(t), Options{})
		release := blockWriter(db)
		defer release()
		ctx, cancel := context.WithCancel(t.Context())
		task := newTask("payment", "")
		done := commitAsync(ctx, db, creation(task))
		waitQueued(db, 1)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Commit = %v, want context.Canceled", err)
		}
		release()
		if _, err := db.Task(t.Context(), task.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Task of an abandoned commit = %v, want ErrNotFound", err)
		}
	})
	t.Run("sets_Finished_to_the_commit_time_when_a_task_finishes_without_one", func(t *testing.T) {
		t.Parallel()
		ctx, now := t.Context(), time.Date(2031, 5, 6, 7, 8, 9, 10, time.UTC)
		db := openTest(t, tempPath(t), Options{Clock: func() time.Time { return now }})
		task := newTask("payment", "")
		if err := db.Commit(ctx, creation(task)); err != nil {
			t.Fatal(err)
		}
		if err := db.Commit(ctx, finishing(task, store.StatusSucceeded)); err != nil {
			t.Fatal(err)
		}
		if !task.Finished.Equal(now) {
			t.Errorf("caller's Finished = %v, want the commit time %v", task.Finished, now)
		}
		if n, _ := db.Purge(ctx, now, 10); n != 0 {
			t.Errorf("Purge(commit time) = %d, want 0: the task finished at, not before, it", n)
		}
		if n, _ := db.Purge(ctx, now.Add(time.Nanosecond), 10); n != 1 {
			t.Errorf("Purge(just after the commit time) = %d, want 1", n)
		}
		mustCheck(t, db)
	})
}

func TestDB_Close(t *testing.T) {
	t.Parallel()
	t.Run("commits_the_requests_queued_before_it", func(t *testing.T) {
		t.Parallel()
		ctx, path := t.Context(), tempPath(t)
		db := openTest(t, path, Options{})
		release := blockWriter(db)
		defer release()
		tasks := []*store.Task{newTask("payment", ""), newTask("payment", ""), newTask("payment", "")}
		var results []<-chan error
		for _, task := range tasks {
			results = append(results, commitAsync(ctx, db, creation(task)))
		}
		waitQueued(db, len(tasks))
		closeDone := make(chan error, 1)
		go func() { closeDone <- db.Close() }()
		release()
		for _, done := range results {
			if err := <-done; err != nil {
				t.Errorf("queued commit = %v, want nil", err)
			}
		}
		if err := <-closeDone; err != nil {
			t.Fatalf("Close: %v", err)
		}

		db = openTest(t, path, Options{})
		for _, task := range tasks {
			if _, err := db.Task(ctx, task.ID); err != nil {
				t.Errorf("Task after reopen: %v", err)
			}
		}
	})
}

func TestDB_Check(t *testing.T) {
	t.Parallel()
	t.Run("reports_an_index_entry_that_disagrees_with_its_task", func(t *testing.T) {
		t.Parallel()
		db := openTest(t, tempPath(t), Options{})
		task := newTask("payment", "order-1")
		if err := db.Commit(t.Context(), creation(task)); err != nil {
			t.Fatal(err)
		}
		mustCheck(t, db)
		err := db.bolt.Update(func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bucketByState).Delete(byStateKey(task)); err != nil {
				return err
			}
			return tx.Bucket(bucketCounts).Put(join("payment", "start", "active"), putInt64(7))
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Check()
		if err == nil || !strings.Contains(err.Error(), "bystate") || !strings.Contains(err.Error(), "counts") {
			t.Errorf("Check = %v, want the missing bystate entry and the wrong counter", err)
		}
	})
}

func TestDB_Stats(t *testing.T) {
	t.Parallel()
	t.Run("counts_the_tasks_and_sizes_the_file", func(t *testing.T) {
		t.Parallel()
		db := openTest(t, tempPath(t), Options{})
		for range 3 {
			if err := db.Commit(t.Context(), creation(newTask("payment", ""))); err != nil {
				t.Fatal(err)
			}
		}
		s, err := db.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s.Tasks != 3 || s.FileSize <= 0 {
			t.Errorf("Stats = %+v, want 3 tasks and a file size", s)
		}
	})
}

// BenchmarkDB_Commit measures task creations per second with fsync on (the
// default): from many goroutines, which the writer groups, and from one.
func BenchmarkDB_Commit(b *testing.B) {
	for _, bc := range []struct {
		name        string
		parallelism int // goroutines per GOMAXPROCS; 0 for one committer
	}{
		{"one_committer", 0},
		{"parallel_x16", 16},
		{"parallel_x128", 128},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var batches atomic.Int64
			db := openTest(b, tempPath(b), Options{Metrics: func(GroupCommit) { batches.Add(1) }})
			ctx := context.Background()
			commit := func() {
				if err := db.Commit(ctx, creation(newTask("payment", ""))); err != nil {
					b.Error(err)
				}
			}
			b.ResetTimer()
			if bc.parallelism == 0 {
				for b.Loop() {
					commit()
				}
			} else {
				b.SetParallelism(bc.parallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						commit()
					}
				})
			}
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/secs, "commits/s")
			b.ReportMetric(float64(batches.Load())/secs, "groupcommits/s")
		})
	}
}

// TestDB_groupCommitSumsCountersAndIndexes: one group commit creates a task
// and moves it on (two requests, the second decided on the first's
// revision). The counters and list indexes, written once at the end of the
// transaction, must show only where the task ended, and the second request
// must not be refused for lowering a counter only the first had raised.
func TestDB_groupCommitSumsCountersAndIndexes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openTest(t, tempPath(t), Options{})
	task := newTask("payment", "order-1")
	release := blockWriter(db)
	created := commitAsync(ctx, db, creation(task))
	waitQueued(db, 1)
	moved := task.Clone()
	moved.Rev = 1
	moved.HistoryLen++
	moved.Node, moved.Status = "wait", store.StatusWaiting
	next := commitAsync(ctx, db, store.Change{Task: moved, Rev: 1, History: []store.HistoryEntry{{Seq: 1, From: "start", To: "wait", Event: "next"}}})
	waitQueued(db, 2)
	release()
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if err := <-next; err != nil {
		t.Fatalf("the move decided on the creation in the same group commit: %v", err)
	}
	counts, err := db.Counts(ctx, "payment")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[store.Status]int64{}
	for _, c := range counts {
		got[c.Node] = c.Now
	}
	want := map[string]map[store.Status]int64{"wait": {store.StatusWaiting: 1}}
	if !cmp.Equal(want, got, cmpopts.EquateEmpty()) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
	for _, f := range []store.Filter{{Process: "payment", Node: "wait"}, {Status: store.StatusWaiting}} {
		page, err := db.List(ctx, f)
		if err != nil || len(page.Tasks) != 1 || page.Tasks[0].Rev != 2 {
			t.Errorf("List(%+v) = %+v, %v; want the task at rev 2", f, page.Tasks, err)
		}
	}
	for _, f := range []store.Filter{{Process: "payment", Node: "start"}, {Status: store.StatusActive}} {
		if page, _ := db.List(ctx, f); len(page.Tasks) != 0 {
			t.Errorf("List(%+v) still holds the task", f)
		}
	}
	mustCheck(t, db)
}

package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/storetest"
)

// TestDB_withLog runs the conformance suite on a store with the write-ahead
// log, bbolt applying it whenever the log idles.
func TestDB_withLog(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, tempPath(t), Options{Log: true})
	})
}

// TestDB_withLogHeldBack runs the conformance suite with logged writes held
// back from bbolt until a list, a count, a history or a purge needs them, so
// that reads of tasks, refs, tokens and timers, and the checks of new
// commits, find them in the overlay.
func TestDB_withLogHeldBack(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, tempPath(t), Options{Log: true, logIdle: time.Hour})
	})
}

// heldBack opens a store whose logged writes stay out of bbolt until a
// reader needs them, and logs to buf.
func heldBack(t *testing.T, path string, buf *bytes.Buffer) *DB {
	return openTest(t, path, Options{Log: true, logIdle: time.Hour, Logger: slog.New(slog.NewTextHandler(buf, nil))})
}

// inBolt reports whether bbolt itself (not the overlay) holds the task.
func inBolt(t *testing.T, db *DB, id uuid.UUID) bool {
	t.Helper()
	var found bool
	if err := db.bolt.View(func(tx *bbolt.Tx) error {
		found = tx.Bucket(bucketTasks).Get(id[:]) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

// crashCopy copies the store's file and its log (if any), as a crash would
// leave them at this moment, to a new directory, and returns the copy's
// path.
func crashCopy(t *testing.T, path string) string {
	t.Helper()
	dst := tempPath(t)
	for _, suffix := range []string{"", ".wal"} {
		b, err := os.ReadFile(path + suffix)
		if suffix != "" && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// logged commits three tasks (one moved once) and returns them, all held
// in the log only.
func logged(t *testing.T, db *DB) []*store.Task {
	t.Helper()
	ctx := t.Context()
	tasks := []*store.Task{newTask("payment", "a"), newTask("payment", "b"), newTask("payment", "")}
	tasks[1].Token = "tok-b"
	for _, task := range tasks {
		if err := db.Commit(ctx, creation(task)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Commit(ctx, finishing(tasks[0], store.StatusSucceeded)); err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if inBolt(t, db, task.ID) {
			t.Fatalf("task %s is in bbolt already: the test needs it held back in the log", task.ID)
		}
	}
	return tasks
}

// sameTasks checks that db holds the tasks of logged as they were
// committed, history, ref and token included.
func sameTasks(t *testing.T, db *DB, tasks []*store.Task) {
	t.Helper()
	ctx := t.Context()
	sameEach(t, db, tasks)
	if got, err := db.TaskByRef(ctx, "payment", "b"); err != nil || got.ID != tasks[1].ID {
		t.Errorf("TaskByRef(b) = %v, %v; want task %s", got, err, tasks[1].ID)
	}
	if got, err := db.TaskByToken(ctx, "tok-b"); err != nil || got.ID != tasks[1].ID {
		t.Errorf("TaskByToken(tok-b) = %v, %v; want task %s", got, err, tasks[1].ID)
	}
}

// sameEach checks that db holds each task as it was committed, history
// included.
func sameEach(t *testing.T, db *DB, tasks []*store.Task) {
	t.Helper()
	ctx := t.Context()
	for _, want := range tasks {
		got, err := db.Task(ctx, want.ID)
		if err != nil {
			t.Fatalf("task %s: %v", want.ID, err)
		}
		if got.Rev != want.Rev || got.Node != want.Node || got.Status != want.Status || got.Token != want.Token {
			t.Errorf("task %s: rev %d %s/%s token %q, want rev %d %s/%s token %q", want.ID, got.Rev, got.Node, got.Status,
				got.Token, want.Rev, want.Node, want.Status, want.Token)
		}
		h, err := db.History(ctx, want.ID)
		if err != nil || len(h) != int(want.HistoryLen) {
			t.Errorf("task %s: history of %d entries (%v), want %d", want.ID, len(h), err, want.HistoryLen)
		}
	}
}

// TestDB_withLogReplaysAfterACrash: what a crash leaves (a file without the
// logged writes, and the log) opens into a store that holds every
// acknowledged commit, with or without the log option, and empties the log;
// a torn record at the log's end, which nobody was answered for, is cut off.
func TestDB_withLogReplaysAfterACrash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts Options
		torn bool
	}{
		{"with_the_log", Options{Log: true}, false},
		{"without_the_log", Options{}, false},
		{"after_a_torn_record", Options{Log: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			path := tempPath(t)
			db := heldBack(t, path, &buf)
			tasks := logged(t, db)
			crashed := crashCopy(t, path)
			if tc.torn {
				f, err := os.OpenFile(crashed+".wal", os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{0, 0, 1, 0, 0xde, 0xad}) // a record's header, cut short
				f.Close()
			}

			var log bytes.Buffer
			opts := tc.opts
			opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
			re := openTest(t, crashed, opts)
			for _, task := range tasks {
				if !inBolt(t, re, task.ID) {
					t.Errorf("task %s is not in bbolt after the replay", task.ID)
				}
			}
			sameTasks(t, re, tasks)
			mustCheck(t, re)
			if !strings.Contains(log.String(), "write-ahead log replayed") || !strings.Contains(log.String(), "records=4") {
				t.Errorf("log %q, want the replay of 4 records", log.String())
			}
			if tc.torn && !strings.Contains(log.String(), "cut off a torn record") {
				t.Errorf("log %q, want the torn record's cut", log.String())
			}
			_, err := os.Stat(crashed + ".wal")
			if tc.opts.Log && err != nil {
				t.Errorf("the log after Open with Log: %v, want it kept", err)
			}
			if !tc.opts.Log && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the log after Open without Log: %v, want it removed", err)
			}

			// The replayed log is empty: a second crash and Open replays nothing.
			log.Reset()
			again := crashCopy(t, crashed)
			re.Close()
			second := openTest(t, again, Options{Log: true, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			sameTasks(t, second, tasks)
			if strings.Contains(log.String(), "replayed") {
				t.Errorf("second Open logged %q, want no replay", log.String())
			}
		})
	}
}

// TestDB_withLogRefusesWhenTheFileDoesNot: when bbolt refuses what the log
// holds (here the file's size limit), commits go on into the log until its
// buffer is full, then fail with an error that says why, and nothing
// acknowledged is lost: a later Open on a disk with room applies it.
func TestDB_withLogRefusesWhenTheFileDoesNot(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := tempPath(t)
	db, err := Open(path, Options{Log: true, LogBuffer: 1 << 20, bolt: func(o *bbolt.Options) { o.MaxSize = 4 << 20 }})
	if err != nil {
		t.Fatal(err)
	}
	huge := newTask("payment", "")
	huge.Data = make([]byte, 6<<20) // fits the log, not the file
	if err := db.Commit(ctx, creation(huge)); err != nil {
		t.Fatalf("Commit into the log = %v, want nil", err)
	}
	err = db.Commit(ctx, creation(newTask("payment", "")))
	if err == nil || !strings.Contains(err.Error(), "buffer is full") || !errors.Is(err, berrors.ErrMaxSizeReached) {
		t.Errorf("Commit with a full buffer bbolt cannot apply = %v, want the full buffer and the disk's error", err)
	}
	if got, err := db.Task(ctx, huge.ID); err != nil || got.Rev != 1 {
		t.Errorf("Task of the logged commit = %v, %v; want it at revision 1", got, err)
	}
	if _, err := db.List(ctx, store.Filter{}); !errors.Is(err, berrors.ErrMaxSizeReached) {
		t.Errorf("List while bbolt cannot apply the log = %v, want the disk's error", err)
	}
	db.Close()

	re := openTest(t, path, Options{})
	got, err := re.Task(ctx, huge.ID)
	if err != nil || len(got.Data) != len(huge.Data) {
		t.Fatalf("Task after an Open with room = %v, %v; want the logged task", got, err)
	}
	mustCheck(t, re)
}

// TestDB_withLogForgetsWhatTheFileHolds: once bbolt has applied the logged
// writes, neither the overlay nor the writer's queue keeps them: the log's
// memory is bounded by what the file lacks, not by what was ever logged.
func TestDB_withLogForgetsWhatTheFileHolds(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	db := heldBack(t, tempPath(t), &buf)
	tasks := logged(t, db)
	if _, err := db.List(t.Context(), store.Filter{}); err != nil { // waits for bbolt
		t.Fatal(err)
	}
	db.lg.ov.mu.RLock()
	inOverlay := len(db.lg.ov.tasks) + len(db.lg.ov.refs) + len(db.lg.ov.tokens) + db.lg.ov.timers
	db.lg.ov.mu.RUnlock()
	db.lg.mu.Lock()
	pending, bytes := len(db.lg.pending), db.lg.pendingBytes
	db.lg.mu.Unlock()
	if inOverlay != 0 || pending != 0 || bytes != 0 {
		t.Errorf("after the apply: %d overlay entries, %d pending records of %d bytes; want none", inOverlay, pending, bytes)
	}
	sameTasks(t, db, tasks)
}

// TestLog_bufferCountsWhatItHolds is the log buffer's promise that its
// bound (Options.LogBuffer) bounds memory: the Go heap the writes held for
// bbolt take is at most what the buffer counts for them. Parked tasks, each
// with a ref, a callback token, a timer and two history entries, are logged
// by concurrent commits and held back from bbolt; the heap grows by no more
// than the buffer counts. (Not parallel: it reads the process's heap.)
func TestLog_bufferCountsWhatItHolds(t *testing.T) {
	db := openTest(t, tempPath(t), Options{Log: true, logIdle: time.Hour, LogBuffer: 1 << 30})
	data := []byte(`{"amount":100,"currency":"UAH","description":"` + strings.Repeat("x", 300) + `"}`)
	due := time.Date(2030, 1, 2, 4, 0, 0, 0, time.UTC)
	park := func(i int) {
		tk := newTask("payment", fmt.Sprintf("order-%d", i))
		tk.Data, tk.HistoryLen = data, 2
		tk.Node, tk.Status, tk.Timer, tk.TimerAt = "wait", store.StatusWaiting, "timeout", due
		tk.Token = "tok-" + tk.ID.String()
		c := store.Change{Task: tk, History: []store.HistoryEntry{
			{Seq: 0, At: tk.Created, To: "start", Event: "submit"},
			{Seq: 1, At: tk.Created, From: "start", To: "wait", Event: "next"},
		}}
		if err := db.Commit(t.Context(), c); err != nil {
			t.Error(err)
		}
	}
	park(-1)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	db.lg.mu.Lock()
	counted := db.lg.pendingBytes
	db.lg.mu.Unlock()

	const n, clients = 8000, 64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; i < n; i += clients {
				park(i)
			}
		})
	}
	wg.Wait()
	runtime.GC()
	runtime.ReadMemStats(&after)
	db.lg.mu.Lock()
	counted = db.lg.pendingBytes - counted
	db.lg.mu.Unlock()
	if db.lg.applied.Load() != 0 {
		t.Fatal("bbolt applied logged writes: the test measures nothing")
	}
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d writes held: %d B each on the heap, %d B each counted", n, held/n, counted/n)
	if held > int64(counted) {
		t.Errorf("the log holds %d MiB of heap for %d writes but counts %d MiB against its buffer", held>>20, n, counted>>20)
	}
}

// TestLog_staysSmallUnderSteadyLoad: under commits that never pause, bbolt
// applies the log behind them and the log never holds only applied
// records, so it is rewritten with the records bbolt lacks instead of
// growing without end; a crash copy taken then replays every commit.
func TestLog_staysSmallUnderSteadyLoad(t *testing.T) {
	const buffer, cutAt = 64 << 10, 16 << 10
	path := tempPath(t)
	db := openTest(t, path, Options{Log: true, logIdle: time.Hour, LogBuffer: buffer, logCut: cutAt})
	ctx := t.Context()
	const clients, each = 8, 150
	tasks := make([][]*store.Task, clients)
	var largest atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for range each {
				task := newTask("payment", "")
				if err := db.Commit(ctx, creation(task)); err != nil {
					t.Error(err)
					return
				}
				if c%2 == 0 {
					if err := db.Commit(ctx, finishing(task, store.StatusSucceeded)); err != nil {
						t.Error(err)
						return
					}
				}
				tasks[c] = append(tasks[c], task)
				if fi, err := os.Stat(path + ".wal"); err == nil && fi.Size() > largest.Load() {
					largest.Store(fi.Size())
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// A record holds one group of commits; a group is at most a few KiB here.
	if bound := int64(2*buffer + 32<<10); largest.Load() > bound {
		t.Errorf("the log grew to %d bytes; want at most %d", largest.Load(), bound)
	}
	if db.lg.rewrites.Load() == 0 {
		t.Fatalf("the log was never rewritten (applied %d of %d records): the test proves nothing", db.lg.applied.Load(), db.lg.seq)
	}
	if db.lg.applied.Load() == 0 {
		t.Fatal("bbolt applied nothing: the test proves nothing")
	}
	// Once no apply runs (the rest stays below the buffer's half, held
	// back), the files are what a crash would leave.
	untilApplyIdle(db)
	copied := openTest(t, crashCopy(t, path), Options{})
	var all []*store.Task
	for _, ts := range tasks {
		all = append(all, ts...)
	}
	sameEach(t, copied, all)
	mustCheck(t, copied)
}

// TestLog_openDropsAnUnfinishedRewrite: a crash in the middle of a rewrite
// leaves the new log's copy beside the whole old log; Open removes the copy
// and replays the old log.
func TestLog_openDropsAnUnfinishedRewrite(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	db := heldBack(t, tempPath(t), &buf)
	tasks := logged(t, db)
	path := crashCopy(t, db.bolt.Path())
	if err := os.WriteFile(path+".wal.tmp", []byte("half a rewritten log"), 0o600); err != nil {
		t.Fatal(err)
	}
	copied := openTest(t, path, Options{Log: true})
	sameTasks(t, copied, tasks)
	if _, err := os.Stat(path + ".wal.tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unfinished rewrite after Open: %v; want it removed", err)
	}
}

// TestLog_aFailedRewriteLosesNothing: when the log cannot be rewritten
// (here its copy cannot be created), commits go on into the log in use,
// which grows, and a crash copy replays every one of them.
func TestLog_aFailedRewriteLosesNothing(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	path := tempPath(t)
	db := openTest(t, path, Options{Log: true, logIdle: time.Hour, LogBuffer: 64 << 10, logCut: 16 << 10,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := os.Mkdir(path+".wal.tmp", 0o700); err != nil { // where the copy would go
		t.Fatal(err)
	}
	var tasks []*store.Task
	for range 400 {
		task := newTask("payment", "")
		if err := db.Commit(t.Context(), creation(task)); err != nil {
			t.Fatalf("commit while the log cannot be rewritten: %v", err)
		}
		tasks = append(tasks, task)
	}
	if db.lg.rewrites.Load() != 0 || !strings.Contains(logs.String(), "cutting it failed") {
		t.Fatalf("rewrites %d, log:\n%s\nwant failed rewrites, warned about", db.lg.rewrites.Load(), logs.String())
	}
	if db.lg.applied.Load() == 0 {
		t.Fatal("bbolt applied nothing: the log could have been emptied instead of rewritten")
	}
	untilApplyIdle(db) // no apply runs while the files are copied
	if err := os.Remove(path + ".wal.tmp"); err != nil {
		t.Fatal(err)
	}
	copied := openTest(t, crashCopy(t, path), Options{})
	sameEach(t, copied, tasks)
	mustCheck(t, copied)
}

// untilApplyIdle waits until bbolt has applied nothing for 100 ms: with the
// apply held back (logIdle) and the rest of the log under the buffer's
// half, no apply starts again, and the files are what a crash would leave.
func untilApplyIdle(db *DB) {
	for last := db.lg.applied.Load(); ; {
		time.Sleep(100 * time.Millisecond)
		now := db.lg.applied.Load()
		if now == last {
			return
		}
		last = now
	}
}

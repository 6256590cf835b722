package bolt

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/store"
)

// BenchmarkDB_timeouts measures the store's part of a timer burst without
// the engine, for comparing store changes with less noise than the bench's
// scale scenario: a file of 10 × b.N tasks waiting in a callback node (with
// a token and a timer, due now for every tenth task, two days later for the
// others) is closed and opened again, then every tenth task times out into
// a final node with one history entry, each in a commit of
// its own from one of 2,048 goroutines, as the timer service sends them, so
// that the writer groups them. Each run parks its tasks first, so give it a
// fixed count:
//
//	go test -run '^$' -bench DB_timeouts -benchtime 20000x ./store/bolt
//
// It reports the wall time per timeout (the writer is the one serial stage,
// so this is its time per timeout), the pages written per timeout and the
// allocations per timeout, callers' and writer's (the writer pays GC
// assists for its own).
func BenchmarkDB_timeouts(b *testing.B) {
	ctx := context.Background()
	path := tempPath(b)
	db, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	due := time.Date(2030, 1, 2, 4, 0, 0, 0, time.UTC)
	tasks := make([]*store.Task, 0, 10*b.N)
	for len(tasks) < cap(tasks) {
		batch := make([]store.Change, 0, 1000)
		for range min(1000, cap(tasks)-len(tasks)) {
			t := newTask("payment", "")
			t.Node, t.Status, t.Timer, t.TimerAt = "wait", store.StatusWaiting, "timeout", due
			if len(tasks)%10 != 0 {
				t.TimerAt = due.Add(48 * time.Hour) // the timeouts due now are contiguous in timers
			}
			t.Token = "tok-" + t.ID.String() // in creation order, as the engine's
			batch = append(batch, creation(t))
			tasks = append(tasks, t)
		}
		if err := db.Commit(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	var pages atomic.Int64
	db = openTest(b, path, Options{Metrics: func(g GroupCommit) { pages.Add(int64(g.Pages)) }})

	work := make(chan *store.Task)
	var wg sync.WaitGroup
	for range 2048 {
		wg.Go(func() {
			for t := range work {
				rev := t.Rev
				t.Node, t.Status, t.Timer, t.TimerAt = "expired", store.StatusSucceeded, "", time.Time{}
				t.HistoryLen++
				h := store.HistoryEntry{Seq: t.HistoryLen - 1, At: due, From: "wait", To: "expired", Event: "timeout", Actor: "timer"}
				if err := db.Commit(ctx, store.Change{Task: t, Rev: rev, History: []store.HistoryEntry{h}}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		work <- tasks[10*i]
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/timeout")
	b.ReportMetric(float64(pages.Load())/float64(b.N), "pages/timeout")
	b.ReportMetric(0, "ns/op")
}

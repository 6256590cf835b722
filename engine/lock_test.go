package engine

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestTaskLocks(t *testing.T) {
	t.Parallel()
	t.Run("serialises_the_events_of_one_task", func(t *testing.T) {
		t.Parallel()
		var l taskLocks
		id := uuid.Must(uuid.NewV7())
		var inside, most atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				unlock := l.lock(id)
				n := inside.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(100 * time.Microsecond)
				inside.Add(-1)
				unlock()
			})
		}
		wg.Wait()
		if most.Load() != 1 {
			t.Errorf("%d events of one task held its lock at once, want 1", most.Load())
		}
	})
	t.Run("never_makes_different_tasks_wait_for_each_other", func(t *testing.T) {
		t.Parallel()
		var l taskLocks
		// Tasks whose ids share the last byte (the old striped locks put them
		// on one mutex) each hold their lock while the others take theirs.
		var unlocks []func()
		for i := range 300 {
			id := uuid.Must(uuid.NewV7())
			id[15], id[0] = 7, byte(i)
			id[1] = byte(i >> 8)
			done := make(chan func())
			go func() { done <- l.lock(id) }()
			select {
			case u := <-done:
				unlocks = append(unlocks, u)
			case <-time.After(5 * time.Second):
				t.Fatalf("lock of task %d waited for another task's lock", i)
			}
		}
		for _, u := range unlocks {
			u()
		}
		for i := range l.shards {
			if n := len(l.shards[i].m); n != 0 {
				t.Errorf("shard %d keeps %d locks after every one was given back", i, n)
			}
		}
	})
}

package engine_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// burstFlow waits a minute, then finishes: every task submitted at one
// instant falls due at the same instant.
const burstFlow = `process: burst
title: "Timer burst"
input:
  n: {type: integer, required: true}
start: wait
nodes:
  wait:
    type: delay
    for: 1m
    next: done
  done: {type: final, result: success}
`

// withBurst adds the burst flow to the engine's definitions.
func withBurst(t *testing.T) option {
	path := filepath.Join(t.TempDir(), "burst.yaml")
	if err := os.WriteFile(path, []byte(burstFlow), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFiles([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	return func(c *engine.Config) { c.Definitions = append(c.Definitions, defs...) }
}

// TestEngine_timerBurst: more timers fall due at once than the timer service
// keeps in flight (4096) or reads per round; the service, on its own, fires
// every one exactly once while it reads the next ones during the commits.
// The clock jumps once, while the service is still busy with the kicks of
// the submits: a service that then finds timers due must not wait for the
// engine's clock to move again.
func TestEngine_timerBurst(t *testing.T) {
	t.Parallel()
	const n = 5000
	var mu sync.Mutex
	finals := map[uuid.UUID]int{}
	b := setup(t, withBurst(t), func(c *engine.Config) {
		c.TimerPoll = 10 * time.Millisecond
		next := c.OnCommit
		c.OnCommit = func(task *store.Task) {
			if task.Process == "burst" && task.Status == store.StatusSucceeded {
				mu.Lock()
				finals[task.ID]++
				mu.Unlock()
			}
			next(task)
		}
	})
	ids := make([]uuid.UUID, n)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				v := b.submit("burst", "", `{"n": 1}`)
				ids[i] = v.ID
			}
		})
	}
	wg.Wait()
	b.clock.Advance(2 * time.Minute) // no FireDue: the timer service must fire them all

	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		done := len(finals)
		mu.Unlock()
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d due timers fired within 30s", done, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if finals[id] != 1 {
			t.Fatalf("task %s reached its final node %d times, want once", id, finals[id])
		}
	}
	for _, id := range ids[:50] {
		h := b.history(id)
		if got := events(h); got != "submit next" {
			t.Errorf("task %s history %q, want one timed-out wait: %q", id, got, "submit next")
		}
	}
}

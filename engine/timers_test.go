package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
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
func withBurst(t *testing.T) option { return withFlow(t, burstFlow) }

// withFlow adds a flow, given as YAML, to the engine's definitions.
func withFlow(t *testing.T, src string) option {
	path := filepath.Join(t.TempDir(), "flow.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
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

// expiryFlow waits for a callback; the timeout goes to a set node when the
// task asked for it, straight to the end otherwise.
const expiryFlow = `process: expiry
title: "Timeouts and the task's data"
input:
  order_id: {type: string, required: true}
  note:     {type: string}
  mark:     {type: boolean}
start: wait
nodes:
  wait:
    type: callback
    timeout: 30s
    on_timeout: route
    next: done
  route:
    type: condition
    cases:
      - {name: mark, when: 'mark == true', next: stamp}
    default: expired
  stamp:
    type: set
    set: {expired_at: "{{ task.now }}", note: "expired: {{ note }}", "trace.expired": true}
    next: expired
  done:    {type: final, result: success}
  expired: {type: final, result: success}
`

// TestEngine_timeoutData: a timeout keeps the task's data as it was, and
// what nodes after the timeout write is stored (the engine encodes the
// data again only when a node changed it, so both must hold).
func TestEngine_timeoutData(t *testing.T) {
	t.Parallel()
	b := setup(t, withFlow(t, expiryFlow))
	plain := b.submit("expiry", "", `{"order_id": "o-1", "note": "keep me"}`)
	marked := b.submit("expiry", "", `{"order_id": "o-2", "note": "was", "mark": true}`)
	before := b.waitIn(plain.ID, "wait", store.StatusWaiting)
	b.waitIn(marked.ID, "wait", store.StatusWaiting)

	b.advance(31 * time.Second)

	after := b.waitIn(plain.ID, "expired", store.StatusSucceeded)
	if string(after.Data) != string(before.Data) {
		t.Errorf("a plain timeout changed the data:\n before %s\n after  %s", before.Data, after.Data)
	}
	got := decode(t, string(b.waitIn(marked.ID, "expired", store.StatusSucceeded).Data))
	if got["note"] != "expired: was" || got["expired_at"] == nil || got["order_id"] != "o-2" {
		t.Errorf("the set node's writes after the timeout are not all stored: %v", got)
	}
	if tr, _ := got["trace"].(map[string]any); tr["expired"] != true {
		t.Errorf("the nested write after the timeout is not stored: %v", got)
	}
}

// twoWaitsFlow waits a minute, then for a callback for at most 30 seconds.
const twoWaitsFlow = `process: twowaits
title: "Two waits"
start: first
nodes:
  first:
    type: delay
    for: 1m
    next: second
  second:
    type: callback
    timeout: 30s
    on_timeout: expired
    next: done
  done:    {type: final, result: success}
  expired: {type: final, result: success}
`

// readAhead is a store whose batch reads (store.BatchReader, which the timer
// service reads due tasks through) return the tasks as they were when the
// test froze them, as a read-ahead that a commit overtook would.
type readAhead struct {
	*bolt.DB
	frozen map[uuid.UUID]*store.Task
	reads  atomic.Int32
}

func (r *readAhead) Tasks(ctx context.Context, ids []uuid.UUID) ([]*store.Task, error) {
	r.reads.Add(1)
	ts, err := r.DB.Tasks(ctx, ids)
	for i, id := range ids {
		if t, ok := r.frozen[id]; ok && err == nil {
			ts[i] = t.Clone()
		}
	}
	return ts, err
}

// TestEngine_timerReadAheadOvertaken: the timer service reads the tasks of
// due timers ahead of their fires; when a task moved since (here its first
// wait timed out, and the read-ahead still shows it there), the fire must not
// drop the timer or move the task on the old record: it loads the task and
// applies the timer that is due now, once.
func TestEngine_timerReadAheadOvertaken(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := setup(t, withFlow(t, twoWaitsFlow))
	v := b.submit("twowaits", "", `{}`)
	before, err := b.st.Task(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	b.advance(time.Minute)
	b.waitIn(v.ID, "second", store.StatusWaiting)

	var ra *readAhead
	b.wrap = func(db *bolt.DB) store.Store {
		ra = &readAhead{DB: db, frozen: map[uuid.UUID]*store.Task{v.ID: before}}
		return ra
	}
	b.restart()
	b.advance(time.Minute) // the callback's 30 s are over
	if ra.reads.Load() == 0 {
		t.Fatal("the timer service did not read the due tasks ahead")
	}

	got := b.waitIn(v.ID, "expired", store.StatusSucceeded)
	if want := "submit next timeout"; events(b.history(v.ID)) != want {
		t.Errorf("history %q, want %q: one timed-out delay, one timed-out callback", events(b.history(v.ID)), want)
	}
	if got.Rev != before.Rev+2 {
		t.Errorf("task at revision %d, want %d: two moves after the read-ahead's", got.Rev, before.Rev+2)
	}
}

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/client"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/postgres"
)

// TestCluster_SIGKILL drives seed holds through three nodes, kills one with
// SIGKILL a third of the way in, keeps going, and proves that every
// acknowledged task was held exactly once.
func TestCluster_SIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("the cluster test runs three servers and PostgreSQL under load; skipped with -short")
	}
	const (
		total   = 300 // seed holds submitted
		killAt  = 100 // acknowledged when the victim dies
		clients = 16
		lease   = 4 * time.Second
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newCluster(t, 3, lease)
	c.prov.latency.Store(int64(150 * time.Millisecond))
	victim := c.node("n2")
	api := client.New(c.lb.url(), "", &http.Client{Timeout: 10 * time.Second})

	var (
		mu      sync.Mutex
		acked   = map[string]uuid.UUID{} // order_id -> task
		next    atomic.Int64
		retries atomic.Int64
		killed  time.Time
	)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for i := next.Add(1); i <= total && ctx.Err() == nil; i = next.Add(1) {
				order := fmt.Sprintf("o%04d", i)
				for ctx.Err() == nil {
					task, _, err := api.Submit(ctx, "liqpay-hold", order, holdData(order))
					if err != nil {
						retries.Add(1) // the node died under the request: the same ref again
						time.Sleep(50 * time.Millisecond)
						continue
					}
					mu.Lock()
					acked[order] = uuid.MustParse(task.ID)
					if len(acked) == killAt {
						victim.kill()
						killed = time.Now()
					}
					mu.Unlock()
					break
				}
			}
		})
	}
	wg.Wait()
	if len(acked) != total {
		t.Fatalf("only %d of %d submits acknowledged in time", len(acked), total)
	}
	t.Logf("%d holds acknowledged (%d submits retried); %s killed with SIGKILL after %d", len(acked), retries.Load(), victim.name, killAt)

	st, err := postgres.Open(ctx, c.store, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tasks := awaitFinal(ctx, t, st, acked)
	t.Logf("all finished %s after the kill", time.Since(killed).Round(100*time.Millisecond))

	callers := checkProvider(t, c, acked, victim.name)
	for order, id := range acked {
		task := tasks[id]
		if task.Status != store.StatusSucceeded || task.Node != "held" {
			t.Errorf("order %s (task %s) is %s in %s, error %+v", order, id, task.Status, task.Node, task.Error)
			continue
		}
		checkHistory(ctx, t, st, task)
	}
	checkCallbacks(t, c, acked, callers)
	if err := st.Check(); err != nil {
		t.Errorf("the database is inconsistent: %v", err)
	}
	for _, n := range c.nodes {
		if n != victim {
			logs := n.logs.String()
			if got := strings.Count(logs, "cluster: claimed tasks"); got > 0 {
				t.Logf("%s claimed work no node was doing %d time(s)", n.name, got)
			}
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, `"level":"ERROR"`) {
					t.Errorf("%s logged an error: %s", n.name, line)
				}
			}
			n.stop(t)
		}
	}
}

// awaitFinal waits (bounded by ctx) until every acknowledged task is
// finished or escalated, and returns them.
func awaitFinal(ctx context.Context, t *testing.T, st store.Store, acked map[string]uuid.UUID) map[uuid.UUID]*store.Task {
	t.Helper()
	done := map[uuid.UUID]*store.Task{}
	for {
		for _, id := range acked {
			if done[id] != nil {
				continue
			}
			task, err := st.Task(ctx, id)
			if err != nil {
				t.Fatalf("task %s: %v", id, err)
			}
			if task.Status.Final() || task.Status == store.StatusEscalated {
				done[id] = task
			}
		}
		if len(done) == len(acked) {
			return done
		}
		select {
		case <-ctx.Done():
			for order, id := range acked {
				if done[id] == nil {
					task, _ := st.Task(context.Background(), id)
					t.Errorf("order %s (task %s) never finished: %+v", order, id, task)
				}
			}
			t.FailNow()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkHistory fails unless the task moved into each node of the seed hold
// once: no node's step was committed twice.
func checkHistory(ctx context.Context, t *testing.T, st store.Store, task *store.Task) {
	t.Helper()
	h, err := st.History(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	entered := map[string]int{}
	for _, e := range h {
		if e.From != e.To || e.Event == "submit" {
			entered[e.To]++
		}
	}
	for _, n := range []string{"calling_api", "receive_callback", "check_status", "held"} {
		if entered[n] != 1 {
			t.Errorf("task %s entered %s %d times; history: %+v", task.ID, n, entered[n], h)
			return
		}
	}
	if len(entered) != 4 {
		t.Errorf("task %s went through %v", task.ID, entered)
	}
}

// checkProvider fails unless the simulator held each order once, only calls
// first made by the node that died were repeated, and every repeated call
// carried the first one's idempotency key. It returns the node that made
// each order's call.
func checkProvider(t *testing.T, c *cluster, acked map[string]uuid.UUID, victim string) map[string]string {
	t.Helper()
	holds := map[string]int{}
	for _, call := range c.prov.sim.Calls() {
		if call.Action == "hold" {
			holds[call.OrderID]++
			if call.ErrCode != "" {
				t.Errorf("order %s: the simulator refused a hold: %s", call.OrderID, call.ErrCode)
			}
		}
	}
	callers := map[string]string{}
	repeated := map[string]int{} // by the node that repeated
	for order, as := range c.prov.arrivals() {
		if _, ok := acked[order]; !ok {
			t.Errorf("a hold for order %s, which was never acknowledged", order)
			continue
		}
		callers[order] = as[0].Node
		if len(as) > 1 && as[0].Node != victim {
			t.Errorf("order %s: the call of %s, which did not die, was repeated: %+v", order, as[0].Node, as)
		}
		for _, a := range as[1:] {
			if a.Key != as[0].Key {
				t.Errorf("order %s: a repeated call carried key %s, the first %s", order, a.Key, as[0].Key)
			}
			repeated[a.Node]++
		}
	}
	for order := range acked {
		if holds[order] != 1 {
			t.Errorf("order %s: the simulator saw %d holds, want 1", order, holds[order])
		}
	}
	t.Logf("every order held once; calls repeated with the same key (to the provider's dedupe): %v", repeated)
	if len(repeated) == 0 {
		t.Error("no call of the node that died was taken over: it had none in flight, and the test proved nothing about it")
	}
	return callers
}

// checkCallbacks counts the callbacks each node accepted and fails unless
// some were accepted by a node other than the one that made the call.
func checkCallbacks(t *testing.T, c *cluster, acked map[string]uuid.UUID, callers map[string]string) {
	t.Helper()
	order := map[uuid.UUID]string{}
	for o, id := range acked {
		order[id] = o
	}
	accepted, elsewhere := map[string]int{}, 0
	answers := map[string]int{}
	for _, s := range c.lb.served() {
		var res struct {
			Result string    `json:"result"`
			TaskID uuid.UUID `json:"task_id"`
		}
		_ = json.Unmarshal(s.Body, &res)
		answers[fmt.Sprint(s.Status, " ", res.Result)]++
		if res.Result != "accepted" {
			continue
		}
		accepted[s.Node]++
		if caller := callers[order[res.TaskID]]; caller != "" && caller != s.Node {
			elsewhere++
		}
	}
	t.Logf("callbacks: answers %v; accepted by node %v; %d accepted by a node other than the caller", answers, accepted, elsewhere)
	if elsewhere == 0 {
		t.Error("no callback was accepted by a node other than the one that made the call")
	}
}

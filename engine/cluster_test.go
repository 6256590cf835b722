package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/postgres"
)

// pgEnv points the cluster tests at a PostgreSQL database in which they may
// create and drop schemas (see docs/postgres.md).
const pgEnv = "CONVEYOR_TEST_POSTGRES"

// pgSchema returns the URL of a fresh schema of the test database, dropped
// when the test ends. Without a database the test skips, except under CI.
func pgSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv(pgEnv)
	switch {
	case base != "":
	case os.Getenv("CI") != "":
		t.Fatal(pgEnv + " is not set, and CI never skips the PostgreSQL tests: .ci/run starts PostgreSQL with scripts/postgres.sh")
	default:
		t.Skip(pgEnv + " is not set: run `eval \"$(bash scripts/postgres.sh)\"` to start a local PostgreSQL")
	}
	name := "engine_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	pgExec(t, base, `CREATE SCHEMA `+name)
	t.Cleanup(func() { pgExec(t, base, `DROP SCHEMA `+name+` CASCADE`) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", pgEnv, err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

func pgExec(t *testing.T, u, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to %s: %v", pgEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// clusterProvider answers POST /{node}/charge after a delay (or, for the
// values of n in hold, not until release closes) and records which engine
// sent each request and its idempotency key.
type clusterProvider struct {
	srv     *httptest.Server
	delay   time.Duration
	hold    map[string]bool
	held    chan string   // receives n when a held request arrives
	release chan struct{} // closed to answer the held requests

	mu    sync.Mutex
	calls map[string][]providerCall // by n
}

type providerCall struct{ node, key string }

func newClusterProvider(t *testing.T, delay time.Duration, hold ...string) *clusterProvider {
	p := &clusterProvider{delay: delay, hold: map[string]bool{}, held: make(chan string, 10),
		release: make(chan struct{}), calls: map[string][]providerCall{}}
	for _, n := range hold {
		p.hold[n] = true
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *clusterProvider) unblock() {
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

func (p *clusterProvider) serve(w http.ResponseWriter, r *http.Request) {
	var body struct{ N, Key string }
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &body)
	node, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	p.mu.Lock()
	first := len(p.calls[body.N]) == 0
	p.calls[body.N] = append(p.calls[body.N], providerCall{node: node, key: r.Header.Get("Idempotency-Key")})
	p.mu.Unlock()
	if p.hold[body.N] && first {
		p.held <- body.N
		<-p.release
	}
	time.Sleep(p.delay)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ok"}`)
}

func (p *clusterProvider) callsOf(n string) []providerCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]providerCall(nil), p.calls[n]...)
}

// spyStore is a PostgreSQL store that records the timers each engine
// claimed.
type spyStore struct {
	*postgres.DB
	mu      *sync.Mutex
	claimed map[uuid.UUID]int
}

func (s spyStore) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.Timer, error) {
	ts, err := s.DB.ClaimDue(ctx, owner, now, lease, limit)
	s.mu.Lock()
	for _, t := range ts {
		s.claimed[t.TaskID]++
	}
	s.mu.Unlock()
	return ts, err
}

// cluster is a few engines sharing one PostgreSQL schema.
type clusterBundle struct {
	t       *testing.T
	url     string
	prov    *clusterProvider
	defs    []*processes.Definition
	loader  *processes.Loader
	key     []byte
	mu      sync.Mutex
	claimed map[uuid.UUID]int // timers claimed, over every engine
}

func setupCluster(t *testing.T, prov *clusterProvider) *clusterBundle {
	t.Helper()
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFiles([]string{"testdata/cluster.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	return &clusterBundle{t: t, url: pgSchema(t), prov: prov, defs: defs, loader: l, key: engine.NewKey(), claimed: map[uuid.UUID]int{}}
}

// clusterNode is one engine of the cluster and its own store connection.
type clusterNode struct {
	name string
	eng  *engine.Engine
	st   *postgres.DB
}

// node starts an engine named name; its calls go to the provider under
// /name/, so the provider knows who sent them.
func (b *clusterBundle) node(name string, lease time.Duration) *clusterNode {
	b.t.Helper()
	st, err := postgres.Open(context.Background(), b.url, postgres.Options{})
	if err != nil {
		b.t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
	}
	eng, err := engine.New(context.Background(), engine.Config{Store: spyStore{st, &b.mu, b.claimed}, Definitions: b.defs,
		Loader: b.loader, Key: b.key, BaseURL: "http://conveyor.test", Env: map[string]string{"PROVIDER_URL": b.prov.srv.URL + "/" + name},
		Owner: name, Lease: lease, TimerPoll: 50 * time.Millisecond, Workers: 4, Logger: log})
	if err != nil {
		b.t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	n := &clusterNode{name: name, eng: eng, st: st}
	b.t.Cleanup(func() {
		b.prov.unblock() // a held call must return for Stop to
		eng.Stop()
		st.Close()
	})
	return n
}

// submit starts a task of the cluster flow on node n.
func (n *clusterNode) submit(t *testing.T, value string) uuid.UUID {
	t.Helper()
	v, _, err := n.eng.Submit(context.Background(), engine.SubmitRequest{Process: "cluster", Ref: value, Data: map[string]any{"n": value}})
	if err != nil {
		t.Fatalf("submit %s on %s: %v", value, n.name, err)
	}
	return v.ID
}

// awaitDone waits (bounded) until every task is done, reading through st.
func awaitDone(t *testing.T, st store.Store, ids []uuid.UUID, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			task, err := st.Task(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if task.Status == store.StatusSucceeded {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s (%s) is %s in %s, not done after %s", id, task.Ref, task.Status, task.Node, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// checkOnce fails unless the task's history moved it into each node once.
func checkOnce(t *testing.T, st store.Store, id uuid.UUID) {
	t.Helper()
	h, err := st.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	entered := map[string]int{}
	for _, e := range h {
		if e.From != e.To || e.Event == "submit" {
			entered[e.To]++
		}
	}
	for _, node := range []string{"call", "pause", "done"} {
		if entered[node] != 1 {
			t.Errorf("task %s entered %s %d times; history %v", id, node, entered[node], h)
		}
	}
}

func TestEngine_cluster(t *testing.T) {
	t.Parallel()
	t.Run("a_call_is_sent_once_by_the_engine_that_decided_it_and_each_timer_fires_once", func(t *testing.T) {
		t.Parallel()
		// The provider answers after longer than a lease: the engines must
		// renew it, or the other one would take the call over.
		prov := newClusterProvider(t, 1500*time.Millisecond)
		b := setupCluster(t, prov)
		nodes := []*clusterNode{b.node("a", time.Second), b.node("b", time.Second)}
		var ids []uuid.UUID
		sender := map[string]string{}
		for i := range 12 {
			n := nodes[i%2]
			value := fmt.Sprint("call-", i)
			ids = append(ids, n.submit(t, value))
			sender[value] = n.name
		}
		awaitDone(t, nodes[0].st, ids, 20*time.Second)
		for value, want := range sender {
			calls := prov.callsOf(value)
			if len(calls) != 1 || calls[0].node != want {
				t.Errorf("task %s submitted on %s: provider saw %+v, want one call from %s", value, want, calls, want)
			}
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, id := range ids {
			checkOnce(t, nodes[0].st, id)
			if b.claimed[id] != 1 {
				t.Errorf("task %s: its timer was claimed %d times, want once", id, b.claimed[id])
			}
		}
	})

	t.Run("a_dead_engines_task_is_taken_over_after_its_lease_with_the_same_key", func(t *testing.T) {
		t.Parallel()
		prov := newClusterProvider(t, 0, "lost")
		b := setupCluster(t, prov)
		a := b.node("a", time.Second)
		c := b.node("c", time.Second)
		id := a.submit(t, "lost")
		select {
		case <-prov.held:
		case <-time.After(10 * time.Second):
			t.Fatal("engine a never sent its call")
		}
		// Engine a dies with its call in flight: it can no longer renew,
		// commit or give anything back.
		a.st.Close()
		start := time.Now()
		awaitDone(t, c.st, []uuid.UUID{id}, 15*time.Second)
		took := time.Since(start)
		calls := prov.callsOf("lost")
		if len(calls) != 2 || calls[0].node != "a" || calls[1].node != "c" || calls[0].key != calls[1].key || calls[0].key == "" {
			t.Errorf("provider saw %+v; want a's call, then c's with the same idempotency key", calls)
		}
		if took < 500*time.Millisecond {
			t.Errorf("c took the task over after %s, before a's lease could expire", took)
		}
		checkOnce(t, c.st, id)
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.claimed[id] != 1 {
			t.Errorf("the delay's timer was claimed %d times, want once", b.claimed[id])
		}
	})

	t.Run("timers_fire_once_across_engines", func(t *testing.T) {
		t.Parallel()
		prov := newClusterProvider(t, 0)
		b := setupCluster(t, prov)
		a, c := b.node("a", time.Second), b.node("c", time.Second)
		var ids []uuid.UUID
		for i := range 40 {
			n := a
			if i%2 == 1 {
				n = c
			}
			ids = append(ids, n.submit(t, fmt.Sprint("timer-", i)))
		}
		awaitDone(t, a.st, ids, 20*time.Second)
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, id := range ids {
			if b.claimed[id] != 1 {
				t.Errorf("task %s: its timer was claimed %d times, want once", id, b.claimed[id])
			}
			checkOnce(t, a.st, id)
		}
	})
}

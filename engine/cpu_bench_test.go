package engine_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// memStore keeps tasks in memory, for benchmarks of the engine's own work per
// event: no encoding, no disk, no history. It implements what an engine that
// is not started uses; any other method panics.
type memStore struct {
	store.Store

	mu      sync.Mutex
	tasks   map[uuid.UUID]*store.Task
	tokens  map[string]uuid.UUID
	commits chan uuid.UUID
}

func newMemStore() *memStore {
	return &memStore{tasks: map[uuid.UUID]*store.Task{}, tokens: map[string]uuid.UUID{}, commits: make(chan uuid.UUID, 16)}
}

func (m *memStore) PutVersion(context.Context, store.Version) error { return nil }

func (m *memStore) Commit(_ context.Context, cs ...store.Change) error {
	m.mu.Lock()
	for _, c := range cs {
		if old := m.tasks[c.Task.ID]; (old == nil) != (c.Rev == 0) || old != nil && old.Rev != c.Rev {
			m.mu.Unlock()
			return store.ErrConflict
		}
		c.Task.Rev = c.Rev + 1
		if c.Task.Status.Final() {
			delete(m.tasks, c.Task.ID)
			delete(m.tokens, c.Task.Token)
			continue
		}
		m.tasks[c.Task.ID] = c.Task.Clone()
		m.tokens[c.Task.Token] = c.Task.ID
	}
	m.mu.Unlock()
	for _, c := range cs {
		select {
		case m.commits <- c.Task.ID:
		default:
		}
	}
	return nil
}

func (m *memStore) Task(_ context.Context, id uuid.UUID) (*store.Task, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tasks[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return t.Clone(), nil
}

func (m *memStore) TaskByToken(ctx context.Context, token string) (*store.Task, error) {
	m.mu.Lock()
	id, ok := m.tokens[token]
	m.mu.Unlock()
	if !ok {
		return nil, store.ErrNotFound
	}
	return m.Task(ctx, id)
}

func (m *memStore) Due(_ context.Context, at time.Time, limit int) ([]store.Timer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Timer
	for _, t := range m.tasks {
		if !t.TimerAt.IsZero() && !t.TimerAt.After(at) && len(out) < limit {
			out = append(out, store.Timer{TaskID: t.ID, At: t.TimerAt})
		}
	}
	return out, nil
}

// pendingProvider answers every outbound call with a pending status, without
// a network.
type pendingProvider struct{}

func (pendingProvider) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"status":"pending"}`)), Request: r}, nil
}

// cpuEngine is an engine that is not started, on a memStore.
func cpuEngine(b *testing.B) (*engine.Engine, *memStore, *engine.FakeClock) {
	b.Helper()
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFiles([]string{"testdata/internal.yaml", "testdata/payment.yaml"})
	if err != nil {
		b.Fatal(err)
	}
	st := newMemStore()
	clock := engine.NewFakeClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	eng, err := engine.New(context.Background(), engine.Config{Store: st, Definitions: defs, Loader: l, Key: engine.NewKey(),
		BaseURL: "http://conveyor.test", Env: map[string]string{"PROVIDER_URL": "http://provider.test"},
		Secrets: map[string]string{"api_key": "k-123"}, Clock: clock, HTTPClient: &http.Client{Transport: pendingProvider{}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(eng.Stop)
	return eng, st, clock
}

// BenchmarkEngine_cpuInternal is the engine's CPU per submit of the internal
// flow (12 instant nodes, one commit), with a store that costs nothing.
func BenchmarkEngine_cpuInternal(b *testing.B) {
	eng, _, _ := cpuEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, _, err := eng.Submit(ctx, engine.SubmitRequest{Process: "internal", Data: map[string]any{"rounds": json.Number("5")}})
		if err != nil || v.Status != store.StatusSucceeded {
			b.Fatalf("submit: %v %+v", err, v)
		}
	}
}

// BenchmarkEngine_cpuPayment is the engine's CPU per payment flow: four
// events (submit, the call's reply, a callback, a timer), with a store and a
// provider that cost nothing.
func BenchmarkEngine_cpuPayment(b *testing.B) {
	eng, st, clock := cpuEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, _, err := eng.Submit(ctx, engine.SubmitRequest{Process: "payment", Data: map[string]any{
			"amount": "12.50", "card": "4242424242424242", "cvv": "987"}})
		if err != nil {
			b.Fatal(err)
		}
		var t *store.Task
		for t == nil || t.Node != "wait" {
			<-st.commits
			if t, err = st.Task(ctx, v.ID); err != nil {
				b.Fatal(err)
			}
		}
		res, err := eng.Callback(ctx, engine.CallbackRequest{Token: t.Token, ContentType: "application/json", Body: []byte(`{"status": "ok"}`)})
		if err != nil || res.Result != engine.CallbackAccepted || res.Node != "settle" {
			b.Fatalf("callback: %+v %v", res, err)
		}
		clock.Advance(31 * time.Second)
		if n, err := eng.FireDue(ctx); err != nil || n != 1 {
			b.Fatalf("fire: %d %v", n, err)
		}
		if _, err := st.Task(ctx, v.ID); err != store.ErrNotFound {
			b.Fatalf("task did not finish: %v", err)
		}
	}
}

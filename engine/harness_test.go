package engine_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// provider is a scriptable HTTP provider on loopback: each request gets the
// next scripted answer (the last one repeats) and is recorded.
type provider struct {
	srv *httptest.Server

	mu       sync.Mutex
	answers  []answer
	requests []seen
}

type answer struct {
	status int
	body   string
	// before runs before the answer is written (e.g. to call back early).
	before func(r seen)
}

type seen struct {
	Header http.Header
	Body   map[string]any
}

func newProvider(t testing.TB) *provider {
	p := &provider{}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) script(as ...answer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answers = as
}

func (p *provider) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	s := seen{Header: r.Header.Clone(), Body: body}
	p.mu.Lock()
	p.requests = append(p.requests, s)
	a := answer{status: 200, body: `{"status":"pending"}`}
	if len(p.answers) > 0 {
		a = p.answers[0]
		if len(p.answers) > 1 {
			p.answers = p.answers[1:]
		}
	}
	p.mu.Unlock()
	if a.before != nil {
		a.before(s)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func (p *provider) seen() []seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]seen(nil), p.requests...)
}

// bundle is what each engine test works with.
type bundle struct {
	t        testing.TB
	eng      *engine.Engine
	st       *bolt.DB
	clock    *engine.FakeClock
	provider *provider
	cfg      engine.Config
	path     string
	notify   chan struct{}
	// wrap, when set, wraps the store the engine gets at the next start.
	wrap func(*bolt.DB) store.Store
}

type option func(*engine.Config)

func setup(t testing.TB, opts ...option) *bundle {
	t.Helper()
	b := &bundle{t: t, clock: engine.NewFakeClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)),
		provider: newProvider(t), path: filepath.Join(t.TempDir(), "conveyor.db"), notify: make(chan struct{}, 1)}
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFiles([]string{"testdata/internal.yaml", "testdata/payment.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	b.cfg = engine.Config{Definitions: defs, Loader: l, Key: engine.NewKey(), BaseURL: "http://conveyor.test",
		Env: map[string]string{"PROVIDER_URL": b.provider.srv.URL}, Secrets: map[string]string{"api_key": "k-123"},
		Clock: b.clock, TimerPoll: time.Hour, OnCommit: func(*store.Task) {
			select {
			case b.notify <- struct{}{}:
			default:
			}
		}}
	for _, o := range opts {
		o(&b.cfg)
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *bundle) start() {
	b.t.Helper()
	st, err := bolt.Open(b.path, bolt.Options{})
	if err != nil {
		b.t.Fatal(err)
	}
	b.st = st
	b.cfg.Store = st
	if b.wrap != nil {
		b.cfg.Store = b.wrap(st)
	}
	eng, err := engine.New(context.Background(), b.cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	b.eng = eng
}

func (b *bundle) stop() {
	if b.eng == nil {
		return
	}
	b.eng.Stop()
	if err := b.st.Check(); err != nil {
		b.t.Errorf("store check after test: %v", err)
	}
	_ = b.st.Close()
	b.eng = nil
}

// restart stops the engine and store and starts fresh ones on the same file,
// as a new process would.
func (b *bundle) restart() {
	b.stop()
	b.start()
}

// submit submits a task from JSON data and fails the test on error.
func (b *bundle) submit(process, ref, data string) *engine.TaskView {
	b.t.Helper()
	v, _, err := b.eng.Submit(context.Background(), engine.SubmitRequest{Process: process, Ref: ref, Data: decode(b.t, data)})
	if err != nil {
		b.t.Fatalf("submit: %v", err)
	}
	return v
}

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

// waitFor waits (bounded) until the task satisfies pred, woken by commits.
func (b *bundle) waitFor(id uuid.UUID, what string, pred func(*store.Task) bool) *store.Task {
	b.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		task, err := b.st.Task(context.Background(), id)
		if err != nil {
			b.t.Fatal(err)
		}
		if pred(task) {
			return task
		}
		select {
		case <-b.notify:
		case <-time.After(50 * time.Millisecond): // commits from before the wait began
		case <-deadline:
			b.t.Fatalf("task %s never became %s; it is %s in %s (error %+v)", id, what, task.Status, task.Node, task.Error)
		}
	}
}

// waitIn waits until the task is in node with status.
func (b *bundle) waitIn(id uuid.UUID, node string, status store.Status) *store.Task {
	b.t.Helper()
	return b.waitFor(id, string(status)+" in "+node, func(t *store.Task) bool { return t.Node == node && t.Status == status })
}

// advance moves the fake clock and fires every due timer.
func (b *bundle) advance(d time.Duration) {
	b.t.Helper()
	b.clock.Advance(d)
	if _, err := b.eng.FireDue(context.Background()); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bundle) history(id uuid.UUID) []store.HistoryEntry {
	b.t.Helper()
	h, err := b.st.History(context.Background(), id)
	if err != nil {
		b.t.Fatal(err)
	}
	return h
}

// events lists the history's events in order.
func events(h []store.HistoryEntry) string {
	var out []string
	for _, e := range h {
		out = append(out, e.Event)
	}
	return strings.Join(out, " ")
}

// callback delivers a JSON callback by token.
func (b *bundle) callback(token, body string) (engine.CallbackResult, error) {
	return b.eng.Callback(context.Background(), engine.CallbackRequest{Token: token, ContentType: "application/json", Body: []byte(body)})
}

// token reads a task's callback token from the store (tests only; the API
// never shows it except inside task.callback_url sent to providers).
func (b *bundle) token(id uuid.UUID) string {
	b.t.Helper()
	task, err := b.st.Task(context.Background(), id)
	if err != nil {
		b.t.Fatal(err)
	}
	return task.Token
}

func setupB(b *testing.B, opts ...option) *bundle { return setup(b, opts...) }

func decodeB(b *testing.B, s string) map[string]any { return decode(b, s) }

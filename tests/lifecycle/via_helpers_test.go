package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/sandbox/via"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// viaProcess is the shipped flow under test.
const viaProcess = "via-hold-lifecycle"

// viaWaitLimit bounds every wait for something asynchronous.
const viaWaitLimit = 10 * time.Second

// viaStart is the fake clock's first reading.
var viaStart = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// viaBundle is one running system: the engine on a bbolt store, the VIA
// sandbox behind a fault-injecting proxy on loopback, and the fake clock
// both of them read.
type viaBundle struct {
	t       *testing.T
	clock   *engine.FakeClock
	cfg     engine.Config // without Store; start opens one
	path    string        // the bbolt file
	eng     *engine.Engine
	st      *bolt.DB
	sandbox *via.Server
	proxy   *viaProxy
	notify  chan struct{}
}

// viaSetup starts a bundle. cfg tunes the sandbox (its Clock is the shared
// fake clock); secrets, when given, replace the engine's VIA credentials.
func viaSetup(t *testing.T, cfg via.Config, secrets ...string) *viaBundle {
	t.Helper()
	b := &viaBundle{t: t, clock: engine.NewFakeClock(viaStart), notify: make(chan struct{}, 1),
		path: filepath.Join(t.TempDir(), "conveyor.db")}

	cfg.Clock = b.clock.Now
	b.sandbox = via.New(cfg)
	b.proxy = &viaProxy{next: b.sandbox}
	provider := httptest.NewServer(b.proxy)

	l := &processes.Loader{Kinds: nodes.Kinds()}
	src, err := fs.ReadFile(processes.Shipped(), viaProcess+".yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, err := l.Load(viaProcess+".yaml", src)
	if err != nil {
		t.Fatalf("load %s: %v", viaProcess, err)
	}
	id, secret := via.DefaultClientID, via.DefaultClientSecret
	if len(secrets) == 2 {
		id, secret = secrets[0], secrets[1]
	}
	b.cfg = engine.Config{
		Definitions: []*processes.Definition{def}, Loader: l, Key: engine.NewKey(),
		BaseURL: "http://conveyor.test",
		Env:     map[string]string{"VIA_URL": provider.URL},
		Secrets: map[string]string{"via_client_id": id, "via_client_secret": secret},
		Clock:   b.clock, TimerPoll: time.Hour, Logger: slog.New(slog.DiscardHandler),
		OnCommit: func(*store.Task) {
			select {
			case b.notify <- struct{}{}:
			default:
			}
		},
	}
	b.start()
	// Cleanups run last-in first-out: the sandbox and its server stop first,
	// then the engine and the store.
	t.Cleanup(b.stop)
	t.Cleanup(provider.Close)
	t.Cleanup(func() { _ = b.sandbox.Close() })
	return b
}

// start opens the store and starts an engine on it.
func (b *viaBundle) start() {
	b.t.Helper()
	st, err := bolt.Open(b.path, bolt.Options{})
	if err != nil {
		b.t.Fatal(err)
	}
	cfg := b.cfg
	cfg.Store = st
	eng, err := engine.New(context.Background(), cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	b.st, b.eng = st, eng
}

// stop stops the engine and checks and closes the store.
func (b *viaBundle) stop() {
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

// crash kills the running system while rule's request is stalled in the
// proxy (VIA has acted on it): the store closes first, so the reply that
// follows cannot be committed, as if the process died before it came.
// Then a fresh engine starts on the same file and resumes what it owed.
func (b *viaBundle) crash(rule *viaRule) {
	b.t.Helper()
	select {
	case <-rule.reached:
	case <-time.After(viaWaitLimit):
		b.t.Fatalf("no request to %s reached VIA", rule.path)
	}
	_ = b.st.Close()
	close(rule.stall)
	b.eng.Stop()
	b.start()
}

// viaInput is a valid hold of 10000 tiyin (100 UZS) on card; extra fields
// are added (JSON members).
func viaInput(card string, extra ...string) string {
	fields := []string{
		`"merchantId": "` + via.DefaultMerchantID + `"`, `"cardToken": "` + card + `"`,
		`"amount": 10000`, `"currency": "UZS"`, `"note": "deposit"`,
		`"accounts": {"account": "123123", "myKey": "myValue"}`,
	}
	return "{" + strings.Join(append(fields, extra...), ", ") + "}"
}

// submit starts a task with ref and JSON data.
func (b *viaBundle) submit(ref, data string) *engine.TaskView {
	b.t.Helper()
	v, _, err := b.eng.Submit(context.Background(), engine.SubmitRequest{Process: viaProcess, Ref: ref, Data: viaDecode(b.t, data)})
	if err != nil {
		b.t.Fatalf("submit: %v", err)
	}
	return v
}

func viaDecode(t *testing.T, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

// command sends a merchant command to the task with ref, as the API's
// callback by ref does.
func (b *viaBundle) command(ref, body string) (engine.CallbackResult, error) {
	return b.eng.Callback(context.Background(), engine.CallbackRequest{
		Process: viaProcess, Ref: ref, ContentType: "application/json", Body: []byte(body), Actor: "merchant"})
}

// answered sends a command and checks the engine's answer: an engine
// result (accepted, duplicate, not_waiting) or, for a refusal, the error
// code (invalid).
func (b *viaBundle) answered(ref, body, want string) {
	b.t.Helper()
	res, err := b.command(ref, body)
	got := res.Result
	if err != nil {
		got = conveyor.ErrorCode(err)
	}
	if got != want {
		b.t.Fatalf("command %s: got %q (err %v), want %q", body, got, err, want)
	}
}

// ignored sends a command to a task that is not waiting for one (pending,
// finished): it must move nothing. The engine answers not_waiting, or
// duplicate for a repeat of a command it accepted before (engines differ on
// whether a late repeat by ref is told apart).
func (b *viaBundle) ignored(ref, body string) {
	b.t.Helper()
	res, err := b.command(ref, body)
	if err != nil || (res.Result != engine.CallbackNotWaiting && res.Result != engine.CallbackDuplicate) {
		b.t.Fatalf("command %s: result %q, err %v; want not_waiting (or duplicate)", body, res.Result, err)
	}
}

// viaSnapshot is a task as read from the store, with its data decoded.
type viaSnapshot struct {
	*store.Task
	data map[string]any
}

// get returns a data field formatted as text ("" when absent or null); a
// dotted path reads inside objects; objects come back as JSON.
func (s viaSnapshot) get(path string) string {
	var v any = s.data
	for p := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return string(x)
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

// has reports whether the data holds field (even as null).
func (s viaSnapshot) has(field string) bool {
	_, ok := s.data[field]
	return ok
}

func (b *viaBundle) read(id uuid.UUID) viaSnapshot {
	b.t.Helper()
	task, err := b.st.Task(context.Background(), id)
	if err != nil {
		b.t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(task.Data))
	d.UseNumber()
	var data map[string]any
	if err := d.Decode(&data); err != nil {
		b.t.Fatal(err)
	}
	return viaSnapshot{Task: task, data: data}
}

// waitFor waits (bounded) until the task satisfies pred, woken by commits.
func (b *viaBundle) waitFor(id uuid.UUID, what string, pred func(viaSnapshot) bool) viaSnapshot {
	b.t.Helper()
	deadline := time.After(viaWaitLimit)
	for {
		s := b.read(id)
		if pred(s) {
			return s
		}
		select {
		case <-b.notify:
		case <-time.After(20 * time.Millisecond): // a commit before the wait began
		case <-deadline:
			b.t.Fatalf("task %s never became %s; it is %s in %s, hold_state %q, last_error %s, error %+v; VIA calls %s",
				id, what, s.Status, s.Node, s.get("hold_state"), s.get("last_error"), s.Error, b.callCounts())
		}
	}
}

// settle waits until the task has stopped moving by itself: it waits in a
// node, is parked for an operator or has finished (a task whose call is in
// flight or waits for its retry is active).
func (b *viaBundle) settle(id uuid.UUID) viaSnapshot {
	b.t.Helper()
	return b.waitFor(id, "settled", func(s viaSnapshot) bool { return s.Status != store.StatusActive })
}

// expect waits until the task settles and checks where it is.
func (b *viaBundle) expect(id uuid.UUID, node, holdState string) viaSnapshot {
	b.t.Helper()
	s := b.settle(id)
	if s.Node != node || s.get("hold_state") != holdState {
		b.t.Fatalf("task is %s in %s with hold_state %q (last_error %s, error %+v); want %s with %s; VIA calls %s",
			s.Status, s.Node, s.get("hold_state"), s.get("last_error"), s.Error, node, holdState, b.callCounts())
	}
	return s
}

// held waits until the task waits for the merchant in HELD.
func (b *viaBundle) held(id uuid.UUID) viaSnapshot {
	b.t.Helper()
	return b.expect(id, "wait_command", "HELD")
}

// waitRetry waits until the task's call failed and waits for its retry.
func (b *viaBundle) waitRetry(id uuid.UUID) viaSnapshot {
	b.t.Helper()
	return b.waitFor(id, "waiting for a retry", func(s viaSnapshot) bool { return s.Timer == "retry" })
}

// advance moves the shared clock and fires every due timer.
func (b *viaBundle) advance(d time.Duration) {
	b.t.Helper()
	b.clock.Advance(d)
	if _, err := b.eng.FireDue(context.Background()); err != nil {
		b.t.Fatal(err)
	}
}

// step advances the clock by d, fires due timers and waits until the task
// settles again.
func (b *viaBundle) step(id uuid.UUID, d time.Duration) viaSnapshot {
	b.t.Helper()
	b.advance(d)
	return b.settle(id)
}

// viaEndpoint names a sandbox route by its last segment: create, confirm,
// cancel, info.
func viaEndpoint(path string) string {
	return strings.TrimPrefix(path, "/partner/hold/")
}

// calls returns the sandbox's record of requests to endpoint.
func (b *viaBundle) calls(endpoint string) []via.Call {
	var out []via.Call
	for _, c := range b.sandbox.Calls() {
		if viaEndpoint(c.Path) == endpoint {
			out = append(out, c)
		}
	}
	return out
}

// callCounts sums the sandbox's calls by endpoint, e.g. "create=1 info=2".
func (b *viaBundle) callCounts() string {
	n := map[string]int{}
	for _, c := range b.sandbox.Calls() {
		n[viaEndpoint(c.Path)]++
	}
	var parts []string
	for e, k := range n {
		parts = append(parts, e+"="+strconv.Itoa(k))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// statuses lists the hold statuses VIA answered to endpoint, in order.
func (b *viaBundle) statuses(endpoint string) string {
	var out []string
	for _, c := range b.calls(endpoint) {
		out = append(out, c.Status)
	}
	return strings.Join(out, " ")
}

// checkCalls checks the calls made per endpoint, that every call named the
// same hold and externalId, and that every create carried externalID.
func (b *viaBundle) checkCalls(want, externalID string) {
	b.t.Helper()
	if got := b.callCounts(); got != want {
		b.t.Errorf("VIA calls: %s, want %s", got, want)
	}
	holds := map[string]bool{}
	for _, c := range b.sandbox.Calls() {
		if c.HoldID != "" {
			holds[c.HoldID] = true
		}
		if c.ExternalID != "" && c.ExternalID != externalID {
			b.t.Errorf("%s call with externalId %q, want %q", c.Path, c.ExternalID, externalID)
		}
	}
	if len(holds) > 1 {
		b.t.Errorf("calls named %d holds, want 1: %v", len(holds), holds)
	}
	for _, r := range b.proxy.requests(via.PathCreate) {
		if r.Body["externalId"] != externalID {
			b.t.Errorf("create sent externalId %v, want %q", r.Body["externalId"], externalID)
		}
	}
}

// viaProxy stands in front of the sandbox. It records every request and
// applies rules to chosen ones: fault knobs in the X-Sandbox-Fault header,
// or a lost reply (the sandbox acts, the engine gets a 502), as a network
// that drops the answer would. The flow itself never asks for faults.
type viaProxy struct {
	next http.Handler

	mu    sync.Mutex
	rules []*viaRule
	seen  []viaRequest
}

// viaRule applies to the next times requests to path (a Path* constant).
// With stall, the proxy passes the request on, closes reached and holds the
// reply back until stall is closed, then loses it.
type viaRule struct {
	path    string
	knobs   string
	lose    bool
	times   int
	stall   chan struct{}
	reached chan struct{}
}

// viaRequest is one request the proxy passed on.
type viaRequest struct {
	Path string
	Raw  string
	Body map[string]any
}

// add installs a rule and returns it; times 0 means 1.
func (p *viaProxy) add(r viaRule) *viaRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.times = max(r.times, 1)
	p.rules = append(p.rules, &r)
	return &r
}

// match finds and spends the first rule for path.
func (p *viaProxy) match(path string) *viaRule {
	for i, r := range p.rules {
		if r.path != path {
			continue
		}
		r.times--
		if r.times == 0 {
			p.rules = slices.Delete(p.rules, i, i+1)
		}
		return r
	}
	return nil
}

// requests returns the requests to path so far.
func (p *viaProxy) requests(path string) []viaRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []viaRequest
	for _, r := range p.seen {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (p *viaProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	seen := viaRequest{Path: r.URL.Path, Raw: string(raw)}
	if len(bytes.TrimSpace(raw)) > 0 {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		_ = d.Decode(&seen.Body)
	}
	p.mu.Lock()
	p.seen = append(p.seen, seen)
	rl := p.match(r.URL.Path)
	p.mu.Unlock()

	r.Body = io.NopCloser(bytes.NewReader(raw))
	if rl != nil && rl.knobs != "" {
		r.Header.Set(via.FaultHeader, rl.knobs)
	}
	if rl != nil && (rl.lose || rl.stall != nil) {
		p.next.ServeHTTP(httptest.NewRecorder(), r)
		if rl.stall != nil {
			close(rl.reached)
			<-rl.stall
		}
		http.Error(w, "reply lost", http.StatusBadGateway)
		return
	}
	p.next.ServeHTTP(w, r)
}

// hold submits a hold of 10000 tiyin on the success card and brings it to
// HELD. The sandbox must settle at once (PendingFor 0): create answers NEW,
// the first poll 5 s later finds CREATE_SUCCESS.
func (b *viaBundle) hold(ref string, extra ...string) uuid.UUID {
	b.t.Helper()
	v := b.submit(ref, viaInput(via.CardSuccess, extra...))
	b.expect(v.ID, "wait_5s", "AUTH_PENDING")
	b.step(v.ID, 5*time.Second)
	b.held(v.ID)
	return v.ID
}

// holdSlowly is hold for a sandbox with PendingFor 10s: NEW until +10s,
// CREATE_PENDING until +20s, then CREATE_SUCCESS; the task polls at +5s,
// +10s, +15s (5 s apart) and then +45s (30 s later).
func (b *viaBundle) holdSlowly(ref string) uuid.UUID {
	b.t.Helper()
	v := b.submit(ref, viaInput(via.CardSuccess, `"holdTime": 90`))
	b.expect(v.ID, "wait_5s", "AUTH_PENDING")
	for _, want := range []struct {
		node  string
		polls string
	}{{"wait_5s", "2"}, {"wait_5s", "3"}, {"wait_30s", "4"}} {
		s := b.step(v.ID, 5*time.Second)
		if s.Node != want.node || s.get("hold_state") != "AUTH_PENDING" || s.get("polls") != want.polls {
			b.t.Fatalf("polling: %s in %s, hold_state %q, polls %s; want %s, AUTH_PENDING, %s",
				s.Status, s.Node, s.get("hold_state"), s.get("polls"), want.node, want.polls)
		}
	}
	b.step(v.ID, 30*time.Second)
	b.held(v.ID)
	return v.ID
}

// viaCheckAmounts checks the amounts in tiyin, as JSON integers: captured
// and released, and held_amount (10000) when something was held.
func viaCheckAmounts(t *testing.T, s viaSnapshot, captured, released string) {
	t.Helper()
	for field, want := range map[string]string{"captured_amount": captured, "released_amount": released, "held_amount": "10000"} {
		if field == "held_amount" && !s.has(field) {
			continue // declined: nothing was held
		}
		if n, ok := s.data[field].(json.Number); !ok || string(n) != want {
			t.Errorf("%s = %#v, want the integer %s", field, s.data[field], want)
		}
	}
}

// viaLastError returns last_error's code ("" when there is none).
func viaLastError(s viaSnapshot) string { return s.get("last_error.code") }

// viaNumber is a number as the proxy decodes it.
func viaNumber(s string) any { return json.Number(s) }

func viaItoa(n int) string { return strconv.Itoa(n) }

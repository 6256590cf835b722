package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/sandbox/via"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// propChecks is how many cases each provider's property runs when neither
// -rapid.checks nor RAPID_CHECKS says otherwise: about 10 s for both under
// -race on two cores. -short divides it by 5.
const propChecks = 50

// propWaitLimit bounds every wait for the system to come to rest.
const propWaitLimit = 15 * time.Second

// propDriveRounds bounds the timer rounds that bring a task to rest after
// the random steps: enough for 15 LiqPay polls, 12 VIA polls, a validity
// of a few hours ticking by and every retry on the way.
const propDriveRounds = 150

// propBudget lowers rapid's number of cases to propChecks unless the run
// asks for a number, and keeps rapid from writing fail files into
// testdata/ unless asked (the seed it prints reproduces a failure). rapid
// reads both from package flags; the test that calls this is not parallel,
// so nothing reads them meanwhile.
func propBudget(t *testing.T) {
	t.Helper()
	given := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, value := range map[string]string{"rapid.checks": strconv.Itoa(propChecks), "rapid.nofailfile": "true"} {
		env := "RAPID_" + strings.ToUpper(strings.TrimPrefix(name, "rapid."))
		f := flag.Lookup(name)
		if _, set := os.LookupEnv(env); set || given[name] || f == nil {
			continue
		}
		old := f.Value.String()
		if err := flag.Set(name, value); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = flag.Set(name, old) })
	}
}

// propNeutral are the provider-neutral hold states a lifecycle task may
// show (holds.md §5.1; CREATED is never stored, the task starts sending).
var propNeutral = []string{"AUTH_PENDING", "ACTION_REQUIRED", "HELD", "CAPTURE_PENDING", "CANCEL_PENDING",
	"CAPTURED", "RELEASED", "EXPIRED", "DECLINED"}

// propTerminal maps each final node of both lifecycles to its hold_state.
var propTerminal = map[string]string{"captured": "CAPTURED", "released": "RELEASED", "expired": "EXPIRED", "declined": "DECLINED"}

// propLoad compiles shipped flows once per provider; every case's engine
// runs on the same definitions.
func propLoad(t *testing.T, files ...string) (*processes.Loader, []*processes.Definition) {
	t.Helper()
	l := &processes.Loader{Kinds: nodes.Kinds()}
	var defs []*processes.Definition
	for _, name := range files {
		src, err := fs.ReadFile(processes.Shipped(), name)
		if err != nil {
			t.Fatal(err)
		}
		def, err := l.Load(name, src)
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		defs = append(defs, def)
	}
	return l, defs
}

// propSys is one case's running system: an engine on a bbolt file that
// survives restarts, a provider simulator behind a fault-injecting proxy,
// and (for LiqPay) the loopback receiver of the provider's callbacks. The
// clock is fake and shared.
type propSys struct {
	t       *rapid.T
	clock   *engine.FakeClock
	cfg     engine.Config // without Store; start opens one
	def     *processes.Definition
	path    string
	eng     *engine.Engine
	st      *bolt.DB
	notify  chan struct{}
	proxy   *propProxy
	recv    *receiver // LiqPay only
	liqpay  *liqpay.Server
	via     *via.Server
	process string
	final   bool           // the last drive: wait for late callbacks too
	crashes map[string]int // crashes by the target of the request stalled
	cleanup []func()
}

// propLiqPay starts a system around the LiqPay sandbox configured by cfg.
func propLiqPay(t *rapid.T, l *processes.Loader, defs []*processes.Definition, cfg liqpay.Config) *propSys {
	s := propNew(t, lifecycle, defs)
	cfg.Clock = s.clock.Now
	cfg.CallbackBackoff = 2 * time.Millisecond
	s.liqpay = liqpay.New(cfg)
	s.proxy = &propProxy{next: s.liqpay, liqpay: true, quit: make(chan struct{})}
	provider := httptest.NewServer(s.proxy)
	s.recv = &receiver{}
	hooks := httptest.NewServer(s.recv)
	s.cfg = s.engineConfig(l, defs, hooks.URL, map[string]string{"LIQPAY_URL": provider.URL},
		map[string]string{"liqpay_public_key": liqpay.DefaultPublicKey, "liqpay_private_key": liqpay.DefaultPrivateKey})
	// Run last-in first-out: the sandbox's callbacks stop first.
	s.cleanup = append(s.cleanup, s.stop, hooks.Close, provider.Close, func() { _ = s.liqpay.Close() })
	s.start()
	return s
}

// propVIA starts a system around the VIA sandbox configured by cfg.
func propVIA(t *rapid.T, l *processes.Loader, defs []*processes.Definition, cfg via.Config) *propSys {
	s := propNew(t, viaProcess, defs)
	cfg.Clock = s.clock.Now
	s.via = via.New(cfg)
	s.proxy = &propProxy{next: s.via, quit: make(chan struct{})}
	provider := httptest.NewServer(s.proxy)
	s.cfg = s.engineConfig(l, defs, "http://conveyor.test", map[string]string{"VIA_URL": provider.URL},
		map[string]string{"via_client_id": via.DefaultClientID, "via_client_secret": via.DefaultClientSecret})
	s.cleanup = append(s.cleanup, s.stop, provider.Close, func() { _ = s.via.Close() })
	s.start()
	return s
}

func propNew(t *rapid.T, process string, defs []*processes.Definition) *propSys {
	dir, err := os.MkdirTemp("", "conveyor-prop-")
	if err != nil {
		t.Fatal(err)
	}
	s := &propSys{t: t, clock: engine.NewFakeClock(start), notify: make(chan struct{}, 1),
		path: filepath.Join(dir, "conveyor.db"), process: process, crashes: map[string]int{}}
	s.cleanup = append(s.cleanup, func() { _ = os.RemoveAll(dir) })
	for _, d := range defs {
		if d.Name == process {
			s.def = d
		}
	}
	return s
}

func (s *propSys) engineConfig(l *processes.Loader, defs []*processes.Definition, base string, env, secrets map[string]string) engine.Config {
	return engine.Config{
		Definitions: defs, Loader: l, Key: engine.NewKey(), BaseURL: base, Env: env, Secrets: secrets,
		Clock: s.clock, TimerPoll: time.Hour, Logger: slog.New(slog.DiscardHandler),
		// Months pass on the fake clock; a finished task must stay readable.
		Retention: 100 * 365 * 24 * time.Hour,
		OnCommit: func(*store.Task) {
			select {
			case s.notify <- struct{}{}:
			default:
			}
		},
	}
}

// close stops everything; the property defers it. A request still
// stalled (the case failed before it crashed the engine) is let go first,
// or the servers would wait for it for ever.
func (s *propSys) close() {
	close(s.proxy.quit)
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
}

// start opens the store and starts an engine on it.
func (s *propSys) start() {
	s.t.Helper()
	st, err := bolt.Open(s.path, bolt.Options{NoSync: true})
	if err != nil {
		s.t.Fatal(err)
	}
	cfg := s.cfg
	cfg.Store = st
	eng, err := engine.New(context.Background(), cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.recv != nil {
		s.recv.set(eng)
	}
	if err := eng.Start(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.st, s.eng = st, eng
}

// stop stops the engine, checks the store and closes it.
func (s *propSys) stop() {
	if s.eng == nil {
		return
	}
	s.eng.Stop()
	if err := s.st.Check(); err != nil {
		s.t.Errorf("store check: %v", err)
	}
	_ = s.st.Close()
	s.eng = nil
}

// restart stops the engine cleanly and starts a new one on the same file.
func (s *propSys) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// crash kills the system while a request is stalled at the proxy after the
// provider acted on it: the store closes first, so nothing that follows is
// committed; the reply is lost; a new engine starts on the same file and
// resumes what it owed.
func (s *propSys) crash(st *propStall) {
	s.t.Helper()
	s.t.Logf("crash while %s is stalled at the provider", st.target)
	s.crashes[st.target]++
	_ = s.st.Close()
	close(st.release)
	s.eng.Stop()
	s.eng = nil
	s.start()
}

// submit starts the lifecycle task with ref.
func (s *propSys) submit(ref string, data map[string]any) uuid.UUID {
	s.t.Helper()
	v, _, err := s.eng.Submit(context.Background(), engine.SubmitRequest{Process: s.process, Ref: ref, Data: data})
	if err != nil {
		s.t.Fatalf("submit: %v", err)
	}
	return v.ID
}

// command sends a merchant command by ref, as the API does.
func (s *propSys) command(ref, body string) (engine.CallbackResult, error) {
	return s.eng.Callback(context.Background(), engine.CallbackRequest{
		Process: s.process, Ref: ref, ContentType: "application/json", Body: []byte(body), Actor: "merchant"})
}

func (s *propSys) read(id uuid.UUID) snapshot {
	s.t.Helper()
	task, err := s.st.Task(context.Background(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(task.Data))
	d.UseNumber()
	var data map[string]any
	if err := d.Decode(&data); err != nil {
		s.t.Fatal(err)
	}
	return snapshot{Task: task, data: data}
}

func (s *propSys) history(id uuid.UUID) []store.HistoryEntry {
	s.t.Helper()
	h, err := s.st.History(context.Background(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	return h
}

// propLate is the LiqPay delay_callback knob whose callbacks the steps do
// not wait for: they come in the middle of a later step.
const propLate = "delay_callback=120ms"

// quiet reports whether the provider has nothing under way: no request at
// the proxy and no LiqPay callback still being delivered (but for late
// ones, until the case's last drive).
func (s *propSys) quiet() bool {
	if !s.proxy.idle() {
		return false
	}
	if s.liqpay != nil {
		for _, d := range s.liqpay.Callbacks() {
			if !d.Done && (s.final || !strings.Contains(d.Fault, propLate)) {
				return false
			}
		}
	}
	return true
}

// settle waits until nothing moves without the clock: the task waits,
// is parked or finished, or waits for a call's retry; no request is in
// flight and no callback is being delivered. A request stalled for a crash
// is turned into the crash here.
func (s *propSys) settle(id uuid.UUID) snapshot {
	s.t.Helper()
	deadline := time.Now().Add(propWaitLimit)
	for {
		if st := s.proxy.stalled(); st != nil {
			s.crash(st)
			continue
		}
		a := s.read(id)
		if propResting(a) && s.quiet() {
			if b := s.read(id); b.Rev == a.Rev {
				return b
			}
			continue
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("task never came to rest: %s in %s (timer %q), hold_state %q, error %+v; provider quiet %v",
				a.Status, a.Node, a.Timer, a.get("hold_state"), a.Error, s.quiet())
		}
		select {
		case <-s.notify:
		case <-time.After(3 * time.Millisecond):
		}
	}
}

// propResting reports whether a task moves only when the clock does (or a
// command comes).
func propResting(s snapshot) bool {
	return s.Status != store.StatusActive || s.Timer == "retry"
}

// advance moves the clock and fires every due timer.
func (s *propSys) advance(d time.Duration) {
	s.t.Helper()
	s.clock.Advance(d)
	if _, err := s.eng.FireDue(context.Background()); err != nil {
		s.t.Fatal(err)
	}
}

// sweep lets the LiqPay sandbox apply what its clock made due (a pending
// hold resolving, a hold expiring) and send the callbacks.
func (s *propSys) sweep() {
	if s.liqpay != nil {
		s.liqpay.Sweep()
	}
}

// drive brings the task to rest for good: it fires the task's timers one
// after another (a LiqPay sandbox also applies its clock and calls back)
// until the task finishes or is escalated or, unless lapse, waits for the
// merchant in one of waitNodes. It returns the task and how many rounds it
// took; a task that still moves after propDriveRounds is reported.
func (s *propSys) drive(id uuid.UUID, lapse bool, waitNodes ...string) snapshot {
	s.t.Helper()
	for range propDriveRounds {
		snap := s.settle(id)
		switch {
		case snap.Status != store.StatusWaiting && snap.Status != store.StatusActive:
			return snap
		case !lapse && snap.Status == store.StatusWaiting && slices.Contains(waitNodes, snap.Node):
			return snap
		case snap.TimerAt.IsZero():
			return snap // stuck; the invariants say so
		}
		s.advance(max(snap.TimerAt.Sub(s.clock.Now()), 0))
		s.sweep()
	}
	snap := s.settle(id)
	s.t.Fatalf("task still moving after %d timer rounds: %s in %s, hold_state %q", propDriveRounds, snap.Status, snap.Node, snap.get("hold_state"))
	return snap
}

// liqpayStatus asks the LiqPay sandbox directly (not through the proxy,
// so no fault applies) for the payment with order_id. found is false when
// LiqPay knows no such payment.
func (s *propSys) liqpayStatus(order string) (obj map[string]any, found bool) {
	s.t.Helper()
	data, sig, err := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{
		"action": "status", "version": "3", "public_key": liqpay.DefaultPublicKey, "order_id": order})
	if err != nil {
		s.t.Fatal(err)
	}
	form := url.Values{"data": {data}, "signature": {sig}}.Encode()
	req := httptest.NewRequest(http.MethodPost, liqpay.PathRequest, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.liqpay.ServeHTTP(rec, req)
	obj = propJSON(s.t, rec.Body.Bytes())
	if obj["err_code"] == "payment_not_found" {
		return obj, false
	}
	return obj, true
}

// viaInfo asks the VIA sandbox directly for hold id.
func (s *propSys) viaInfo(id string) map[string]any {
	s.t.Helper()
	req := httptest.NewRequest(http.MethodPost, via.PathInfo+"?holdId="+url.QueryEscape(id), nil)
	req.Header.Set("client-id", via.DefaultClientID)
	req.Header.Set("client-secret", via.DefaultClientSecret)
	rec := httptest.NewRecorder()
	s.via.ServeHTTP(rec, req)
	obj := propJSON(s.t, rec.Body.Bytes())
	data, ok := obj["data"].(map[string]any)
	if rec.Code != http.StatusOK || !ok {
		s.t.Fatalf("VIA info for %s: HTTP %d %s", id, rec.Code, rec.Body)
	}
	return data
}

func propJSON(t *rapid.T, raw []byte) map[string]any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return m
}

// propText formats a JSON value as text: "" for nil, numbers as written.
func propText(v any) string {
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

// propCents reads a decimal amount in major units as cents; ok is false
// for anything else (more than two decimals, not a number).
func propCents(s string) (int64, bool) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return 0, false
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return r.Num().Int64(), true
}

// propMoney formats cents as a decimal string in major units: 1050 is
// "10.50".
func propMoney(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// propProxy stands in front of a provider simulator. It records every
// request and applies the faults a case installs: knobs for the simulator
// (LiqPay's sandbox_fault inside the signed envelope, VIA's X-Sandbox-Fault
// header), a lost reply (the simulator acts, the engine gets a 502), or a
// stall that turns into a crash of the engine.
type propProxy struct {
	next   http.Handler
	liqpay bool
	quit   chan struct{} // closed when the case ends: stalls give up

	mu       sync.Mutex
	faults   []*propFault
	stall    *propStall
	seen     []propRequest
	inflight int
}

// propFault applies to the next times requests to target: a LiqPay action
// (hold, confirm, hold_completion, refund, status) or a VIA endpoint
// (create, confirm, cancel, info).
type propFault struct {
	target string
	knobs  string
	lose   bool
	times  int
}

// propStall holds the next request's reply back once the simulator acted
// on it: reached is closed then, and the reply (lost) goes once release is
// closed.
type propStall struct {
	target  string
	armed   bool
	reached chan struct{}
	release chan struct{}
}

// propRequest is one request the proxy passed on: its target, its
// parameters (LiqPay's decoded envelope without sandbox_fault, VIA's JSON
// body) and its raw body as sent.
type propRequest struct {
	Target string
	Params map[string]any
	Raw    string
}

func (p *propProxy) add(f propFault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f.times = max(f.times, 1)
	p.faults = append(p.faults, &f)
}

// armStall makes the next request, whatever it is, stall for a crash.
func (p *propProxy) armStall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stall == nil {
		p.stall = &propStall{armed: true, reached: make(chan struct{}), release: make(chan struct{})}
	}
}

// disarm forgets faults and an unused stall.
func (p *propProxy) disarm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
	if p.stall != nil && p.stall.armed {
		p.stall = nil
	}
}

// stalled returns the stall whose request has reached the simulator and
// waits to be released, once.
func (p *propProxy) stalled() *propStall {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stall
	if st == nil || st.armed {
		return nil
	}
	select {
	case <-st.reached:
		p.stall = nil
		return st
	default:
		return nil
	}
}

func (p *propProxy) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight == 0
}

// requests returns what was sent to target.
func (p *propProxy) requests(target string) []propRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []propRequest
	for _, r := range p.seen {
		if r.Target == target {
			out = append(out, r)
		}
	}
	return out
}

// take spends the first fault for target and the armed stall.
func (p *propProxy) take(target string) (*propFault, *propStall) {
	var f *propFault
	for i, r := range p.faults {
		if r.target != target {
			continue
		}
		r.times--
		if r.times == 0 {
			p.faults = slices.Delete(p.faults, i, i+1)
		}
		f = r
		break
	}
	st := p.stall
	if st != nil && st.armed {
		st.armed, st.target = false, target
		return f, st
	}
	return f, nil
}

func (p *propProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	req := propRequest{Raw: string(raw)}
	var form url.Values
	if p.liqpay {
		form, _ = url.ParseQuery(string(raw))
		params, err := liqpay.Decode(liqpay.DefaultPrivateKey, form.Get("data"), form.Get("signature"))
		if err == nil {
			req.Params = params
			req.Target, _ = params["action"].(string)
		}
	} else {
		req.Target = strings.TrimPrefix(r.URL.Path, "/partner/hold/")
		if len(bytes.TrimSpace(raw)) > 0 {
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			_ = d.Decode(&req.Params)
		}
	}
	p.mu.Lock()
	p.seen = append(p.seen, req)
	f, st := p.take(req.Target)
	p.inflight++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inflight--
		p.mu.Unlock()
	}()

	if f != nil && f.knobs != "" {
		if p.liqpay {
			params := map[string]any{}
			for k, v := range req.Params {
				params[k] = v
			}
			params["sandbox_fault"] = f.knobs
			data, sig, err := liqpay.Encode(liqpay.DefaultPrivateKey, params)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			raw = []byte(url.Values{"data": {data}, "signature": {sig}}.Encode())
		} else {
			r.Header.Set(via.FaultHeader, f.knobs)
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ContentLength = int64(len(raw))
	if st != nil || (f != nil && f.lose) {
		p.next.ServeHTTP(httptest.NewRecorder(), r)
		if st != nil {
			close(st.reached)
			select {
			case <-st.release:
			case <-p.quit:
			}
		}
		http.Error(w, "reply lost", http.StatusBadGateway)
		return
	}
	p.next.ServeHTTP(w, r)
}

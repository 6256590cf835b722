// Package lifecycle holds end-to-end tests of the shipped LiqPay flows: the
// real engine on a bbolt store in a temporary directory, the LiqPay sandbox
// on a loopback server, and a small loopback receiver that hands LiqPay's
// callbacks (POST /callbacks/{token}) to the engine. Time is a fake clock
// shared by the engine and the sandbox; tests move it and fire due timers.
// Run them alone with `go test -race ./tests/lifecycle/`.
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
	"net/url"
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
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// The shipped flows under test.
const (
	lifecycle  = "liqpay-hold-lifecycle"
	holdOnly   = "liqpay-hold"
	otpConfirm = "liqpay-otp-confirm"
	completion = "liqpay-hold-completion"
)

var flowFiles = []string{lifecycle + ".yaml", holdOnly + ".yaml", otpConfirm + ".yaml", completion + ".yaml"}

// waitLimit bounds every wait for something asynchronous.
const waitLimit = 10 * time.Second

// start is the fake clock's first reading; the test cards' expiry (12/30)
// lies after it.
var start = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// bundle is one running system: engine, store, sandbox, receiver.
type bundle struct {
	t        *testing.T
	clock    *engine.FakeClock
	eng      *engine.Engine
	st       *bolt.DB
	sandbox  *liqpay.Server
	faults   *injector
	receiver *receiver
	notify   chan struct{}
}

// setup starts a bundle. cfg tunes the sandbox; its Clock, Logger and
// CallbackBackoff are filled in.
func setup(t *testing.T, cfg liqpay.Config) *bundle {
	t.Helper()
	b := &bundle{t: t, clock: engine.NewFakeClock(start), notify: make(chan struct{}, 1)}

	cfg.Clock = b.clock.Now
	cfg.CallbackBackoff = 5 * time.Millisecond
	b.sandbox = liqpay.New(cfg)
	b.faults = &injector{next: b.sandbox}
	provider := httptest.NewServer(b.faults)

	b.receiver = &receiver{}
	hooks := httptest.NewServer(b.receiver)

	l := &processes.Loader{Kinds: nodes.Kinds()}
	var defs []*processes.Definition
	for _, name := range flowFiles {
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
	st, err := bolt.Open(filepath.Join(t.TempDir(), "conveyor.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.st = st
	eng, err := engine.New(context.Background(), engine.Config{
		Store: st, Definitions: defs, Loader: l, Key: engine.NewKey(),
		BaseURL: hooks.URL,
		Env:     map[string]string{"LIQPAY_URL": provider.URL},
		Secrets: map[string]string{"liqpay_public_key": liqpay.DefaultPublicKey, "liqpay_private_key": liqpay.DefaultPrivateKey},
		Clock:   b.clock, TimerPoll: time.Hour, Logger: slog.New(slog.DiscardHandler),
		OnCommit: func(*store.Task) {
			select {
			case b.notify <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.eng = eng
	b.receiver.set(eng)
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: the sandbox's callbacks stop first,
	// then the servers, the engine and the store.
	t.Cleanup(func() {
		eng.Stop()
		if err := st.Check(); err != nil {
			t.Errorf("store check after test: %v", err)
		}
		_ = st.Close()
	})
	t.Cleanup(hooks.Close)
	t.Cleanup(provider.Close)
	t.Cleanup(func() { _ = b.sandbox.Close() })
	return b
}

// holdInput is a valid hold of 10.50 UAH on card for order; extra fields
// are added (JSON values).
func holdInput(card, order string, extra ...string) string {
	fields := []string{
		`"phone": "380950000001"`, `"amount": "10.50"`, `"currency": "UAH"`,
		`"description": "deposit"`, `"order_id": "` + order + `"`, `"card": "` + card + `"`,
		`"card_exp_month": "12"`, `"card_exp_year": "30"`, `"card_cvv": "123"`, `"ip": "203.0.113.7"`,
	}
	return "{" + strings.Join(append(fields, extra...), ", ") + "}"
}

// submit starts a task of process with ref and JSON data.
func (b *bundle) submit(process, ref, data string) *engine.TaskView {
	b.t.Helper()
	v, _, err := b.eng.Submit(context.Background(), engine.SubmitRequest{Process: process, Ref: ref, Data: decode(b.t, data)})
	if err != nil {
		b.t.Fatalf("submit %s: %v", process, err)
	}
	return v
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

// command sends a merchant command to the lifecycle task with ref, as the
// API's callback by ref does.
func (b *bundle) command(ref, body string) (engine.CallbackResult, error) {
	return b.eng.Callback(context.Background(), engine.CallbackRequest{
		Process: lifecycle, Ref: ref, ContentType: "application/json", Body: []byte(body), Actor: "merchant"})
}

// accept sends a command that must be accepted.
func (b *bundle) accept(ref, body string) {
	b.t.Helper()
	res, err := b.command(ref, body)
	if err != nil || res.Result != engine.CallbackAccepted {
		b.t.Fatalf("command %s: result %q, err %v; want accepted", body, res.Result, err)
	}
}

// refuse sends a command that must be refused as invalid.
func (b *bundle) refuse(ref, body string) {
	b.t.Helper()
	res, err := b.command(ref, body)
	if conveyor.ErrorCode(err) != conveyor.EInvalid {
		b.t.Fatalf("command %s: result %q, err %v; want refused as invalid", body, res.Result, err)
	}
}

// late sends a command to a finished task: it must move nothing. The
// engine answers not_waiting, or refuses it when the codec it judges late
// callbacks with is LiqPay's (see the report on callbackNodeFor).
func (b *bundle) late(ref, body string) {
	b.t.Helper()
	res, err := b.command(ref, body)
	if err == nil && res.Result != engine.CallbackNotWaiting && res.Result != engine.CallbackDuplicate {
		b.t.Fatalf("command %s to a finished task: %q; want not_waiting, duplicate or refused", body, res.Result)
	}
	if err != nil && conveyor.ErrorCode(err) != conveyor.EInvalid {
		b.t.Fatalf("command %s to a finished task: %v", body, err)
	}
}

// snapshot is a task as read from the store, with its data decoded.
type snapshot struct {
	*store.Task
	data map[string]any
}

// get returns a data field formatted as a string ("" when absent or null);
// a dotted path reads inside objects.
func (s snapshot) get(path string) string {
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

func (b *bundle) read(id uuid.UUID) snapshot {
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
	return snapshot{Task: task, data: data}
}

// waitFor waits (bounded) until the task satisfies pred, woken by commits.
func (b *bundle) waitFor(id uuid.UUID, what string, pred func(snapshot) bool) snapshot {
	b.t.Helper()
	deadline := time.After(waitLimit)
	for {
		s := b.read(id)
		if pred(s) {
			return s
		}
		select {
		case <-b.notify:
		case <-time.After(20 * time.Millisecond): // a commit before the wait began
		case <-deadline:
			b.t.Fatalf("task %s never became %s; it is %s in %s, hold_state %q, last_error %s, error %+v",
				id, what, s.Status, s.Node, s.get("hold_state"), s.get("last_error"), s.Error)
		}
	}
}

// waitIn waits until the task rests in node with status.
func (b *bundle) waitIn(id uuid.UUID, node string, status store.Status) snapshot {
	b.t.Helper()
	return b.waitFor(id, string(status)+" in "+node, func(s snapshot) bool { return s.Node == node && s.Status == status })
}

// waitHeld waits until the lifecycle task waits for the merchant.
func (b *bundle) waitHeld(id uuid.UUID) snapshot {
	b.t.Helper()
	s := b.waitIn(id, "wait_command", store.StatusWaiting)
	if s.get("hold_state") != "HELD" {
		b.t.Fatalf("waiting for the merchant with hold_state %q, want HELD", s.get("hold_state"))
	}
	return s
}

// waitRetry waits until the task's call failed and waits for its retry
// timer, or left the node.
func (b *bundle) waitRetry(id uuid.UUID, node string) snapshot {
	b.t.Helper()
	return b.waitFor(id, "retrying or past "+node, func(s snapshot) bool {
		return s.Node != node || s.Timer == "retry"
	})
}

// advance moves the shared clock and fires every due timer.
func (b *bundle) advance(d time.Duration) {
	b.t.Helper()
	b.clock.Advance(d)
	if _, err := b.eng.FireDue(context.Background()); err != nil {
		b.t.Fatal(err)
	}
}

// calls returns the sandbox's record of requests with action.
func (b *bundle) calls(action string) []liqpay.Call {
	var out []liqpay.Call
	for _, c := range b.sandbox.Calls() {
		if c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// callCounts sums the sandbox's calls by action, e.g. "hold=1 status=2".
func (b *bundle) callCounts() string {
	n := map[string]int{}
	for _, c := range b.sandbox.Calls() {
		n[c.Action]++
	}
	var parts []string
	for a, k := range n {
		parts = append(parts, a+"="+strconv.Itoa(k))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// checkCalls checks the calls made per action and that each named order.
func (b *bundle) checkCalls(want, order string) {
	b.t.Helper()
	if got := b.callCounts(); got != want {
		b.t.Errorf("LiqPay calls: %s, want %s", got, want)
	}
	for _, c := range b.sandbox.Calls() {
		if c.Action != "confirm" && c.OrderID != order {
			b.t.Errorf("%s call named order_id %q, want %q", c.Action, c.OrderID, order)
		}
	}
}

// deliveriesDone waits until the sandbox has finished with n callbacks.
func (b *bundle) deliveriesDone(n int) []liqpay.Delivery {
	b.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		ds := b.sandbox.Callbacks()
		done := 0
		for _, d := range ds {
			if d.Done {
				done++
			}
		}
		if done >= n {
			return ds
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%d of %d callbacks done: %+v", done, n, ds)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receiver is the loopback callback endpoint LiqPay posts to: it hands
// POST /callbacks/{token} to the engine and answers as the api package (not
// used here) does on the same route. It records every answer.
type receiver struct {
	mu      sync.Mutex
	eng     *engine.Engine
	answers []answer
}

// answer is what the receiver did with one callback.
type answer struct {
	Result string // engine result, "" when refused
	Code   string // error code when refused
	Status int
}

func (rc *receiver) set(e *engine.Engine) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.eng = e
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/callbacks/")
	if r.Method != http.MethodPost || !ok || token == "" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	eng := rc.eng
	rc.mu.Unlock()
	res, err := eng.Callback(r.Context(), engine.CallbackRequest{Token: token, ContentType: r.Header.Get("Content-Type"), Body: body})
	a := answer{Result: res.Result, Code: conveyor.ErrorCode(err), Status: statusOf(res.Result, err)}
	rc.mu.Lock()
	rc.answers = append(rc.answers, a)
	rc.mu.Unlock()
	w.WriteHeader(a.Status)
}

// statusOf maps a callback's outcome to an HTTP status as the api package
// does: accepted and duplicate 200, not_waiting 409, unknown 404, refused
// 401 (signature) or 400.
func statusOf(result string, err error) int {
	switch conveyor.ErrorCode(err) {
	case "":
	case conveyor.EInvalid:
		return http.StatusBadRequest
	case conveyor.EUnauthorized:
		return http.StatusUnauthorized
	default:
		return http.StatusInternalServerError
	}
	switch result {
	case engine.CallbackNotWaiting:
		return http.StatusConflict
	case engine.CallbackUnknown:
		return http.StatusNotFound
	}
	return http.StatusOK
}

// seen returns the receiver's answers so far.
func (rc *receiver) seen() []answer {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.answers)
}

// count counts the answers with the given engine result or error code.
func (rc *receiver) count(resultOrCode string) int {
	n := 0
	for _, a := range rc.seen() {
		if a.Result == resultOrCode || a.Code == resultOrCode {
			n++
		}
	}
	return n
}

// injector stands in front of the sandbox and adds fault knobs to chosen
// requests by rewriting their signed envelope (the test knows the private
// key), or swallows a reply after the sandbox acted on the request, as a
// network that drops the answer would.
type injector struct {
	next http.Handler

	mu    sync.Mutex
	rules []*rule
}

// rule applies to requests with action: knobs go into sandbox_fault; lose
// replaces the sandbox's reply with a 502. times > 0 limits how many
// requests it affects.
type rule struct {
	action string
	knobs  string
	lose   bool
	times  int
}

// add installs a rule.
func (in *injector) add(r rule) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = append(in.rules, &r)
}

// clear removes every rule.
func (in *injector) clear() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = nil
}

// match finds and spends the rule for action.
func (in *injector) match(action string) *rule {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, r := range in.rules {
		if r.action != action {
			continue
		}
		if r.times > 0 {
			r.times--
			if r.times == 0 {
				in.rules = slices.Delete(in.rules, i, i+1)
			}
		}
		return r
	}
	return nil
}

func (in *injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(raw))
	params, err := liqpay.Decode(liqpay.DefaultPrivateKey, form.Get("data"), form.Get("signature"))
	var rl *rule
	if err == nil {
		action, _ := params["action"].(string)
		rl = in.match(action)
	}
	if rl != nil && rl.knobs != "" {
		params["sandbox_fault"] = rl.knobs
		data, sig, err := liqpay.Encode(liqpay.DefaultPrivateKey, params)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		raw = []byte(url.Values{"data": {data}, "signature": {sig}}.Encode())
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ContentLength = int64(len(raw))
	if rl != nil && rl.lose {
		in.next.ServeHTTP(httptest.NewRecorder(), r)
		http.Error(w, "reply lost", http.StatusBadGateway)
		return
	}
	in.next.ServeHTTP(w, r)
}

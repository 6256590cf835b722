package via_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/sandbox/via"
)

// prefix is where the tests mount the sandbox, as the conveyor binary does.
const prefix = "/sandbox/via"

// wait bounds every wait for something asynchronous.
const wait = 5 * time.Second

// bundle is a running sandbox on loopback, optionally with a webhook
// receiver.
type bundle struct {
	sandbox *via.Server
	base    string // http://127.0.0.1:port/sandbox/via
	clock   *fakeClock
	hooks   *receiver // nil unless setupHooks
	logs    *syncBuffer
	replies *syncBuffer // every reply body, for the no-secrets check
}

// setup starts a sandbox configured by cfg (Clock, Logger and a fast
// WebhookBackoff are filled in) behind http.StripPrefix.
func setup(t *testing.T, cfg via.Config) *bundle {
	t.Helper()
	b := &bundle{clock: newFakeClock(), logs: &syncBuffer{}, replies: &syncBuffer{}}
	if cfg.Clock == nil {
		cfg.Clock = b.clock.Now
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.WebhookBackoff == 0 {
		cfg.WebhookBackoff = 5 * time.Millisecond
	}
	b.sandbox = via.New(cfg)
	mux := http.NewServeMux()
	mux.Handle(prefix+"/", http.StripPrefix(prefix, b.sandbox))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = b.sandbox.Close() })
	b.base = srv.URL + prefix
	return b
}

// setupHooks is setup with the webhook extension on, pointed at a fresh
// receiver.
func setupHooks(t *testing.T, cfg via.Config) *bundle {
	t.Helper()
	hooks := newReceiver(t)
	cfg.WebhookURL = hooks.url
	b := setup(t, cfg)
	b.hooks = hooks
	return b
}

// createBody is a valid create of 10 000 tiyin on card with externalID,
// plus the given key/value pairs (a nil value deletes the key).
func createBody(externalID, card string, kv ...any) map[string]any {
	body := map[string]any{
		"merchantId": via.DefaultMerchantID,
		"cardToken":  card,
		"externalId": externalID,
		"amount":     10000,
		"currency":   "UZS",
		"note":       "",
		"accounts":   map[string]any{"account": "123123", "myKey": "myValue"},
		"holdTime":   60,
	}
	return with(body, kv...)
}

// with returns a copy of m with the given key/value pairs set; a nil value
// deletes the key.
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// newRequest builds an authenticated POST to the endpoint path. body may
// be nil (no body), a string (sent as is) or anything else (sent as JSON).
func (b *bundle) newRequest(t *testing.T, path string, body any) *http.Request {
	t.Helper()
	var r io.Reader = http.NoBody
	switch body := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(body)
	default:
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(http.MethodPost, b.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("client-id", via.DefaultClientID)
	req.Header.Set("client-secret", via.DefaultClientSecret)
	return req
}

// do sends req and returns the HTTP status and the decoded JSON reply.
func (b *bundle) do(t *testing.T, client *http.Client, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	_, _ = b.replies.Write(append(raw, '\n'))
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON", ct)
	}
	return resp.StatusCode, decodeJSON(t, raw)
}

// post sends an authenticated POST and returns the status and reply.
func (b *bundle) post(t *testing.T, path string, body any) (int, map[string]any) {
	t.Helper()
	return b.do(t, http.DefaultClient, b.newRequest(t, path, body))
}

// ok POSTs and requires HTTP 200 with {"data":{...}}; it returns data.
func (b *bundle) ok(t *testing.T, path string, body any) map[string]any {
	t.Helper()
	status, reply := b.post(t, path, body)
	if status != http.StatusOK {
		t.Fatalf("POST %s: HTTP status = %d, want 200; reply %v", path, status, reply)
	}
	return dataOf(t, reply)
}

// fails POSTs and requires the error envelope with status and code.
func (b *bundle) fails(t *testing.T, path string, body any, status int, code string) map[string]any {
	t.Helper()
	gotStatus, reply := b.post(t, path, body)
	checkError(t, path, gotStatus, reply, status, code)
	return reply
}

// checkError requires an error reply to path (query string allowed) with
// the given HTTP status and code.
func checkError(t *testing.T, path string, gotStatus int, reply map[string]any, status int, code string) {
	t.Helper()
	urlPath, _, _ := strings.Cut(path, "?")
	checkEnvelope(t, reply, prefix+urlPath)
	if got := asText(field(reply, "status", "code")); gotStatus != status || got != code {
		t.Fatalf("POST %s: HTTP %d %s, want %d %s; reply %v", path, gotStatus, got, status, code, reply)
	}
}

// checkEnvelope requires exactly VIA's error envelope shape.
func checkEnvelope(t *testing.T, reply map[string]any, path string) {
	t.Helper()
	raw, _ := json.Marshal(reply)
	var env struct {
		Status map[string]any `json:"status"`
		Error  struct {
			Path    string         `json:"path"`
			Message map[string]any `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("error reply %s does not decode: %v", raw, err)
	}
	switch {
	case len(reply) != 2 || len(env.Status) != 2 || len(env.Error.Message) != 3:
		t.Fatalf("error reply %s is not the envelope", raw)
	case asText(env.Status["code"]) == "" || asText(env.Status["message"]) == "":
		t.Fatalf("error reply %s lacks status.code or status.message", raw)
	case env.Error.Path != path:
		t.Fatalf("error.path = %q, want %q", env.Error.Path, path)
	}
	for _, lang := range []string{"uz", "ru", "en"} {
		if msg, _ := env.Error.Message[lang].(string); msg == "" {
			t.Fatalf("error.message.%s is empty in %s", lang, raw)
		}
	}
}

// dataOf returns the reply's data object, requiring it to be all there is.
func dataOf(t *testing.T, reply map[string]any) map[string]any {
	t.Helper()
	data, isObject := reply["data"].(map[string]any)
	if !isObject || len(reply) != 1 {
		t.Fatalf("reply %v is not {\"data\":{...}}", reply)
	}
	return data
}

// field digs a value out of nested objects.
func field(m map[string]any, path ...string) any {
	var v any = m
	for _, key := range path {
		obj, _ := v.(map[string]any)
		v = obj[key]
	}
	return v
}

// create places a hold and returns its id; the reply must say NEW.
func (b *bundle) create(t *testing.T, body map[string]any) string {
	t.Helper()
	data := b.ok(t, via.PathCreate, body)
	expect(t, data, map[string]any{"status": via.StatusNew})
	return asText(data["holdId"])
}

// info reads a hold with holdId in the query string, as the docs do.
func (b *bundle) info(t *testing.T, holdID string) map[string]any {
	t.Helper()
	return b.ok(t, via.PathInfo+"?holdId="+holdID, nil)
}

// status reads a hold's status.
func (b *bundle) status(t *testing.T, holdID string) string {
	t.Helper()
	return asText(b.info(t, holdID)["status"])
}

// confirmBody and cancelBody are the JSON forms of confirm and cancel.
func confirmBody(holdID string, amount any, kv ...any) map[string]any {
	return with(map[string]any{"holdId": holdID, "amount": amount}, kv...)
}

func cancelBody(holdID string, kv ...any) map[string]any {
	return with(map[string]any{"holdId": holdID}, kv...)
}

func decodeJSON(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil || body == nil {
		t.Fatalf("reply %q is not a JSON object: %v", raw, err)
	}
	return body
}

// expect checks fields; a want value of nil means "absent".
func expect(t *testing.T, got map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		g, present := got[k]
		switch {
		case v == nil && present:
			t.Errorf("%s = %v, want it absent", k, g)
		case v != nil && !present:
			t.Errorf("%s is absent, want %v", k, v)
		case v != nil && asText(g) != asText(v):
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	if t.Failed() {
		t.Logf("got: %v", got)
		t.FailNow()
	}
}

func asText(v any) string {
	raw, _ := json.Marshal(v)
	return strings.Trim(string(raw), `"`)
}

// eventually polls check (bounded by wait) until it reports done and
// returns its last value.
func eventually[T any](t *testing.T, check func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		v, done := check()
		if done {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting; last value %+v", v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeClock is a sandbox clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hook is one webhook the receiver got.
type hook struct {
	via.Webhook
	raw    string
	header http.Header
	at     time.Time
}

// receiver is the partner's webhook endpoint.
type receiver struct {
	url    string
	got    chan hook
	failN  atomic.Int32 // answer 500 to this many more webhooks
	bodies *syncBuffer
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: make(chan hook, 100), bodies: &syncBuffer{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		if r.failN.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		_, _ = r.bodies.Write(append(raw, '\n'))
		h := hook{raw: string(raw), header: req.Header.Clone(), at: time.Now()}
		if err := json.Unmarshal(raw, &h.Webhook); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.got <- h
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/via/webhook"
	return r
}

// next waits (bounded) for the next webhook.
func (r *receiver) next(t *testing.T) hook {
	t.Helper()
	select {
	case h := <-r.got:
		return h
	case <-time.After(wait):
		t.Fatal("no webhook arrived")
		return hook{}
	}
}

// statuses waits for the next n webhooks and returns their statuses.
func (r *receiver) statuses(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for range n {
		got = append(got, r.next(t).Status)
	}
	return got
}

// none checks that no webhook is waiting; call it after Server.Close,
// which waits for deliveries in flight.
func (r *receiver) none(t *testing.T) {
	t.Helper()
	select {
	case h := <-r.got:
		t.Fatalf("unexpected webhook %s", h.raw)
	default:
	}
}

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyor-dev/conveyor/api"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// Test cards of the LiqPay sandbox.
const (
	cardOK     = "4242424242424242" // hold_wait at once
	cardLimit  = "4000000000000002" // failure, err_code limit
	process    = "liqpay-hold"
	waitNode   = "receive_callback"
	pollBudget = 10 * time.Second
)

// options shape a test bundle.
type options struct {
	token  string
	faults liqpay.Faults
}

// bundle is a real service on loopback: the API over an engine with a bolt
// store in a temporary directory, the shipped flows, and the LiqPay sandbox
// mounted under /sandbox/liqpay.
type bundle struct {
	t     *testing.T
	url   string
	token string
	eng   *engine.Engine
	sb    *liqpay.Server
	st    *bolt.DB
	logs  *syncBuffer
}

func setup(t *testing.T, o options) *bundle {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "conveyor.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sb := liqpay.New(liqpay.Config{Faults: o.faults})
	t.Cleanup(func() { sb.Close() })
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFS(processes.Shipped(), ".")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	eng, err := engine.New(context.Background(), engine.Config{
		Store: st, Definitions: defs, Loader: l, Key: engine.NewKey(), BaseURL: base, Logger: log,
		Env:     map[string]string{"LIQPAY_URL": base + "/sandbox/liqpay", "VIA_URL": base + "/sandbox/via"},
		Secrets: map[string]string{"liqpay_public_key": liqpay.DefaultPublicKey, "liqpay_private_key": liqpay.DefaultPrivateKey, "via_client_id": "system", "via_client_secret": "system123"},
		Metrics: api.NewMetrics(reg),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Stop)
	srv.Config.Handler = api.New(api.Config{Engine: eng, Token: o.token, Logger: log, Registry: reg, SandboxLiqPay: sb})
	srv.Start()
	t.Cleanup(srv.Close)
	return &bundle{t: t, url: srv.URL, token: o.token, eng: eng, sb: sb, st: st, logs: logs}
}

// response is an answer as a test sees it.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map, numbers exact.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// errorCode returns error.code of an error answer.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("answer has no error object: %s", r.body)
	}
	return e["code"].(string)
}

// request is a request a test sends; zero fields are left out.
type request struct {
	method, path, body, contentType string
	header                          map[string]string
	noAuth                          bool
}

func (b *bundle) do(req request) response {
	b.t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r, err := http.NewRequest(req.method, b.url+req.path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if req.contentType != "" {
		r.Header.Set("Content-Type", req.contentType)
	} else if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if b.token != "" && !req.noAuth {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: out}
}

func (b *bundle) get(path string) response { return b.do(request{method: "GET", path: path}) }

func (b *bundle) post(path, body string) response {
	return b.do(request{method: "POST", path: path, body: body})
}

// want fails unless r has status.
func want(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
}

// input is valid liqpay-hold data.
func input(order, card string) string {
	return fmt.Sprintf(`{"phone":"380950000001","amount":"5.50","currency":"UAH","description":"test","order_id":%q,`+
		`"card":%q,"card_exp_month":"12","card_exp_year":"39","card_cvv":"123","ip":"127.0.0.1"}`, order, card)
}

// submit creates a task and returns its JSON.
func (b *bundle) submit(ref, data string) map[string]any {
	b.t.Helper()
	r := b.post("/api/v1/processes/"+process+"/tasks", fmt.Sprintf(`{"ref":%q,"data":%s}`, ref, data))
	want(b.t, r, http.StatusCreated)
	return r.json(b.t)
}

// await polls a task until ok accepts it, within pollBudget.
func (b *bundle) await(id string, what string, ok func(task map[string]any) bool) map[string]any {
	b.t.Helper()
	deadline := time.Now().Add(pollBudget)
	for {
		task := b.get("/api/v1/tasks/" + id).json(b.t)
		if ok(task) {
			return task
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("task %s never became %s: %v", id, what, task)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// awaitStatus polls a task until it has status.
func (b *bundle) awaitStatus(id, status string) map[string]any {
	b.t.Helper()
	return b.await(id, status, func(task map[string]any) bool { return task["status"] == status })
}

// callbackURL returns the callback URL the sandbox recorded for an order.
func (b *bundle) callbackURL(order string) string {
	b.t.Helper()
	deadline := time.Now().Add(pollBudget)
	for {
		for _, d := range b.sb.Callbacks() {
			if d.OrderID == order && d.URL != "" {
				return d.URL
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the sandbox recorded no callback for order %s", order)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// envelope is a LiqPay callback body carrying payment, signed with key.
func envelope(t *testing.T, key string, payment map[string]any) string {
	t.Helper()
	data, sig, err := liqpay.Encode(key, payment)
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"data": {data}, "signature": {sig}}.Encode()
}

const formType = "application/x-www-form-urlencoded"

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
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

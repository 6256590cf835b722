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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyor-dev/conveyor/api"
	"github.com/conveyor-dev/conveyor/client"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// The HTTP hot path of `conveyor bench`'s seed scenario: a service submits
// a liqpay-hold task, the engine calls the LiqPay sandbox, the sandbox
// posts its signed callback to /callbacks/{token}. The handler benchmarks
// isolate the submit and the callback; BenchmarkSeedFlow runs whole flows
// over loopback, so its allocs/op count everything a flow costs the
// process (client, server, engine, sandbox).

// benchWait is the seed flow without its call: a submit parks the task in
// the callback node, so the submit handler can be measured alone.
const benchWait = "bench-wait"

// benchService is a service as `conveyor bench` starts it, with the store's
// fsync off: the API over an engine on bolt, the shipped flows plus
// benchWait, the LiqPay sandbox mounted, an access log formatted and
// discarded.
type benchService struct {
	h   http.Handler
	url string
	sb  *liqpay.Server

	mu     sync.Mutex
	tokens map[string]string // callback token by ref
	held   map[string]chan struct{}
}

func newBenchService(b *testing.B) *benchService {
	b.Helper()
	s := &benchService{tokens: map[string]string{}, held: map[string]chan struct{}{}}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	st, err := bolt.Open(filepath.Join(b.TempDir(), "conveyor.db"), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	s.sb = liqpay.New(liqpay.Config{Logger: log})
	b.Cleanup(func() { s.sb.Close() })
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFS(processes.Shipped(), ".")
	if err != nil {
		b.Fatal(err)
	}
	defs = append(defs, loadBenchWait(b, l))
	reg := prometheus.NewRegistry()
	eng, err := engine.New(context.Background(), engine.Config{
		Store: st, Definitions: defs, Loader: l, Key: engine.NewKey(), BaseURL: base, Logger: log,
		Env:      map[string]string{"LIQPAY_URL": base + "/sandbox/liqpay", "VIA_URL": base + "/sandbox/via"},
		Secrets:  map[string]string{"liqpay_public_key": liqpay.DefaultPublicKey, "liqpay_private_key": liqpay.DefaultPrivateKey, "via_client_id": "system", "via_client_secret": "system123"},
		Metrics:  api.NewMetrics(reg),
		OnCommit: s.committed,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(eng.Stop)
	s.h = api.New(api.Config{Engine: eng, Logger: log, Registry: reg, SandboxLiqPay: s.sb})
	srv.Config.Handler = s.h
	srv.Start()
	b.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// loadBenchWait compiles benchWait from the shipped seed flow: the same
// input schema and callback node, started at the callback.
func loadBenchWait(b *testing.B, l *processes.Loader) *processes.Definition {
	b.Helper()
	src, err := os.ReadFile(filepath.Join("..", "processes", "flows", "liqpay-hold.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	y := strings.Replace(string(src), "process: liqpay-hold", "process: "+benchWait, 1)
	y = strings.Replace(y, "start: calling_api", "start: receive_callback", 1)
	call, wait := strings.Index(y, "  calling_api:"), strings.Index(y, "  receive_callback:")
	if call < 0 || wait < call {
		b.Fatal("the seed flow no longer has calling_api before receive_callback")
	}
	y = y[:call] + y[wait:]
	def, err := l.Load("bench-wait.yaml", []byte(y))
	if err != nil {
		b.Fatal(err)
	}
	return def
}

// committed notes callback tokens and wakes whoever waits for a held task.
func (s *benchService) committed(t *store.Task) {
	if t.Ref == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.Token != "" {
		s.tokens[t.Ref] = t.Token
	}
	if ch, ok := s.held[t.Ref]; ok && t.Node == "held" {
		delete(s.held, t.Ref)
		close(ch)
	}
}

// expectHeld returns a channel closed when the task with ref is held.
func (s *benchService) expectHeld(ref string) chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	s.held[ref] = ch
	s.mu.Unlock()
	return ch
}

// submitBody is a submit of the seed's hold data.
func submitBody(ref string) []byte {
	return fmt.Appendf(nil, `{"ref":%q,"data":{"phone":"380950000001","amount":7.34,"currency":"UAH","description":"Conveyor bench",`+
		`"order_id":%q,"card":%q,"card_exp_month":"12","card_exp_year":"29","card_cvv":"123","ip":"127.0.0.1"}}`, ref, ref, liqpay.CardSuccess)
}

// serve runs one request through the handler and checks its status.
func (s *benchService) serve(b *testing.B, method, path, contentType string, body []byte, status int) {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	if w.Code != status {
		b.Fatalf("%s %s: status %d, want %d: %s", method, path, w.Code, status, w.Body)
	}
}

// BenchmarkSubmit is POST /api/v1/processes/{process}/tasks: decode and
// validate the hold data, create the task (parked in its callback node),
// answer its view.
func BenchmarkSubmit(b *testing.B) {
	s := newBenchService(b)
	path := "/api/v1/processes/" + benchWait + "/tasks"
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = submitBody(fmt.Sprintf("submit-%d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s.serve(b, http.MethodPost, path, "application/json", bodies[i], http.StatusCreated)
	}
}

// BenchmarkCallback is POST /callbacks/{token} with LiqPay's signed
// callback for a waiting task: verify, decode, guard, move the task on.
func BenchmarkCallback(b *testing.B) {
	s := newBenchService(b)
	path := "/api/v1/processes/" + benchWait + "/tasks"
	paths, bodies := make([]string, b.N), make([][]byte, b.N)
	for i := range b.N {
		ref := fmt.Sprintf("callback-%d", i)
		s.serve(b, http.MethodPost, path, "application/json", submitBody(ref), http.StatusCreated)
		data, sig, err := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{
			"action": "hold", "type": "hold", "version": 3, "status": "hold_wait", "payment_id": 1000000 + i,
			"order_id": ref, "amount": json.Number("7.34"), "currency": "UAH", "description": "Conveyor bench",
			"public_key": liqpay.DefaultPublicKey, "sender_card_mask2": "424242*42", "is_3ds": false,
			"create_date": 1700000000000, "end_date": 1700000000000,
		})
		if err != nil {
			b.Fatal(err)
		}
		s.mu.Lock()
		paths[i] = "/callbacks/" + s.tokens[ref]
		s.mu.Unlock()
		bodies[i] = []byte(url.Values{"data": {data}, "signature": {sig}}.Encode())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s.serve(b, http.MethodPost, paths[i], "application/x-www-form-urlencoded", bodies[i], http.StatusOK)
	}
}

// BenchmarkSeedFlow runs the seed's flow end to end over loopback, one at
// a time: client.Submit, the engine's signed hold to the sandbox, the
// sandbox's signed callback, the task held.
func BenchmarkSeedFlow(b *testing.B) {
	s := newBenchService(b)
	cl := client.New(s.url, "", &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ref := fmt.Sprintf("flow-%d", i)
		held := s.expectHeld(ref)
		if _, _, err := cl.Submit(ctx, "liqpay-hold", ref, holdData(ref)); err != nil {
			b.Fatal(err)
		}
		select {
		case <-held:
		case <-time.After(10 * time.Second):
			b.Fatalf("task %s was not held within 10s", ref)
		}
	}
}

// holdData is the seed's hold input as `conveyor bench` submits it.
func holdData(ref string) map[string]any {
	return map[string]any{
		"phone": "380950000001", "amount": json.Number("7.34"), "currency": "UAH", "description": "Conveyor bench",
		"order_id": ref, "card": liqpay.CardSuccess, "card_exp_month": "12", "card_exp_year": "29",
		"card_cvv": "123", "ip": "127.0.0.1",
	}
}

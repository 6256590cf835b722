package liqpay

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/conveyor-dev/conveyor/internal/exactjson"
)

// Endpoints, matched as path suffixes so the Server can be mounted under any
// prefix (for example with http.StripPrefix("/sandbox/liqpay", srv)). The SDK
// README's payment/status path is an alias of request (holds.md §1.7).
const (
	PathRequest = "/api/request"
	PathStatus  = "/api/payment/status"
)

// maxBodyBytes bounds a request body; LiqPay requests are small forms.
const maxBodyBytes = 1 << 20

// Server is a local simulator of LiqPay's server-to-server API. It is an
// http.Handler; serve it on loopback with net/http or httptest. All methods
// are safe for concurrent use. Call Close when done so that callbacks in
// flight finish.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // cancelled when Close gives up on callbacks
	cancel context.CancelFunc
	done   chan struct{} // closed by Close: releases hanging requests
	opened chan struct{} // always closed: the gate of callbacks no reply waits for
	wg     sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	lastID     int64
	payments   map[orderKey]*payment
	tokens     map[string]*payment
	timers     []*time.Timer
	calls      []Call
	deliveries []Delivery
}

// New returns a Server for cfg; zero fields of cfg take their defaults.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	cfg.Keys = maps.Clone(cfg.Keys)
	ctx, cancel := context.WithCancel(context.Background())
	opened := make(chan struct{})
	close(opened)
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "sandbox/liqpay"),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		opened:   opened,
		lastID:   1_000_000_000,
		payments: make(map[orderKey]*payment),
		tokens:   make(map[string]*payment),
	}
}

// exchange is one authenticated request on its way through the Server.
type exchange struct {
	params     params
	publicKey  string
	privateKey string
	action     string
	faults     Faults // Config.Faults plus the request's sandbox_fault
	now        time.Time
	base       string        // scheme://host/prefix the request came to
	gate       chan struct{} // closed once the reply is out; callbacks wait for it
}

// ServeHTTP answers POST .../api/request and POST .../api/payment/status.
// Other paths get a 404 and other methods a 405, both with a JSON body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := &Call{Time: s.cfg.Clock(), Path: r.URL.Path}
	route, ok := routeOf(r.URL.Path)
	if !ok {
		s.finish(w, call, http.StatusNotFound, errorReply(errCode("err_path", "no such endpoint; use POST "+PathRequest)))
		return
	}
	call.Path = route
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.finish(w, call, http.StatusMethodNotAllowed, errorReply(errCode("err_wrong", "method "+r.Method+" not allowed; use POST")))
		return
	}
	x, err := s.open(w, r, call, route)
	if err != nil {
		s.finish(w, call, http.StatusOK, errorReply(err))
		return
	}
	s.serve(w, r, x, call)
}

// routeOf maps a request path to the endpoint it ends with.
func routeOf(path string) (string, bool) {
	for _, route := range []string{PathRequest, PathStatus} {
		if strings.HasSuffix(path, route) {
			return route, true
		}
	}
	return "", false
}

// open reads, decodes and authenticates a request (holds.md §1.1): the form
// fields data and signature, data Base64 JSON with the public_key, the
// signature SHA-1 over the data string with that merchant's private key.
func (s *Server) open(w http.ResponseWriter, r *http.Request, call *Call, route string) (*exchange, *apiError) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errWrong("body", "expected an application/x-www-form-urlencoded form")
	}
	data := r.PostForm.Get("data")
	if data == "" {
		return nil, errMissing("data")
	}
	obj, err := decodeData(data)
	if err != nil {
		return nil, errWrong("data", "expected standard Base64 of a JSON object")
	}
	p := params(obj)
	call.Action, _ = p.get("action")
	call.OrderID, _ = p.get("order_id")
	call.PublicKey, _ = p.get("public_key")
	privateKey, apiErr := s.authenticate(p, data, r.PostForm.Get("signature"))
	if apiErr != nil {
		return nil, apiErr
	}
	faults, apiErr := s.requestFaults(p)
	if apiErr != nil {
		return nil, apiErr
	}
	call.Faults = faults.String()
	return &exchange{
		params:     p,
		publicKey:  call.PublicKey,
		privateKey: privateKey,
		action:     call.Action,
		faults:     faults,
		now:        call.Time,
		base:       baseURL(r, route),
		gate:       make(chan struct{}),
	}, nil
}

// authenticate finds the merchant's private key and checks the signature.
func (s *Server) authenticate(p params, data, signature string) (string, *apiError) {
	publicKey, err := p.need("public_key")
	if err != nil {
		return "", err
	}
	privateKey, known := s.cfg.Keys[publicKey]
	if !known {
		return "", errCode("public_key_not_found", "unknown public_key")
	}
	if !verify(privateKey, data, signature) {
		return "", errCode("invalid_signature", "signature does not match data")
	}
	return privateKey, nil
}

// requestFaults merges Config.Faults with the request's sandbox_fault.
func (s *Server) requestFaults(p params) (Faults, *apiError) {
	knobs, err := p.get("sandbox_fault")
	if err != nil {
		return Faults{}, err
	}
	f, parseErr := ParseFaults(knobs)
	if parseErr != nil {
		return Faults{}, errWrong("sandbox_fault", parseErr.Error())
	}
	return s.cfg.Faults.merge(f), nil
}

// baseURL is the absolute URL the sandbox is mounted at, as the client saw
// it; redirect_to points below it.
func baseURL(r *http.Request, route string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	path := r.URL.Path
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		path = u.Path // before any http.StripPrefix
	}
	return scheme + "://" + r.Host + strings.TrimSuffix(path, route)
}

// serve applies the request-level fault knobs, runs the action and answers.
// Callbacks the action caused are released only once the reply is written.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, x *exchange, call *Call) {
	defer close(x.gate)
	switch {
	case x.faults.Timeout:
		s.hang(r.Context())
		s.record(call)
	case x.faults.HTTP500:
		s.delay(r.Context(), x.faults.Latency)
		s.finish(w, call, http.StatusInternalServerError,
			errorReply(errCode("sandbox_http500", "injected fault http500: nothing was done")))
	default:
		body := s.dispatch(x)
		s.delay(r.Context(), x.faults.Latency)
		s.finish(w, call, http.StatusOK, body)
	}
}

// hang waits until the client gives up or the Server closes.
func (s *Server) hang(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-s.done:
	}
}

// delay waits d, unless the client gives up or the Server closes first.
func (s *Server) delay(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.done:
	}
}

// finish writes body as the JSON reply and records the call.
func (s *Server) finish(w http.ResponseWriter, call *Call, status int, body map[string]any) {
	call.HTTPStatus = status
	call.Result, _ = body["result"].(string)
	call.Status, _ = body["status"].(string)
	call.ErrCode, _ = body["err_code"].(string)
	writeJSON(w, status, body)
	s.record(call)
}

// writeJSON sends body as a JSON reply.
func writeJSON(w http.ResponseWriter, status int, body map[string]any) {
	raw, err := exactjson.Marshal(body)
	if err != nil {
		status = http.StatusInternalServerError
		raw = []byte(`{"result":"error","status":"error","err_code":"err_internal","err_description":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

// record keeps call for Calls and logs it. The log carries no card data,
// keys, OTPs or tokens: only what Call holds.
func (s *Server) record(call *Call) {
	s.mu.Lock()
	s.calls = append(s.calls, *call)
	s.mu.Unlock()
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "liqpay sandbox request",
		slog.String("path", call.Path), slog.String("action", call.Action), slog.String("order_id", call.OrderID),
		slog.String("public_key", call.PublicKey), slog.Int("http_status", call.HTTPStatus),
		slog.String("result", call.Result), slog.String("status", call.Status), slog.String("err_code", call.ErrCode),
		slog.String("faults", call.Faults))
}

// errorReply is LiqPay's answer to a request that failed as a whole.
func errorReply(err *apiError) map[string]any {
	return map[string]any{
		"result":          "error",
		"status":          statusError,
		"err_code":        err.Code,
		"err_description": err.Description,
	}
}

// Calls returns a copy of every request answered so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Callbacks returns a copy of every callback scheduled so far, oldest first,
// with its delivery progress at the time of the call.
func (s *Server) Callbacks() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// Sweep applies every clock-driven transition that is due by the sandbox
// clock (pending holds resolving, holds expiring) and sends their callbacks.
// The Server also does this lazily whenever a request touches a payment;
// Sweep is for tests that move a fake Clock and expect callbacks unasked.
func (s *Server) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock()
	for _, p := range s.payments {
		s.settle(p, now, s.opened)
	}
}

// Close stops the sandbox's timers, releases requests held by the timeout
// and latency knobs, and waits up to 5 seconds for callbacks in flight
// before abandoning them. Requests served after Close send no callbacks.
// Close is idempotent and always returns nil.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, t := range s.timers {
		t.Stop()
	}
	close(s.done)
	s.mu.Unlock()

	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(closeTimeout):
		s.cancel()
		<-finished
	}
	s.cancel()
	return nil
}

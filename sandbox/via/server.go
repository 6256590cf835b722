package via

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Endpoints, matched as path suffixes so the Server can be mounted under any
// prefix (for example with http.StripPrefix("/sandbox/via", srv)).
const (
	PathCreate  = "/partner/hold/create"
	PathConfirm = "/partner/hold/confirm"
	PathCancel  = "/partner/hold/cancel"
	PathInfo    = "/partner/hold/info"
)

// FaultHeader is the request header that carries fault knobs, as an
// alternative to the body's sandbox_fault field (useful for info and
// cancel, which may have no body).
const FaultHeader = "X-Sandbox-Fault"

// Server is a local simulator of VIA's partner hold API. It is an
// http.Handler; serve it on loopback with net/http or httptest. All methods
// are safe for concurrent use. Call Close when done so that timers stop and
// webhooks in flight finish.
type Server struct {
	cfg       Config
	log       *slog.Logger
	merchants map[string]bool
	ctx       context.Context // cancelled when Close gives up on webhooks
	cancel    context.CancelFunc
	done      chan struct{} // closed by Close: releases hanging requests
	opened    chan struct{} // always closed: the gate of webhooks no reply waits for
	wg        sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	holds      map[string]*hold
	byExternal map[externalKey]*hold
	calls      []Call
	deliveries []Delivery
}

// New returns a Server for cfg; zero fields of cfg take their defaults.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	merchants := make(map[string]bool, len(cfg.Merchants))
	for _, m := range cfg.Merchants {
		merchants[m] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	opened := make(chan struct{})
	close(opened)
	return &Server{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "sandbox/via"),
		merchants:  merchants,
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		opened:     opened,
		holds:      make(map[string]*hold),
		byExternal: make(map[externalKey]*hold),
	}
}

// exchange is one authenticated request on its way through the Server.
type exchange struct {
	route   string
	path    string // the path the client called, for the error envelope
	partner string
	body    fields
	query   url.Values
	faults  Faults // Config.Faults plus the request's knobs
	now     time.Time
	call    *Call
	gate    chan struct{} // closed once the reply is out; webhooks wait for it
}

// reply is a finished answer: an HTTP status and a JSON body.
type reply struct {
	status int
	body   any
}

// ServeHTTP answers POST .../partner/hold/{create,confirm,cancel,info}.
// Other paths get 404 NOT_FOUND and other methods 405 METHOD_NOT_ALLOWED,
// both in the error envelope.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := &Call{Time: s.cfg.Clock(), Path: r.URL.Path, ClientID: r.Header.Get("client-id")}
	path := requestPath(r)
	route, ok := routeOf(r.URL.Path)
	if !ok {
		s.finish(w, call, s.failure(call, path, fail(CodeNotFound, "no such endpoint")))
		return
	}
	call.Path = route
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.finish(w, call, s.failure(call, path, fail(CodeMethodNotAllowed, "method "+r.Method+" not allowed; use POST")))
		return
	}
	x, err := s.open(w, r, call, route, path)
	if err != nil {
		s.finish(w, call, s.failure(call, path, err))
		return
	}
	s.serve(w, r, x)
}

// routeOf maps a request path to the endpoint it ends with.
func routeOf(path string) (string, bool) {
	for _, route := range []string{PathCreate, PathConfirm, PathCancel, PathInfo} {
		if strings.HasSuffix(path, route) {
			return route, true
		}
	}
	return "", false
}

// requestPath is the path the client called, before any http.StripPrefix.
func requestPath(r *http.Request) string {
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil && u.Path != "" {
		return u.Path
	}
	return r.URL.Path
}

// open authenticates a request, reads its body and collects its fault
// knobs.
func (s *Server) open(w http.ResponseWriter, r *http.Request, call *Call, route, path string) (*exchange, *apiError) {
	partner, err := s.authenticate(r.Header)
	if err != nil {
		return nil, err
	}
	raw, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if readErr != nil {
		return nil, invalid("the body could not be read (at most 1 MiB)")
	}
	body, err := decodeBody(raw)
	if err != nil {
		return nil, err
	}
	faults, err := s.requestFaults(r.Header, body)
	if err != nil {
		return nil, err
	}
	call.Faults = faults.String()
	return &exchange{
		route:   route,
		path:    path,
		partner: partner,
		body:    body,
		query:   r.URL.Query(),
		faults:  faults,
		now:     call.Time,
		call:    call,
		gate:    make(chan struct{}),
	}, nil
}

// authenticate checks the client-id and client-secret headers (holds.md
// §2.1) and returns the partner. Secrets are compared in constant time, and
// an unknown client-id costs the same comparison as a known one.
func (s *Server) authenticate(h http.Header) (string, *apiError) {
	id, secret := h.Get("client-id"), h.Get("client-secret")
	if id == "" || secret == "" {
		return "", fail(CodeUnauthorized, "client-id and client-secret headers are required")
	}
	want, known := s.cfg.Partners[id]
	if !known {
		want = "\x00unknown partner"
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 || !known {
		return "", fail(CodeUnauthorized, "invalid client-id or client-secret")
	}
	return id, nil
}

// requestFaults merges Config.Faults with the knobs of the X-Sandbox-Fault
// header and the body's sandbox_fault field.
func (s *Server) requestFaults(h http.Header, body fields) (Faults, *apiError) {
	fromBody, err := body.str("sandbox_fault")
	if err != nil {
		return Faults{}, err
	}
	faults := s.cfg.Faults
	for _, knobs := range []string{h.Get(FaultHeader), fromBody} {
		f, parseErr := ParseFaults(knobs)
		if parseErr != nil {
			return Faults{}, invalid(parseErr.Error())
		}
		faults = faults.merge(f)
	}
	return faults, nil
}

// serve applies the request-level fault knobs, runs the endpoint and
// answers. Webhooks the request caused are released once the reply is out.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, x *exchange) {
	defer close(x.gate)
	switch {
	case x.faults.Timeout:
		s.hang(r.Context())
		s.record(x.call)
	case x.faults.HTTP500:
		s.delay(r.Context(), x.faults.Latency)
		s.finish(w, x.call, s.failure(x.call, x.path, fail(CodeInternal, "injected fault http500: nothing was done")))
	default:
		answer := s.dispatch(x)
		s.delay(r.Context(), x.faults.Latency)
		s.finish(w, x.call, answer)
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

// failure renders err as the error envelope and notes its code in call.
func (s *Server) failure(call *Call, path string, err *apiError) reply {
	call.ErrCode = err.code
	return reply{status: err.httpStatus(), body: err.envelope(path)}
}

// success renders data in VIA's success wrapper and notes the status in
// call.
func success(call *Call, status string, data any) reply {
	call.Status = status
	return reply{status: http.StatusOK, body: dataReply{Data: data}}
}

// finish writes the reply as JSON and records the call.
func (s *Server) finish(w http.ResponseWriter, call *Call, answer reply) {
	call.HTTPStatus = answer.status
	writeJSON(w, answer.status, answer.body)
	s.record(call)
}

// writeJSON sends body as a JSON reply.
func writeJSON(w http.ResponseWriter, status int, body any) {
	raw, err := json.Marshal(body)
	if err != nil {
		status = http.StatusInternalServerError
		raw, _ = json.Marshal(fail(CodeInternal, "internal error").envelope(""))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

// record keeps call for Calls and logs it. The log carries only what Call
// holds: never a card token or a client secret.
func (s *Server) record(call *Call) {
	s.mu.Lock()
	s.calls = append(s.calls, *call)
	s.mu.Unlock()
	s.log.Info("via sandbox request",
		"path", call.Path, "client_id", call.ClientID, "hold_id", call.HoldID,
		"external_id", call.ExternalID, "merchant_id", call.MerchantID, "amount", call.Amount,
		"http_status", call.HTTPStatus, "status", call.Status, "err_code", call.ErrCode,
		"replay", call.Replay, "faults", call.Faults)
}

// Calls returns a copy of every request answered so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Webhooks returns a copy of every webhook scheduled so far, oldest first,
// with its delivery progress at the time of the call. It is empty unless
// Config.WebhookURL is set.
func (s *Server) Webhooks() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// Sweep applies every clock-driven transition that is due by the sandbox
// clock (pending operations resolving, holds expiring) and sends their
// webhooks. The Server also does this lazily whenever a request touches a
// hold, and by real-time timers; Sweep is for tests that move a fake Clock
// and expect webhooks unasked.
func (s *Server) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock()
	for _, h := range s.holds {
		s.settle(h, now, s.opened)
	}
}

// Close stops the sandbox's timers, releases requests held by the timeout
// and latency knobs, and waits up to 5 seconds for webhooks in flight
// before abandoning them. Requests served after Close send no webhooks and
// arm no timers. Close is idempotent and always returns nil.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, h := range s.holds {
		h.stopTimer()
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

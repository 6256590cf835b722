// Package api is Conveyor's HTTP interface: the JSON API services use to
// submit and follow tasks, the callback endpoints providers call, the
// operator actions (single and bulk), the audit log, the queue alarms,
// health, metrics and the OpenAPI document
// (GET /api/v1/openapi.json, embedded from openapi.json and kept true by a
// test that walks the route table).
//
// Every route is a row of the routes table below: method, pattern, whether
// it needs the bearer token, and the handler. Handlers return errors; the
// one table in errors.go turns their codes into HTTP statuses. One access
// log line is written per request with the route pattern, never the URL, so
// callback tokens stay out of the logs; bodies are never logged.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/web"
)

// Defaults of Config.
const (
	DefaultMaxBody  = 1 << 20
	DefaultMaxDepth = 32
)

// ActorHeader names the operator behind a request; it is recorded in the
// task's history after the authenticated principal ("token:alice").
const ActorHeader = "X-Conveyor-Actor"

// Config configures the handler New returns. Zero values take the defaults
// documented on each field.
type Config struct {
	// Engine runs the tasks. Required.
	Engine *engine.Engine
	// Token is the bearer token that submit, read and operator endpoints
	// require, compared in constant time. Empty turns authentication off:
	// safe only on a loopback listener. Callback endpoints, /healthz,
	// /metrics and the OpenAPI document never need it.
	Token string
	// Logger receives the access log and internal errors. Default
	// slog.Default().
	Logger *slog.Logger
	// Registry is the private Prometheus registry GET /metrics serves. New
	// registers the task gauges (read from the engine at scrape time) and
	// the HTTP request metrics in it; pass the same registry to NewMetrics
	// for the engine's metrics. Default: a new registry.
	Registry *prometheus.Registry
	// MaxBody caps a request body in bytes; a larger one is answered 413.
	// Default DefaultMaxBody (1 MiB).
	MaxBody int64
	// MaxDepth caps the nesting of a JSON request body; a deeper one is
	// answered 400. Default DefaultMaxDepth (32).
	MaxDepth int
	// SandboxLiqPay, when non-nil, is mounted under /sandbox/liqpay/ (its
	// paths seen without the prefix), without authentication.
	SandboxLiqPay http.Handler
	// SandboxVIA, when non-nil, is mounted under /sandbox/via/ likewise.
	SandboxVIA http.Handler
	// Now gives the time older_than filters count back from. Default
	// time.Now.
	Now func() time.Time
}

// route is one endpoint. The OpenAPI test checks the table against the
// document both ways.
type route struct {
	method, path string
	// auth: the bearer token is required when Config.Token is set.
	auth   bool
	handle func(s *server, w http.ResponseWriter, r *http.Request) error
}

// pattern is the route's ServeMux pattern.
func (rt route) pattern() string { return rt.method + " " + rt.path }

var routes = []route{
	{"POST", "/api/v1/processes/{process}/tasks", true, (*server).submit},
	{"GET", "/api/v1/tasks/{id}", true, (*server).task},
	{"GET", "/api/v1/tasks", true, (*server).list},
	{"POST", "/api/v1/tasks/{id}/retry", true, (*server).retry},
	{"POST", "/api/v1/tasks/{id}/move", true, (*server).move},
	{"POST", "/api/v1/tasks/{id}/cancel", true, (*server).cancel},
	{"POST", "/api/v1/tasks/{id}/edit", true, (*server).edit},
	{"POST", "/api/v1/bulk", true, (*server).bulk},
	{"GET", "/api/v1/bulk", true, (*server).jobs},
	{"GET", "/api/v1/bulk/{id}", true, (*server).job},
	{"GET", "/api/v1/bulk/{id}/results", true, (*server).jobResults},
	{"POST", "/api/v1/bulk/{id}/cancel", true, (*server).cancelJob},
	{"GET", "/api/v1/audit", true, (*server).audit},
	{"GET", "/api/v1/alarms", true, (*server).alarms},
	{"POST", "/api/v1/processes/{process}/tasks/{ref}/callback", true, (*server).callbackByRef},
	{"POST", "/api/v1/processes/{process}/nodes/{node}/callback", false, (*server).callbackByNode},
	{"POST", "/callbacks/{token}", false, (*server).callbackByToken},
	{"GET", "/api/v1/processes", true, (*server).processes},
	{"GET", "/api/v1/processes/{process}", true, (*server).process},
	{"GET", "/api/v1/openapi.json", false, (*server).openapi},
	{"GET", "/healthz", false, (*server).healthz},
	{"GET", "/metrics", false, nil}, // served by promhttp
}

// server is the handler New returns.
type server struct {
	eng      *engine.Engine
	token    [32]byte // sha256 of Config.Token, so the comparison's time does not depend on its length
	auth     bool
	log      *slog.Logger
	maxBody  int64
	maxDepth int
	now      func() time.Time
	mux      *http.ServeMux
	byPat    map[string]route
	http     *httpMetrics
}

// New returns the HTTP handler of the API. It panics when cfg.Engine is nil.
func New(cfg Config) http.Handler {
	if cfg.Engine == nil {
		panic("api: Config.Engine is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = DefaultMaxDepth
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &server{
		eng: cfg.Engine, token: sha256.Sum256([]byte(cfg.Token)), auth: cfg.Token != "",
		log: cfg.Logger, maxBody: cfg.MaxBody, maxDepth: cfg.MaxDepth, now: cfg.Now,
		mux: http.NewServeMux(), byPat: map[string]route{},
		http: newHTTPMetrics(cfg.Registry),
	}
	register(cfg.Registry, &taskCollector{eng: cfg.Engine})
	for _, rt := range routes {
		s.byPat[rt.pattern()] = rt
		if rt.handle == nil {
			continue
		}
		s.mux.Handle(rt.pattern(), s.handler(rt))
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      promLogger{cfg.Logger},
	}))
	if cfg.SandboxLiqPay != nil {
		s.mux.Handle("/sandbox/liqpay/", http.StripPrefix("/sandbox/liqpay", cfg.SandboxLiqPay))
	}
	if cfg.SandboxVIA != nil {
		s.mux.Handle("/sandbox/via/", http.StripPrefix("/sandbox/via", cfg.SandboxVIA))
	}
	web.Mount(s.mux, web.Handler(web.Config{})) // the operator dashboard at / (and /assets/)
	return s
}

// handler adapts a route's handler: its error becomes the JSON answer.
func (s *server) handler(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := rt.handle(s, w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// ServeHTTP routes a request: unknown routes and methods get JSON 404 and
// 405, routes that need the token check it, bodies are capped, panics become
// 500, and one access log line is written.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	_, pattern := s.mux.Handler(r)
	defer s.finish(sw, r, pattern, start)
	rt, known := s.byPat[pattern]
	switch {
	case pattern == "":
		s.unmatched(sw, r)
	case known && rt.auth && !s.authorized(r):
		sw.Header().Set("WWW-Authenticate", `Bearer realm="conveyor"`)
		s.writeError(sw, r, conveyor.Errorf(conveyor.EUnauthorized, "this endpoint needs the header Authorization: Bearer <token>"))
	default:
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody) // w: a too-large body closes the connection
		s.mux.ServeHTTP(sw, r)
	}
}

// finish recovers a panic as a 500 and writes the access log line and the
// request metrics.
func (s *server) finish(sw *statusWriter, r *http.Request, pattern string, start time.Time) {
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler {
			panic(v)
		}
		s.log.Error("panic serving request", "method", r.Method, "route", pattern, "panic", v, "stack", string(debug.Stack()))
		if !sw.wrote {
			s.writeError(sw, r, conveyor.Errorf(conveyor.EInternal, "panic"))
		}
	}
	if pattern == "" {
		pattern = "unmatched"
	}
	status := sw.status()
	d := time.Since(start)
	s.http.observe(pattern, status, d)
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("route", pattern),
		slog.Int("status", status), slog.Float64("duration_ms", float64(d.Microseconds())/1000),
	}
	if sw.code != "" {
		attrs = append(attrs, slog.String("code", sw.code))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request", attrs...)
}

// unmatched answers a request no route takes: 405 with Allow when the path
// exists for other methods, else 404. ServeMux knows which; its own answer
// is probed and rewritten as JSON.
func (s *server) unmatched(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	p := &probe{header: http.Header{}}
	h.ServeHTTP(p, r)
	if p.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", p.header.Get("Allow"))
		s.writeError(w, r, conveyor.Errorf(codeMethodNotAllowed, "method %s is not allowed here; allowed: %s", r.Method, p.header.Get("Allow")))
		return
	}
	s.writeError(w, r, conveyor.Errorf(conveyor.ENotFound, "no such endpoint; see GET /api/v1/openapi.json"))
}

// authorized reports whether r carries the bearer token (always, when no
// token is configured).
func (s *server) authorized(r *http.Request) bool {
	if !s.auth {
		return true
	}
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(h[7:])))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
}

// actor names who acts, for the task's history: the principal ("token" when
// authenticated by the bearer token, "anonymous" when auth is off),
// followed by the operator the X-Conveyor-Actor header names, if any.
func (s *server) actor(r *http.Request) string {
	p := "anonymous"
	if s.auth {
		p = "token"
	}
	name := strings.TrimSpace(r.Header.Get(ActorHeader))
	if name == "" {
		return p
	}
	name = strings.Map(func(c rune) rune {
		if unicode.IsPrint(c) {
			return c
		}
		return -1
	}, name)
	if r := []rune(name); len(r) > 64 {
		name = string(r[:64])
	}
	return p + ":" + name
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// routeOf is the pattern of the route serving r, for logs.
func routeOf(r *http.Request) string {
	if r.Pattern == "" {
		return "unmatched"
	}
	return r.Pattern
}

// statusWriter remembers the status and error code of an answer.
type statusWriter struct {
	http.ResponseWriter
	st    int
	wrote bool
	code  string
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wrote {
		w.st, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.st, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.st
}

// probe records what ServeMux's own 404/405 handler would answer.
type probe struct {
	header http.Header
	status int
}

func (p *probe) Header() http.Header         { return p.header }
func (p *probe) Write(b []byte) (int, error) { return len(b), nil }
func (p *probe) WriteHeader(status int)      { p.status = status }

// promLogger sends promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

// Println implements promhttp.Logger.
func (l promLogger) Println(v ...any) { l.log.Error("metrics scrape", "err", fmt.Sprint(v...)) }

package api

import (
	"context"
	_ "embed"
	"net/http"
	"time"
)

// openAPIDoc is the OpenAPI 3 document of every route (openapi.json).
//
//go:embed openapi.json
var openAPIDoc []byte

// openapi serves the OpenAPI document.
func (s *server) openapi(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
	return nil
}

// healthTimeout bounds the store check of /healthz.
const healthTimeout = 2 * time.Second

// healthProbe names no process (process names never start with "-"), so
// reading its counters opens one read transaction and finds no rows.
const healthProbe = "-health"

// healthz answers 200 {"status":"ok"} when the engine can read its store,
// 503 {"status":"unavailable"} when it cannot (closed, or slower than
// healthTimeout). It does not prove that commits succeed.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if _, err := s.eng.Counts(ctx, healthProbe); err != nil {
		s.log.Warn("health check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

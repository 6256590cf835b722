package api

import (
	"errors"
	"log/slog"
	"net/http"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// codeMethodNotAllowed is the one code the HTTP layer adds to conveyor's: a
// route that exists for other methods (405, with an Allow header).
const codeMethodNotAllowed = "method_not_allowed"

// statuses maps every error code to its HTTP status. It is the only place
// that does: handlers return errors, never statuses. An input that fails a
// process's input schema is the exception inside "invalid": 422, with the
// failing fields listed (see statusOf).
var statuses = map[string]int{
	conveyor.EInvalid:      http.StatusBadRequest,
	conveyor.ENotFound:     http.StatusNotFound,
	conveyor.EConflict:     http.StatusConflict,
	conveyor.EUnauthorized: http.StatusUnauthorized,
	conveyor.ETooLarge:     http.StatusRequestEntityTooLarge,
	conveyor.EUnavailable:  http.StatusServiceUnavailable,
	conveyor.ETooMany:      http.StatusTooManyRequests,
	conveyor.EInternal:     http.StatusInternalServerError,
	conveyor.ENotWaiting:   http.StatusConflict,
	codeMethodNotAllowed:   http.StatusMethodNotAllowed,
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Fields lists the input fields that fail the process's schema (422).
	Fields []processes.FieldError `json:"fields,omitempty"`
}

// classify returns the code, HTTP status and caller-facing detail of err.
// Errors that are not *conveyor.Error are internal; a closed store is
// unavailable.
func classify(err error) (int, errorDetail) {
	if errors.Is(err, store.ErrClosed) && conveyor.ErrorCode(err) == conveyor.EInternal {
		err = &conveyor.Error{Code: conveyor.EUnavailable, Message: "the store is closed; the service is shutting down", Err: err}
	}
	code := conveyor.ErrorCode(err)
	status, ok := statuses[code]
	if !ok {
		code, status = conveyor.EInternal, http.StatusInternalServerError
	}
	d := errorDetail{Code: code, Message: conveyor.ErrorMessage(err)}
	if code == conveyor.EInternal {
		d.Message = "internal error"
	}
	var ie processes.InputError
	if code == conveyor.EInvalid && errors.As(err, &ie) {
		status, d.Fields = http.StatusUnprocessableEntity, ie
	}
	return status, d
}

// writeError answers err as JSON and logs internal errors in full (their
// cause never reaches the caller).
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, d := classify(err)
	if status >= 500 {
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("route", routeOf(r)),
			slog.String("code", d.Code), slog.Any("err", err))
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.code = d.Code
	}
	writeJSON(w, status, errorBody{Error: d})
}

// statusOf returns the HTTP status of a code from the table.
func statusOf(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

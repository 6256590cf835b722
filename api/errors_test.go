package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		err     error
		status  int
		code    string
		message string
	}{
		{"invalid", conveyor.Errorf(conveyor.EInvalid, "bad"), 400, "invalid", "bad"},
		{"input schema", &conveyor.Error{Code: conveyor.EInvalid, Message: "invalid input", Err: processes.InputError{{Field: "amount", Msg: "is required"}}}, 422, "invalid", "invalid input"},
		{"not found", conveyor.Errorf(conveyor.ENotFound, "gone"), 404, "not_found", "gone"},
		{"conflict", conveyor.Errorf(conveyor.EConflict, "taken"), 409, "conflict", "taken"},
		{"unauthorized", conveyor.Errorf(conveyor.EUnauthorized, "who"), 401, "unauthorized", "who"},
		{"too large", conveyor.Errorf(conveyor.ETooLarge, "big"), 413, "too_large", "big"},
		{"unavailable", conveyor.Errorf(conveyor.EUnavailable, "disk"), 503, "unavailable", "disk"},
		{"too many", conveyor.Errorf(conveyor.ETooMany, "slow down"), 429, "too_many", "slow down"},
		{"internal", conveyor.Errorf(conveyor.EInternal, "secret detail"), 500, "internal", "internal error"},
		{"plain error", errors.New("disk on fire at /var/x"), 500, "internal", "internal error"},
		{"wrapped", fmt.Errorf("engine: %w", conveyor.Errorf(conveyor.ENotFound, "task x not found")), 404, "not_found", "task x not found"},
		{"closed store", fmt.Errorf("load: %w", store.ErrClosed), 503, "unavailable", "the store is closed; the service is shutting down"},
		{"unknown code", conveyor.Errorf("weird", "?"), 500, "internal", "internal error"},
		{"method", conveyor.Errorf(codeMethodNotAllowed, "no"), http.StatusMethodNotAllowed, "method_not_allowed", "no"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			status, d := classify(c.err)
			if status != c.status || d.Code != c.code || d.Message != c.message {
				t.Errorf("classify = %d %q %q, want %d %q %q", status, d.Code, d.Message, c.status, c.code, c.message)
			}
			if (status == 422) != (len(d.Fields) > 0) {
				t.Errorf("fields %v with status %d", d.Fields, status)
			}
		})
	}
}

func TestCheckDepth(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body string
		ok   bool
	}{
		{`{"a":[[1]]}`, true},
		{`{"a":[[[1]]]}`, false},
		{`{"a":"[[[[[[["}`, true},
		{`{"a":"\"[[[[[["}`, true},
		{`[[[]]]`, true},
		{`[[[[]]]]`, false},
	}
	for _, c := range cases {
		if err := checkDepth([]byte(c.body), 3); (err == nil) != c.ok {
			t.Errorf("checkDepth(%s, 3) = %v", c.body, err)
		}
	}
}

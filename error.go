// Package conveyor holds what every layer of Conveyor shares: the error type
// with a machine-readable code. The packages that do the work are engine,
// processes, nodes, store, api and cmd/conveyor.
package conveyor

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each to one status code in one table
// (api/errors.go); callers compare codes with ErrorCode, never messages.
const (
	EConflict     = "conflict"     // the request contradicts existing state (409)
	EInvalid      = "invalid"      // the request is malformed or fails validation (400/422)
	ENotFound     = "not_found"    // the named thing does not exist (404)
	EUnauthorized = "unauthorized" // missing or wrong credentials (401)
	ETooLarge     = "too_large"    // a body or task exceeds a size limit (413)
	EUnavailable  = "unavailable"  // the service cannot take work now: disk, overload (503)
	EInternal     = "internal"     // a bug or an unexpected failure (500)
	ENotWaiting   = "not_waiting"  // a callback reached a task that is not waiting for it
	EDuplicate    = "duplicate"    // the same callback again; nothing moved
	ETooMany      = "too_many"     // rate limit or load shedding (429)
)

// Error is an error with a code for machines and a message for people.
// Message must never contain card data, secrets or tokens.
type Error struct {
	// Code is one of the E* constants.
	Code string
	// Message says what is wrong and where, for a person.
	Message string
	// Err is the underlying cause, logged but never shown to API callers.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the message of the first *Error in err's chain, and
// "internal error" for any other error, so internals never leak to callers.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "internal error"
}

package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/store"
)

// maxName bounds Process, Node, Ref and Token, so that an index entry of two
// names and an id stays under PostgreSQL's limit of about 2.7 KB.
const maxName = 1024

// The times a bigint column can hold: nanoseconds since 1970 in an int64.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// timeArg returns t as a column value: Unix nanoseconds, NULL for the zero
// time. Callers check inRange first.
func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// timeOf undoes timeArg.
func timeOf(ns *int64) time.Time {
	if ns == nil {
		return time.Time{}
	}
	return time.Unix(0, *ns).UTC()
}

// inRange reports whether timeArg can store t.
func inRange(t time.Time) bool {
	return t.IsZero() || !t.Before(minTime) && !t.After(maxTime)
}

// bound returns t as Unix nanoseconds for a comparison, clamped to the
// int64 range.
func bound(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// storable reports whether PostgreSQL's text can hold s: valid UTF-8
// without a 0x00 byte.
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// field is a named string of a record, for validation.
type field struct{ name, v string }

// checkFields fails for the first field text cannot hold.
func checkFields(what string, fields ...field) error {
	for _, f := range fields {
		if !storable(f.v) {
			return invalid("store: %s: %s must be valid UTF-8 without 0x00 bytes", what, f.name)
		}
	}
	return nil
}

// taskColumns are the columns of a task record, in the order of scanTask
// and taskArgs.
const taskColumns = `id, process, version, ref, input_hash, node, status, data, error, token,
	timer_at, timer, attempt, steps, rev, history_len, marks, early, created, updated, entered, finished`

// scanner is a row: pgx.Row or pgx.CollectableRow.
type scanner interface {
	Scan(dest ...any) error
}

// scanTask reads a row of taskColumns.
func scanTask(row scanner) (*store.Task, error) {
	var (
		t                                  store.Task
		status                             string
		token                              *string
		errJSON, marks, early              []byte
		timerAt, created, updated, entered *int64
		finished                           *int64
		attempt, steps, rev, historyLen    int64
	)
	err := row.Scan(&t.ID, &t.Process, &t.Version, &t.Ref, &t.InputHash, &t.Node, &status, &t.Data, &errJSON, &token,
		&timerAt, &t.Timer, &attempt, &steps, &rev, &historyLen, &marks, &early, &created, &updated, &entered, &finished)
	if err != nil {
		return nil, err
	}
	t.Status = store.Status(status)
	if token != nil {
		t.Token = *token
	}
	t.TimerAt = timeOf(timerAt)
	t.Attempt, t.Steps, t.Rev, t.HistoryLen = int(attempt), int(steps), uint64(rev), uint32(historyLen)
	t.Created, t.Updated, t.Entered, t.Finished = timeOf(created), timeOf(updated), timeOf(entered), timeOf(finished)
	if err := decodeJSON(errJSON, &t.Error); err != nil {
		return nil, internal("store: task %s: decode error: %v", t.ID, err)
	}
	if err := decodeJSON(marks, &t.Marks); err != nil {
		return nil, internal("store: task %s: decode marks: %v", t.ID, err)
	}
	if err := decodeJSON(early, &t.Early); err != nil {
		return nil, internal("store: task %s: decode early callbacks: %v", t.ID, err)
	}
	return &t, nil
}

// taskArgs returns t's values for taskColumns.
func taskArgs(t *store.Task) ([]any, error) {
	errJSON, err := encodeJSON(t.Error, t.Error == nil)
	if err != nil {
		return nil, err
	}
	marks, err := encodeJSON(t.Marks, len(t.Marks) == 0)
	if err != nil {
		return nil, err
	}
	early, err := encodeJSON(t.Early, len(t.Early) == 0)
	if err != nil {
		return nil, err
	}
	var token any
	if t.Token != "" {
		token = t.Token
	}
	return []any{
		t.ID, t.Process, t.Version, t.Ref, t.InputHash, t.Node, string(t.Status), t.Data, errJSON, token,
		timeArg(t.TimerAt), t.Timer, int64(t.Attempt), int64(t.Steps), int64(t.Rev), int64(t.HistoryLen), marks, early,
		timeArg(t.Created), timeArg(t.Updated), timeArg(t.Entered), timeArg(t.Finished),
	}, nil
}

// encodeJSON encodes v for a jsonb column, or returns nil (NULL) when none.
func encodeJSON(v any, none bool) ([]byte, error) {
	if none {
		return nil, nil
	}
	return json.Marshal(v)
}

// decodeJSON decodes a jsonb column into v, leaving v alone for NULL.
func decodeJSON(b []byte, v any) error {
	if b == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

// Error codes of PostgreSQL this package tells apart.
const (
	codeUniqueViolation   = "23505"
	codeCheckViolation    = "23514"
	codeSerialization     = "40001"
	codeDeadlock          = "40P01"
	codeProgramLimit      = "54000"
	classDataException    = "22"
	counterConstraintName = "counts_never_negative"
)

// transient reports whether a transaction that failed with err may succeed
// when run again: it deadlocked, or lost a race on a unique index (the run
// again sees the winner and reports it properly).
func transient(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == codeDeadlock || pe.Code == codeSerialization || pe.Code == codeUniqueViolation
}

// refused maps errors PostgreSQL raises for the data it was given to
// conveyor errors, and returns nil for any other error.
func refused(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil
	}
	switch {
	case strings.HasPrefix(pe.Code, classDataException), pe.Code == codeProgramLimit:
		return &conveyor.Error{Code: conveyor.EInvalid, Message: "store: PostgreSQL refused a value: " + pe.Message, Err: err}
	case pe.Code == codeCheckViolation && pe.ConstraintName == counterConstraintName:
		return &conveyor.Error{Code: conveyor.EInternal, Message: "store: a counter would go below zero: the counts table is corrupt (run Check)", Err: err}
	case pe.Code == codeUniqueViolation:
		return &conveyor.Error{Code: conveyor.EInternal, Message: "store: commit kept losing a race on " + pe.ConstraintName, Err: err}
	}
	return nil
}

// invalid is the error of a change or argument that breaks the contract.
func invalid(format string, args ...any) error {
	return conveyor.Errorf(conveyor.EInvalid, format, args...)
}

// internal is the error of a store whose data disagrees with itself.
func internal(format string, args ...any) error {
	return conveyor.Errorf(conveyor.EInternal, format, args...)
}

// compareIDs orders ids by their bytes, as PostgreSQL orders uuids.
func compareIDs(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

// sortIDs sorts ids in PostgreSQL's order.
func sortIDs(ids []uuid.UUID) { slices.SortFunc(ids, compareIDs) }

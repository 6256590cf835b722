package engine

import (
	"context"
	"errors"
	"strings"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/internal/exactjson"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// MaxRefLength is the longest ref a task may have.
const MaxRefLength = 255

// SubmitRequest asks for a new task.
type SubmitRequest struct {
	// Process names the process; the task runs on its current version.
	Process string
	// Ref is the caller's reference, unique per process while the task is
	// kept; a retried submit with the same ref and data returns the same task.
	Ref string
	// Data is the task's input; numbers must be json.Number.
	Data map[string]any
	// Actor is who submits, for the history.
	Actor string
}

// Submit validates the input, creates the task and runs it up to its first
// wait or outbound call, all in one commit. It returns the task and whether
// it was created (false: an earlier submit with the same ref and data).
func (e *Engine) Submit(ctx context.Context, req SubmitRequest) (*TaskView, bool, error) {
	release, err := e.admitOne()
	if err != nil {
		return nil, false, err
	}
	defer release()
	def, ok := e.Definition(req.Process)
	if !ok {
		return nil, false, conveyor.Errorf(conveyor.ENotFound, "process %q does not exist", req.Process)
	}
	if len(req.Ref) > MaxRefLength || strings.ContainsAny(req.Ref, "\x00/") {
		return nil, false, conveyor.Errorf(conveyor.EInvalid, "ref must be at most %d characters, without / or NUL", MaxRefLength)
	}
	if req.Data == nil {
		req.Data = map[string]any{}
	}
	if err := def.Input.Validate(req.Data); err != nil {
		var ie processes.InputError
		if errors.As(err, &ie) {
			return nil, false, &conveyor.Error{Code: conveyor.EInvalid, Message: err.Error(), Err: ie}
		}
		return nil, false, err
	}
	canon, err := exactjson.Marshal(req.Data)
	if err != nil {
		return nil, false, conveyor.Errorf(conveyor.EInvalid, "data cannot be encoded: %v", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, false, err
	}
	now := e.clock.Now()
	s := &state{def: def, data: req.Data, now: now, t: &store.Task{
		ID: id, Process: def.Name, Version: def.Version, Ref: req.Ref, Token: newToken(id),
		InputHash: e.seal.digest(append([]byte(def.Name+"\x00"), canon...)), Created: now,
	}}
	e.seal.sealFields(id, def.Input, s.fields())
	s.record("", def.Start, "submit", actorOr(req.Actor, "api"), "", "")
	e.enter(s, def.Start, nil)
	e.advance(s)
	if err := e.commit(ctx, s); err != nil {
		return e.submitConflict(ctx, s, err)
	}
	e.after(s)
	return e.view(s.t, s.fields(), s.def, nil), true, nil
}

// submitConflict turns a taken ref into the earlier task (same input) or a
// conflict (different input).
func (e *Engine) submitConflict(ctx context.Context, s *state, err error) (*TaskView, bool, error) {
	var taken *store.RefTakenError
	if !errors.As(err, &taken) {
		return nil, false, err
	}
	if taken.Existing.InputHash != s.t.InputHash {
		return nil, false, conveyor.Errorf(conveyor.EConflict, "ref %q is already used by task %s with different data", s.t.Ref, taken.Existing.ID)
	}
	v, err := e.viewOf(ctx, taken.Existing, false)
	return v, false, err
}

func actorOr(a, def string) string {
	if a == "" {
		return def
	}
	return a
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/store"
)

// Action says who performs an operator action and why; both are recorded in
// the task's history (and so in the audit log).
type Action struct {
	Actor  string
	Reason string
	// job is the bulk job performing the action, recorded as the history
	// entry's JobID; empty for a single action.
	job string
}

// Retry re-runs the node that failed, for an escalated task.
func (e *Engine) Retry(ctx context.Context, id uuid.UUID, a Action) (*TaskView, error) {
	return e.operate(ctx, id, func(s *state) error {
		if err := needEscalated(s.t, "retried"); err != nil {
			return err
		}
		return e.reenter(s, s.t.Error.Node, "operator_retry", a, "")
	})
}

// Move sends a task that has not finished to another node of its process.
func (e *Engine) Move(ctx context.Context, id uuid.UUID, to string, a Action) (*TaskView, error) {
	return e.operate(ctx, id, func(s *state) error {
		if s.t.Status.Final() {
			return conveyor.Errorf(conveyor.EConflict, "task %s is %s; finished tasks cannot be moved", s.t.ID, s.t.Status)
		}
		if s.def.Node(to) == nil {
			return conveyor.Errorf(conveyor.EInvalid, "process %s has no node %q", s.def.Name, to)
		}
		return e.reenter(s, to, "operator_move", a, "")
	})
}

// Cancel ends a task that has not finished, where it stands.
func (e *Engine) Cancel(ctx context.Context, id uuid.UUID, a Action) (*TaskView, error) {
	return e.operate(ctx, id, func(s *state) error {
		if s.t.Status.Final() {
			return conveyor.Errorf(conveyor.EConflict, "task %s is already %s", s.t.ID, s.t.Status)
		}
		s.recordAction(s.t.Node, s.t.Node, "operator_cancel", a, "status "+string(s.t.Status)+" -> canceled")
		s.t.Status, s.t.Finished = store.StatusCanceled, s.now
		s.t.TimerAt, s.t.Timer = time.Time{}, ""
		e.eraseAllSecrets(s)
		return nil
	})
}

// Edit changes an escalated task's data, then retries it. Fields set to null
// are removed. Declared input fields must still satisfy the schema; sensitive
// ones are sealed. The history names the changed fields, never their values.
func (e *Engine) Edit(ctx context.Context, id uuid.UUID, patch map[string]any, a Action) (*TaskView, error) {
	return e.operate(ctx, id, func(s *state) error {
		if err := needEscalated(s.t, "edited"); err != nil {
			return err
		}
		if len(patch) == 0 {
			return conveyor.Errorf(conveyor.EInvalid, "edit needs data: the fields to change")
		}
		set := map[string]any{}
		for k, v := range patch {
			if v != nil {
				set[k] = v
			}
		}
		if err := s.def.Input.ValidateKnown(set); err != nil {
			return &conveyor.Error{Code: conveyor.EInvalid, Message: err.Error(), Err: err}
		}
		keys := make([]string, 0, len(patch))
		for k, v := range patch {
			keys = append(keys, k)
			if v == nil {
				delete(s.fields(), k)
			} else {
				s.fields()[k] = v
			}
		}
		slices.Sort(keys)
		e.seal.sealFields(s.t.ID, s.def.Input, s.fields())
		s.dropEnv() // the edits and the sealing above bypass touch
		return e.reenter(s, s.t.Error.Node, "operator_edit", a, "changed "+strings.Join(keys, ", "))
	})
}

func needEscalated(t *store.Task, verb string) error {
	if t.Status != store.StatusEscalated || t.Error == nil || t.Error.Node == "" {
		return conveyor.Errorf(conveyor.EConflict, "task %s is %s in node %s; only escalated tasks can be %s", t.ID, t.Status, t.Node, verb)
	}
	return nil
}

// reenter moves the task into a node as a fresh visit, clearing the error.
func (e *Engine) reenter(s *state, to, event string, a Action, detail string) error {
	if s.def.Node(to) == nil {
		return conveyor.Errorf(conveyor.EConflict, "node %q no longer exists in %s@%s", to, s.def.Name, s.def.Version)
	}
	s.recordAction(s.t.Node, to, event, a, detail)
	s.t.Error, s.t.Steps = nil, 0
	s.clearErrFields()
	e.enter(s, to, nil)
	e.advance(s)
	return nil
}

// recordAction appends the history entry of an operator action.
func (s *state) recordAction(from, to, event string, a Action, detail string) {
	s.record(from, to, event, actorOr(a.Actor, "operator"), a.Reason, detail)
	s.hist[len(s.hist)-1].JobID = a.job
}

// operate applies an operator action under the task's lock and commits it.
func (e *Engine) operate(ctx context.Context, id uuid.UUID, do func(s *state) error) (*TaskView, error) {
	unlock := e.lock(id)
	s, err := e.load(ctx, id)
	if err != nil {
		unlock()
		return nil, err
	}
	if err := do(s); err != nil {
		unlock()
		return nil, err
	}
	err = e.commit(ctx, s)
	unlock()
	if errors.Is(err, store.ErrConflict) {
		return nil, conveyor.Errorf(conveyor.EConflict, "task %s moved while the action was applied; look again and retry", id)
	}
	if err != nil {
		return nil, fmt.Errorf("commit operator action: %w", err)
	}
	e.after(s)
	return e.view(s.t, s.fields(), s.def, nil), nil
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// move takes the outcome of the task's current node: the FSM checks that the
// outcome exists and names the target, then the task enters it. failure is
// set when the outcome is an error.
func (e *Engine) move(s *state, outcome, actor, detail string, failure *nodes.Failure) {
	from := s.t.Node
	to, err := s.def.Fire(from, outcome)
	if err != nil {
		// The flow compiled, so this is an engine bug or a stored version
		// mismatch: park the task where operators can see it.
		e.escalateHere(s, "engine_error", err.Error())
		return
	}
	s.record(from, to, outcome, actor, "", detail)
	e.enter(s, to, failure)
}

// enter puts the task into node name and sets what that node's class needs:
// runnable, waiting with a timer, escalated, or finished.
func (e *Engine) enter(s *state, name string, failure *nodes.Failure) {
	n := s.def.Node(name)
	prev := s.t.Node
	s.t.Node, s.t.Entered, s.t.Attempt = name, s.now, 0
	s.t.TimerAt, s.t.Timer = time.Time{}, ""
	if failure != nil {
		s.setErrFields(failure.Code, failure.Description, prev)
	} else if c := n.Spec.Class(); c == processes.Wait || c == processes.Final && !isErrorFinal(n) {
		// err_* describe the failure that brought the task here; once it
		// waits again or succeeds without one, they are history.
		s.clearErrFields()
	}
	switch n.Spec.Class() {
	case processes.Instant, processes.Call:
		s.t.Status = store.StatusActive
	case processes.Final:
		s.t.Steps = 0
		s.t.Status = store.StatusSucceeded
		if f, ok := n.Spec.(*nodes.Final); ok && f.Result() == nodes.ResultError {
			s.t.Status = store.StatusFailed
		}
		s.t.Finished = s.now
		s.t.Error = nil
		e.eraseAllSecrets(s)
	case processes.Wait:
		s.t.Steps = 0
		s.t.Status = store.StatusWaiting
		e.arm(s, n)
	case processes.Park:
		s.t.Steps = 0
		s.t.Status = store.StatusEscalated
		f := failure
		if f == nil {
			in, err := e.input(s, n)
			d := nodes.Failure{Code: "escalated", Description: "routed to escalation from node " + prev}
			if err == nil {
				if esc, ok := n.Spec.(*nodes.Escalation); ok {
					d = esc.Describe(in, prev)
				}
			}
			f = &d
			s.setErrFields(f.Code, f.Description, prev)
		}
		s.t.Error = &store.TaskError{Code: f.Code, Description: f.Description, Node: prev}
		e.arm(s, n)
	}
}

// arm sets a waiting node's timer.
func (e *Engine) arm(s *state, n *processes.Node) {
	w, ok := n.Spec.(nodes.Waiter)
	if !ok {
		return
	}
	in, err := e.input(s, n)
	var at time.Time
	if err == nil {
		at, err = w.Deadline(in)
	}
	if err != nil {
		e.escalateHere(s, "timer_error", fmt.Sprintf("node %s: %v", n.Name, err))
		return
	}
	if !at.IsZero() {
		s.t.TimerAt, s.t.Timer = at, timerTimeout
	}
}

// escalateHere parks the task in the first escalation node of its process (or
// leaves it escalated where it is when there is none), with the failure.
// It is the engine's own error path: loop guard, run-time expression errors,
// size cap.
func (e *Engine) escalateHere(s *state, code, desc string) {
	failed := s.t.Node
	for _, n := range s.def.Nodes {
		if n.Kind == "escalation" {
			s.record(failed, n.Name, "error", actorEngine, "", code+": "+desc)
			e.enter(s, n.Name, &nodes.Failure{Code: code, Description: desc})
			s.t.Error.Node = failed
			s.setField(processes.FieldFailedNode, failed)
			return
		}
	}
	s.record(failed, failed, "error", actorEngine, "", code+": "+desc)
	s.t.Status = store.StatusEscalated
	s.t.TimerAt, s.t.Timer = time.Time{}, ""
	s.t.Error = &store.TaskError{Code: code, Description: desc, Node: failed}
	s.setErrFields(code, desc, failed)
}

// advance runs the task through instant nodes until it waits, finishes, or
// owes an outbound call (then s.call is set).
func (e *Engine) advance(s *state) {
	for {
		n := s.def.Node(s.t.Node)
		if s.t.Status == store.StatusWaiting && n.Kind == "callback" && len(s.t.Early) > 0 {
			e.consumeEarly(s, n)
			continue
		}
		if s.t.Status != store.StatusActive {
			if s.t.Status != store.StatusWaiting {
				s.t.Early = nil // the callbacks kept no longer have a node to go to
			}
			return
		}
		switch n.Spec.Class() {
		case processes.Call:
			if s.t.Attempt == 0 {
				s.t.Attempt = 1
			}
			if s.t.Timer != timerRetry {
				s.call = true
			}
			return
		case processes.Instant:
			if s.t.Steps >= e.cfg.LoopLimit {
				e.escalateHere(s, "loop_guard", fmt.Sprintf("passed %d nodes without waiting", s.t.Steps))
				return
			}
			s.t.Steps++
			e.step(s, n)
		default:
			return
		}
	}
}

// step runs one instant node.
func (e *Engine) step(s *state, n *processes.Node) {
	in, err := e.input(s, n)
	if err != nil {
		e.escalateHere(s, "data_error", err.Error())
		return
	}
	res, err := n.Spec.(nodes.Instant).Run(in)
	if err != nil {
		e.escalateHere(s, "expression_error", fmt.Sprintf("node %s: %v", n.Name, err))
		return
	}
	s.applyWrites(res.Writes)
	e.move(s, res.Outcome, actorEngine, "", res.Failure)
}

// applyWrites writes a node's results into the task's data. A nested write
// (a.b) changes a map of the data in place, which may also be held under
// another field or by the kept expression environment (see exprEnv), so it
// drops that environment; a top-level write only replaces its own field.
func (s *state) applyWrites(ws []nodes.Write) {
	for _, w := range ws {
		nodes.SetPath(s.fields(), w.Path, w.Value)
		if len(w.Path) > 1 {
			s.dropEnv()
		} else {
			s.touch(w.Path[0])
		}
	}
}

// runTask gives a runnable task its next step: run instant nodes, or start
// the outbound call it owes.
func (e *Engine) runTask(id uuid.UUID) {
	ctx := context.Background()
	unlock := e.lock(id)
	s, err := e.load(ctx, id)
	if err != nil {
		unlock()
		e.log.Error("load runnable task", "task_id", id, "err", err)
		return
	}
	if s.t.Status != store.StatusActive || (s.t.Timer == timerRetry && s.t.TimerAt.After(s.now)) {
		unlock()
		return
	}
	n := s.def.Node(s.t.Node)
	if n.Spec.Class() == processes.Call && s.t.Timer == timerRetry {
		unlock() // a retry whose timer is due: the timer service fires it
		return
	}
	if n.Spec.Class() == processes.Call && s.t.Attempt > 0 {
		if api, ok := n.Spec.(*nodes.API); !ok || !api.OnUnknown() {
			unlock()
			e.startCall(id) // a call decided before a restart: send it again, same key
			return
		}
		// The flow asked not to resend a call whose outcome is unknown.
		e.move(s, nodes.OutUnknown, actorEngine, "the engine restarted while this call was in flight; its outcome is unknown",
			&nodes.Failure{Code: "outcome_unknown", Description: "the engine restarted while the call was in flight"})
	}
	e.advance(s)
	err = e.commitOrLog(ctx, s)
	unlock()
	if err == nil {
		e.after(s)
	}
}

// commitOrLog commits, turning an oversize task into an escalation; a
// revision conflict means someone else moved the task first, which is fine.
func (e *Engine) commitOrLog(ctx context.Context, s *state) error {
	err := e.commit(ctx, s)
	e.logCommit(s, err)
	return err
}

// logCommit logs a failed commit of s: a conflict as a dropped step, any
// other error as an error.
func (e *Engine) logCommit(s *state, err error) {
	switch {
	case err == nil:
	case errors.Is(err, store.ErrConflict):
		e.log.Info("task moved concurrently; step dropped", "task_id", s.t.ID)
	default:
		e.log.Error("commit task", "task_id", s.t.ID, "node", s.t.Node, "err", err)
	}
}

func isErrorFinal(n *processes.Node) bool {
	f, ok := n.Spec.(*nodes.Final)
	return ok && f.Result() == nodes.ResultError
}

// setErrFields sets err_code, err_description and failed_node.
func (s *state) setErrFields(code, desc, failedNode string) {
	s.setField(processes.FieldErrCode, code)
	s.setField(processes.FieldErrDescription, desc)
	s.setField(processes.FieldFailedNode, failedNode)
}

func (s *state) clearErrFields() {
	s.deleteField(processes.FieldErrCode)
	s.deleteField(processes.FieldErrDescription)
	s.deleteField(processes.FieldFailedNode)
}

package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// Callback answers. The values are an API contract.
const (
	// CallbackAccepted: the task was waiting for it and moved on.
	CallbackAccepted = "accepted"
	// CallbackDuplicate: the same callback was accepted before; nothing moved.
	CallbackDuplicate = "duplicate"
	// CallbackNotWaiting: the task exists but is not waiting in a callback
	// node (too late or too early); the callback is recorded in its history.
	CallbackNotWaiting = "not_waiting"
	// CallbackUnknown: no task matches.
	CallbackUnknown = "unknown"
)

// maxMarks bounds the accepted-callback digests kept per task.
const maxMarks = 16

// CallbackRequest is a callback as it arrived. Exactly one way of finding
// the task is set: Token (the task's callback URL), Process+Ref (a service
// driving its own task), or Process+Node (a node's shared URL, the task found
// by the node's task_id_path in the body).
type CallbackRequest struct {
	Token       string
	Process     string
	Ref         string
	Node        string
	ContentType string
	Body        []byte
	Actor       string
}

// CallbackResult says what a callback did.
type CallbackResult struct {
	// Result is one of the Callback* answers.
	Result string `json:"result"`
	// TaskID, Node and Status describe the task after the callback (zero for
	// unknown).
	TaskID uuid.UUID    `json:"task_id,omitzero"`
	Node   string       `json:"node,omitempty"`
	Status store.Status `json:"status,omitempty"`
}

// Callback delivers a callback. A body that fails the waiting node's codec
// (a bad signature), schema or guard is refused with an error
// (unauthorized, invalid) and changes nothing.
func (e *Engine) Callback(ctx context.Context, req CallbackRequest) (CallbackResult, error) {
	release, err := e.admitOne()
	if err != nil {
		return CallbackResult{}, err
	}
	defer release()
	res, err := e.callback(ctx, req)
	for try := 1; errors.Is(err, store.ErrConflict) && try < replyTries; try++ {
		// Another engine of a cluster moved the task meanwhile (the reply
		// of its call): decide again on what it committed.
		res, err = e.callback(ctx, req)
	}
	switch {
	case err != nil:
		e.m.Callback("refused")
	default:
		e.m.Callback(res.Result)
	}
	return res, err
}

func (e *Engine) callback(ctx context.Context, req CallbackRequest) (CallbackResult, error) {
	t, err := e.findCallbackTask(ctx, req)
	if errors.Is(err, store.ErrNotFound) {
		return CallbackResult{Result: CallbackUnknown}, nil
	}
	if err != nil {
		return CallbackResult{}, err
	}
	unlock := e.lock(t.ID)
	defer unlock()
	s, err := e.load(ctx, t.ID)
	if err != nil {
		return CallbackResult{}, err
	}
	n := s.def.Node(s.t.Node)
	cb, waiting := n.Spec.(*nodes.Callback)
	waiting = waiting && s.t.Status == store.StatusWaiting
	if !waiting {
		return e.lateCallback(ctx, s, req)
	}
	in, err := e.input(s, n)
	if err != nil {
		return CallbackResult{}, err
	}
	body, err := cb.Decode(in, req.ContentType, req.Body)
	if err != nil {
		return CallbackResult{}, err
	}
	if p := cb.TaskIDPath(); p != "" {
		if v, ok := body[p]; ok && processes.Stringify(v) != s.t.ID.String() {
			return CallbackResult{}, conveyor.Errorf(conveyor.EInvalid, "callback refused: %s does not name this task", p)
		}
	}
	// A provider's callback seen before is a duplicate whenever it comes. A
	// service's command by ref accepted during an earlier visit of this node
	// is a new command now (a merchant repeating a capture after the first
	// failed and the task came back to wait).
	hash := markHash(n.Name, req.Body)
	if req.Token != "" || req.Node != "" {
		if hasMark(s.t, hash) {
			return result(CallbackDuplicate, s.t), nil
		}
	}
	r, err := cb.Accept(in, body)
	if err != nil {
		return CallbackResult{}, err
	}
	s.applyWrites(r.Writes)
	addMark(s.t, store.Mark{Hash: hash, Node: n.Name, At: s.now})
	e.move(s, r.Outcome, actorOr(req.Actor, actorCallback), "", nil)
	e.advance(s)
	if err := e.commit(ctx, s); err != nil {
		return CallbackResult{}, err
	}
	e.after(s)
	return result(CallbackAccepted, s.t), nil
}

// maxEarly bounds the callbacks kept for a task that is not waiting yet.
const maxEarly = 4

// lateCallback answers a callback for a task that is not waiting for one: a
// repeat of an accepted callback is a duplicate; one that arrives while the
// task is still making the call before its callback node is kept and applied
// when it gets there (accepted); anything else that passes the process's
// callback codec is recorded in the history and answered not_waiting.
func (e *Engine) lateCallback(ctx context.Context, s *state, req CallbackRequest) (CallbackResult, error) {
	if req.Token == "" && req.Node == "" {
		// A service's command by ref (authenticated by the API token): no
		// provider envelope to check and nothing to keep for later.
		if acceptedBefore(s.t, req.Body) {
			return result(CallbackDuplicate, s.t), nil
		}
		return e.recordLate(ctx, s, req)
	}
	cbNode := e.callbackNodeFor(s)
	if cbNode != nil && hasMark(s.t, markHash(cbNode.Name, req.Body)) {
		return result(CallbackDuplicate, s.t), nil
	}
	if cbNode != nil {
		in, err := e.input(s, cbNode)
		if err != nil {
			return CallbackResult{}, err
		}
		if _, err := cbNode.Spec.(*nodes.Callback).Decode(in, req.ContentType, req.Body); err != nil {
			return CallbackResult{}, err
		}
	}
	if cbNode != nil && s.t.Status == store.StatusActive && s.def.Node(s.t.Node).Spec.Class() == processes.Call && len(s.t.Early) < maxEarly {
		s.t.Early = append(s.t.Early, store.Early{ContentType: req.ContentType, Body: req.Body, Actor: req.Actor, At: s.now})
		addMark(s.t, store.Mark{Hash: markHash(cbNode.Name, req.Body), Node: cbNode.Name, At: s.now})
		s.record(s.t.Node, s.t.Node, "early_callback", actorOr(req.Actor, actorCallback), "",
			"callback arrived before the call's reply; kept for node "+cbNode.Name)
		if err := e.commit(ctx, s); err != nil {
			return CallbackResult{}, err
		}
		return result(CallbackAccepted, s.t), nil
	}
	return e.recordLate(ctx, s, req)
}

// recordLate records a callback the task was not waiting for, once: a
// sender retrying the same late callback is answered the same way.
func (e *Engine) recordLate(ctx context.Context, s *state, req CallbackRequest) (CallbackResult, error) {
	late := "late:" + markHash(s.t.Node, req.Body)
	if hasMark(s.t, late) {
		return result(CallbackNotWaiting, s.t), nil
	}
	addMark(s.t, store.Mark{Hash: late, Node: s.t.Node, At: s.now})
	s.record(s.t.Node, s.t.Node, "late_callback", actorOr(req.Actor, actorCallback), "",
		fmt.Sprintf("callback arrived while the task is %s in node %s", s.t.Status, s.t.Node))
	if err := e.commit(ctx, s); err != nil {
		return CallbackResult{}, err
	}
	return result(CallbackNotWaiting, s.t), nil
}

// callbackNodeFor picks the callback node whose codec judges a callback the
// task is not waiting for: the one its current node leads to, the one that
// last accepted a callback, or the first in the flow.
func (e *Engine) callbackNodeFor(s *state) *processes.Node {
	if cur := s.def.Node(s.t.Node); cur != nil {
		for _, ed := range cur.Spec.Edges() {
			if n := s.def.Node(ed.To); n != nil && n.Kind == "callback" {
				return n
			}
		}
	}
	for i := len(s.t.Marks) - 1; i >= 0; i-- {
		if n := s.def.Node(s.t.Marks[i].Node); n != nil && n.Kind == "callback" {
			return n
		}
	}
	if s.t.Error != nil {
		if n := s.def.Node(s.t.Error.Node); n != nil && n.Kind == "callback" {
			return n
		}
	}
	for _, n := range s.def.Nodes {
		if n.Kind == "callback" {
			return n
		}
	}
	return nil
}

// findCallbackTask finds the task a callback is for.
func (e *Engine) findCallbackTask(ctx context.Context, req CallbackRequest) (*store.Task, error) {
	switch {
	case req.Token != "":
		return e.st.TaskByToken(ctx, req.Token)
	case req.Process != "" && req.Ref != "":
		return e.st.TaskByRef(ctx, req.Process, req.Ref)
	case req.Process != "" && req.Node != "":
		return e.taskByBodyField(ctx, req)
	}
	return nil, conveyor.Errorf(conveyor.EInvalid, "a callback needs a token, a process and ref, or a process and node")
}

// taskByBodyField decodes the body with the node's codec and reads the task
// id at its task_id_path (Corezoid's "path to task_id").
func (e *Engine) taskByBodyField(ctx context.Context, req CallbackRequest) (*store.Task, error) {
	def, ok := e.Definition(req.Process)
	if !ok {
		return nil, store.ErrNotFound
	}
	n := def.Node(req.Node)
	if n == nil {
		return nil, store.ErrNotFound
	}
	cb, ok := n.Spec.(*nodes.Callback)
	if !ok || cb.TaskIDPath() == "" {
		return nil, conveyor.Errorf(conveyor.EInvalid, "node %s of %s does not take callbacks by task id", req.Node, req.Process)
	}
	body, err := cb.Decode(&nodes.Input{Secrets: e.cfg.Secrets}, req.ContentType, req.Body)
	if err != nil {
		return nil, err
	}
	id, err := uuid.Parse(processes.Stringify(body[cb.TaskIDPath()]))
	if err != nil {
		return nil, conveyor.Errorf(conveyor.EInvalid, "callback body has no task id at %s", cb.TaskIDPath())
	}
	t, err := e.st.Task(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Process != req.Process {
		return nil, store.ErrNotFound
	}
	return t, nil
}

func result(r string, t *store.Task) CallbackResult {
	return CallbackResult{Result: r, TaskID: t.ID, Node: t.Node, Status: t.Status}
}

func markHash(node string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(node + "\x00"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// acceptedBefore reports whether body was accepted by any callback node of
// the task before (among the marks kept).
func acceptedBefore(t *store.Task, body []byte) bool {
	for _, m := range t.Marks {
		if !strings.HasPrefix(m.Hash, "late:") && m.Hash == markHash(m.Node, body) {
			return true
		}
	}
	return false
}

func hasMark(t *store.Task, hash string) bool {
	for _, m := range t.Marks {
		if m.Hash == hash {
			return true
		}
	}
	return false
}

func addMark(t *store.Task, m store.Mark) {
	t.Marks = append(t.Marks, m)
	if len(t.Marks) > maxMarks {
		t.Marks = t.Marks[len(t.Marks)-maxMarks:]
	}
}

// consumeEarly applies the first kept callback to a task that has just
// entered a callback node. A kept callback the node refuses is dropped and
// recorded.
func (e *Engine) consumeEarly(s *state, n *processes.Node) {
	early := s.t.Early[0]
	s.t.Early = s.t.Early[1:]
	cb := n.Spec.(*nodes.Callback)
	in, err := e.input(s, n)
	var r nodes.Result
	if err == nil {
		var body map[string]any
		if body, err = cb.Decode(in, early.ContentType, early.Body); err == nil {
			r, err = cb.Accept(in, body)
		}
	}
	if err != nil {
		s.record(n.Name, n.Name, "early_callback_refused", actorOr(early.Actor, actorCallback), "", conveyor.ErrorMessage(err))
		return
	}
	s.applyWrites(r.Writes)
	e.move(s, r.Outcome, actorOr(early.Actor, actorCallback), "applied a callback that arrived early", nil)
}

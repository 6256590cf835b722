package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// Timer kinds stored in store.Task.Timer.
const (
	timerTimeout = "timeout" // a waiting or escalated task's time limit
	timerRetry   = "retry"   // the next attempt of an outbound call
)

// Actors recorded in history.
const (
	actorEngine   = "engine"
	actorTimer    = "timer"
	actorCallback = "callback"
	actorProvider = "provider"
)

// state is a task being moved: its record, its data decoded, its process
// version, and the history this event adds.
type state struct {
	t *store.Task
	// loaded is the task as it was read, nil for a new one.
	loaded *store.Task
	rev    uint64
	def    *processes.Definition
	data   map[string]any
	hist   []store.HistoryEntry
	now    time.Time
	// call is set when the task must make an outbound call after the commit.
	call bool
}

// load reads a task and prepares it for an event.
func (e *Engine) load(ctx context.Context, id uuid.UUID) (*state, error) {
	t, err := e.st.Task(ctx, id)
	if err != nil {
		return nil, notFound(err, "task %s not found", id)
	}
	return e.stateOf(ctx, t)
}

func (e *Engine) stateOf(ctx context.Context, t *store.Task) (*state, error) {
	def, err := e.definition(ctx, t.Process, t.Version)
	if err != nil {
		return nil, err
	}
	data, err := decodeData(t.Data)
	if err != nil {
		return nil, fmt.Errorf("task %s: stored data: %w", t.ID, err)
	}
	return &state{t: t, loaded: t.Clone(), rev: t.Rev, def: def, data: data, now: e.clock.Now()}, nil
}

func decodeData(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// record appends a history entry.
func (s *state) record(from, to, event, actor, reason, detail string) {
	s.hist = append(s.hist, store.HistoryEntry{
		Seq: s.t.HistoryLen + uint32(len(s.hist)), At: s.now, From: from, To: to,
		Event: event, Actor: actor, Reason: reason, Detail: detail,
	})
}

// commit writes the state: data (checked against the size cap), record,
// history. The store derives every index from it. An existing task whose new
// data would pass the size cap is escalated with its previous data instead,
// so it stays where an operator can act on it.
func (e *Engine) commit(ctx context.Context, s *state) error {
	data, err := json.Marshal(s.data)
	if err != nil {
		return fmt.Errorf("encode task data: %w", err)
	}
	if len(data) > e.cfg.MaxTaskSize {
		tooBig := conveyor.Errorf(conveyor.ETooLarge, "task data would be %d bytes, over the %d byte limit", len(data), e.cfg.MaxTaskSize)
		if s.loaded == nil {
			return tooBig
		}
		if data, err = e.rollbackTooLarge(s, tooBig.Message); err != nil {
			return err
		}
	}
	s.t.Data = data
	s.t.Updated = s.now
	s.t.HistoryLen += uint32(len(s.hist))
	start := time.Now()
	err = e.st.Commit(ctx, store.Change{Task: s.t, Rev: s.rev, History: s.hist})
	e.m.Commit(time.Since(start), err)
	if err != nil {
		s.t.HistoryLen -= uint32(len(s.hist))
		return storeError(err)
	}
	for _, h := range s.hist {
		if h.From != h.To || h.Event == "submit" {
			e.m.Transition(s.t.Process, h.From, h.To, h.Event)
		}
	}
	e.noteAlarms(s.t.Process, s.hist)
	s.rev = s.t.Rev
	s.hist = nil
	s.loaded = s.t.Clone()
	if e.cfg.OnCommit != nil {
		e.cfg.OnCommit(s.t.Clone())
	}
	return nil
}

// rollbackTooLarge drops what this event did and escalates the task as it
// was loaded.
func (e *Engine) rollbackTooLarge(s *state, msg string) ([]byte, error) {
	s.t = s.loaded.Clone()
	data, err := decodeData(s.t.Data)
	if err != nil {
		return nil, err
	}
	s.data, s.hist, s.call = data, nil, false
	e.escalateHere(s, "task_too_large", msg)
	return json.Marshal(s.data)
}

// after does what a commit decided: start the call it owes, wake the timer
// service for its timer.
func (e *Engine) after(s *state) {
	if !s.t.TimerAt.IsZero() {
		e.kick()
	}
	if s.call {
		s.call = false
		e.startCall(s.t.ID)
	}
}

// env builds the expression environment of a node: the task's data (with the
// node's sensitive fields opened), task and env.
func (e *Engine) env(s *state, n *processes.Node) (processes.Env, error) {
	env := make(processes.Env, len(s.data)+2)
	for k, v := range s.data {
		env[k] = processes.ExprValue(v)
	}
	if n != nil && len(n.Sensitive) > 0 {
		if err := e.seal.openFields(s.t.ID, n.Sensitive, map[string]any(env)); err != nil {
			return nil, err
		}
	}
	env[processes.RootTask] = map[string]any{
		"id": s.t.ID.String(), "ref": s.t.Ref, "process": s.t.Process, "version": s.t.Version,
		"node": s.t.Node, "attempt": s.t.Attempt, "callback_url": e.callbackURL(s.t.Token),
		"idempotency_key": idempotencyKey(s.t), "created": s.t.Created.UTC().Format(time.RFC3339),
		// now is the engine's clock (not the wall clock expr's now() reads), so
		// deadlines computed in flows follow the clock tests control.
		"now": s.now.UTC(), "now_unix": s.now.Unix(),
	}
	envMap := make(map[string]any, len(e.cfg.Env))
	for k, v := range e.cfg.Env {
		envMap[k] = v
	}
	env[processes.RootEnv] = envMap
	return env, nil
}

func (e *Engine) input(s *state, n *processes.Node) (*nodes.Input, error) {
	env, err := e.env(s, n)
	if err != nil {
		return nil, err
	}
	return &nodes.Input{Env: env, Now: s.now, Secrets: e.cfg.Secrets}, nil
}

func (e *Engine) callbackURL(token string) string {
	return e.cfg.BaseURL + "/callbacks/" + token
}

// idempotencyKey identifies one logical outbound call: the task, the node and
// the visit (when the task entered the node). Retries of the call share it;
// a new visit (a loop, an operator retry) gets a new one.
func idempotencyKey(t *store.Task) string {
	sum := sha256.Sum256([]byte(t.ID.String() + "/" + t.Node + "/" + strconv.FormatInt(t.Entered.UnixNano(), 10)))
	return hex.EncodeToString(sum[:16])
}

// newToken returns a callback token of 160 random bits.
func newToken() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// jitter draws a uniform float in [0, 1) from crypto/rand.
func jitter() float64 {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<53))
	if err != nil {
		return 0.5
	}
	return float64(n.Int64()) / float64(1<<53)
}

// storeError keeps the store's answers about the task (conflict, ref taken,
// invalid change) and turns everything else — a full disk, a read-only file,
// a closed store — into "unavailable": the work was not accepted and may be
// retried later.
func storeError(err error) error {
	var taken *store.RefTakenError
	var ce *conveyor.Error
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists), errors.Is(err, store.ErrNotFound),
		errors.As(err, &taken), errors.As(err, &ce), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return &conveyor.Error{Code: conveyor.EUnavailable, Message: "the store cannot take writes now; nothing was changed", Err: err}
}

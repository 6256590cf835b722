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
	"github.com/conveyor-dev/conveyor/internal/exactjson"
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
	// loaded is the task as it was read or last committed; zero (no ID) for a
	// new one. It is a shallow copy, sharing Data, Marks, Early and Error with
	// s.t, which the engine only replaces (new data, a new *TaskError) or
	// appends to and reslices (never writing into the elements loaded sees);
	// rollbackTooLarge deep-copies it before use.
	loaded store.Task
	rev    uint64
	def    *processes.Definition
	// data is the task's data, decoded; nil until fields first needs it when
	// the state was made by lazyStateOf, which leaves raw (the stored bytes)
	// to decode. Read and change it through fields, setField and
	// deleteField only.
	data map[string]any
	raw  []byte
	// dataErr is raw's decoding failure, which fails the event's commit.
	dataErr error
	hist    []store.HistoryEntry
	now     time.Time
	// call is set when the task must make an outbound call after the commit.
	call bool
	// changed is set when data may differ from t.Data, the task's encoded
	// data as loaded or last committed: touch and dropEnv set it, and every
	// change to data goes through one of them. commit encodes data again
	// only then (a timeout, for one, leaves the data alone).
	changed bool
	// x is the expression environment kept across the nodes of this event.
	// Every change to data must go through touch (or dropEnv).
	x exprEnv
}

// exprEnv is what the expression environment of a node is built from, kept
// for the whole event: shaping every data field with processes.ExprValue
// and building the roots, for every node, was the biggest share of the
// engine's CPU per event.
//
// Nodes only read the environment (each gets a shallow copy, see env), but
// a value a node writes may be one of its maps: a whole hole such as
// "{{ reply }}" or "{{ env }}" renders to the very map kept here, which then
// sits in the task's data too. Such a map is only ever changed in place by a
// nested write (reply.code = ...), and a nested write drops everything kept
// here (applyWrites), so the next node shapes the data afresh, as it always
// did. Any other change replaces a top-level field and marks it stale.
type exprEnv struct {
	// data is s.data shaped by processes.ExprValue; nil until a node needs it.
	// Sensitive fields are never opened in it.
	data map[string]any
	// stale lists the fields of s.data changed since data was shaped.
	stale []string
	// env is the env root: a copy of Config.Env, which must stay the
	// engine's own.
	env map[string]any
	// tasks are the task roots built so far, one per node, attempt and visit
	// (the rest of a task root does not change during an event); a loop of
	// instant nodes meets the same few again and again.
	tasks []taskRoot
	// id, ref, process, version, callbackURL, created, now and nowUnix are the
	// task root's values that hold for the whole event, boxed once; id is
	// nil until first needed.
	id, ref, process, version, callbackURL, created, now, nowUnix any
}

// taskRoot is the task root of one node visit.
type taskRoot struct {
	node    string
	attempt int
	entered time.Time
	m       map[string]any
}

// touch records that data field k changed (was set, replaced, written
// inside, or deleted).
func (s *state) touch(k string) {
	s.changed = true
	if s.x.data != nil {
		s.x.stale = append(s.x.stale, k)
	}
}

// fields returns the task's data, decoding the stored bytes on first use:
// a timeout that moves a task to a node that reads nothing never decodes
// them (lazyStateOf). Stored bytes that do not decode leave empty data and
// fail the event's commit.
func (s *state) fields() map[string]any {
	if s.data == nil {
		d, err := decodeData(s.raw)
		if err != nil {
			d, s.dataErr = map[string]any{}, err
		}
		s.data = d
	}
	return s.data
}

// setField sets a top-level data field.
func (s *state) setField(k string, v any) {
	s.fields()[k] = v
	s.touch(k)
}

// deleteField removes a top-level data field; deleting one the data does
// not hold changes nothing (every move clears the error fields). Data not
// decoded yet whose bytes do not hold k as a string holds no such field,
// and stays undecoded.
func (s *state) deleteField(k string) {
	if s.data == nil && !mentions(s.raw, k) {
		return
	}
	d := s.fields()
	if _, ok := d[k]; !ok {
		return
	}
	delete(d, k)
	s.touch(k)
}

// mentions reports whether the JSON raw holds the string "k" anywhere (as
// a key or a value). The engine's stored data is always its own encoding,
// which writes a key of letters, digits and '_' as it is, never escaped: a
// top-level key k that raw does not mention is not there.
func mentions(raw []byte, k string) bool {
	for i := 0; ; {
		j := bytes.Index(raw[i:], []byte(k))
		if j < 0 {
			return false
		}
		at := i + j
		if at > 0 && raw[at-1] == '"' && at+len(k) < len(raw) && raw[at+len(k)] == '"' {
			return true
		}
		i = at + 1
	}
}

// dropEnv forgets the expression environment kept for the event: the next
// node builds it afresh from the data.
func (s *state) dropEnv() { s.x, s.changed = exprEnv{}, true }

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
	return &state{t: t, loaded: *t, rev: t.Rev, def: def, data: data, raw: t.Data, now: e.clock.Now()}, nil
}

// lazyStateOf is stateOf leaving the data to decode when first needed
// (state.fields): most timeouts move a task without reading its data, and
// decoding it was a tenth of a timer burst's CPU.
func (e *Engine) lazyStateOf(ctx context.Context, t *store.Task) (*state, error) {
	def, err := e.definition(ctx, t.Process, t.Version)
	if err != nil {
		return nil, err
	}
	return &state{t: t, loaded: *t, rev: t.Rev, def: def, raw: t.Data, now: e.clock.Now()}, nil
}

// reload reads a task again for an event that follows one of prev's: when
// nothing was committed since prev read it (same revision), prev's decoded
// data and shaped environment are taken over instead of decoding the stored
// data again. prev must not be used afterwards, and must not have changed
// its data.
func (e *Engine) reload(ctx context.Context, id uuid.UUID, prev *state) (*state, error) {
	t, err := e.st.Task(ctx, id)
	if err != nil {
		return nil, notFound(err, "task %s not found", id)
	}
	if prev == nil || prev.dataErr != nil || t.Rev != prev.rev || t.Process != prev.def.Name || t.Version != prev.def.Version {
		return e.stateOf(ctx, t)
	}
	s := &state{t: t, loaded: *t, rev: t.Rev, def: prev.def, data: prev.data, raw: t.Data, now: e.clock.Now()}
	// The task root holds the time of the event; the rest stands.
	s.x.data, s.x.stale, s.x.env = prev.x.data, prev.x.stale, prev.x.env
	return s, nil
}

// decodeData decodes a task's stored data with numbers kept exact
// (json.Number), by exactjson.Decode when it can and encoding/json, which
// gives the same values, otherwise.
func decodeData(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return map[string]any{}, nil
	}
	if v, ok := exactjson.Decode(b); ok {
		switch m := v.(type) {
		case map[string]any:
			return m, nil
		case nil:
			return map[string]any{}, nil
		}
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
	if s.hist == nil {
		s.hist = make([]store.HistoryEntry, 0, 4) // most events add a few
	}
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
	if s.dataErr != nil {
		return fmt.Errorf("task %s: stored data: %w", s.t.ID, s.dataErr)
	}
	data := s.t.Data // unchanged since loaded or last committed
	var err error
	if s.changed || s.loaded.ID == uuid.Nil {
		if data, err = exactjson.Marshal(s.fields()); err != nil {
			return fmt.Errorf("encode task data: %w", err)
		}
	}
	if len(data) > e.cfg.MaxTaskSize {
		tooBig := conveyor.Errorf(conveyor.ETooLarge, "task data would be %d bytes, over the %d byte limit", len(data), e.cfg.MaxTaskSize)
		if s.loaded.ID == uuid.Nil {
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
	s.hist, s.changed = nil, false
	s.loaded = *s.t
	if e.cfg.OnCommit != nil {
		e.cfg.OnCommit(s.t)
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
	s.data, s.raw, s.hist, s.call = data, s.t.Data, nil, false
	s.dropEnv()
	e.escalateHere(s, "task_too_large", msg)
	return exactjson.Marshal(s.fields())
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
// node's sensitive fields opened), task and env. The data is shaped once per
// event (see exprEnv); each node gets its own shallow copy, in which its
// sensitive fields are opened, so they never reach another node or the data.
func (e *Engine) env(s *state, n *processes.Node) (processes.Env, error) {
	x := &s.x
	if x.data == nil {
		d := s.fields()
		x.data = make(map[string]any, len(d))
		for k, v := range d {
			x.data[k] = processes.ExprValue(v)
		}
	}
	for _, k := range x.stale {
		if v, ok := s.fields()[k]; ok {
			x.data[k] = processes.ExprValue(v)
		} else {
			delete(x.data, k)
		}
	}
	x.stale = x.stale[:0]
	env := make(processes.Env, len(x.data)+2)
	for k, v := range x.data {
		env[k] = v
	}
	if n != nil && len(n.Sensitive) > 0 {
		if err := e.seal.openFields(s.t.ID, n.Sensitive, map[string]any(env)); err != nil {
			return nil, err
		}
	}
	env[processes.RootTask] = e.taskRoot(s)
	if x.env == nil {
		x.env = make(map[string]any, len(e.cfg.Env))
		for k, v := range e.cfg.Env {
			x.env[k] = v
		}
	}
	env[processes.RootEnv] = x.env
	return env, nil
}

// taskRoot returns the task root of the node the task is in, built once per
// node, attempt and visit.
func (e *Engine) taskRoot(s *state) map[string]any {
	x := &s.x
	for _, r := range x.tasks {
		if r.node == s.t.Node && r.attempt == s.t.Attempt && r.entered.Equal(s.t.Entered) {
			return r.m
		}
	}
	if x.id == nil {
		x.id, x.ref, x.process, x.version = s.t.ID.String(), s.t.Ref, s.t.Process, s.t.Version
		x.callbackURL, x.created = e.callbackURL(s.t.Token), s.t.Created.UTC().Format(time.RFC3339)
		// now is the engine's clock (not the wall clock expr's now() reads), so
		// deadlines computed in flows follow the clock tests control.
		x.now, x.nowUnix = s.now.UTC(), s.now.Unix()
	}
	m := map[string]any{
		"id": x.id, "ref": x.ref, "process": x.process, "version": x.version,
		"node": s.t.Node, "attempt": s.t.Attempt, "callback_url": x.callbackURL,
		"idempotency_key": idempotencyKey(s.t), "created": x.created,
		"now": x.now, "now_unix": x.nowUnix,
	}
	if x.tasks == nil {
		x.tasks = make([]taskRoot, 0, 4) // enough for most events
	}
	x.tasks = append(x.tasks, taskRoot{node: s.t.Node, attempt: s.t.Attempt, entered: s.t.Entered, m: m})
	return m
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
	b := make([]byte, 0, 96)
	b = appendUUID(b, t.ID)
	b = append(b, '/')
	b = append(b, t.Node...)
	b = append(b, '/')
	b = strconv.AppendInt(b, t.Entered.UnixNano(), 10)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// appendUUID appends id as uuid.UUID.String writes it, without allocating.
func appendUUID(b []byte, id uuid.UUID) []byte {
	var s [36]byte
	hex.Encode(s[0:8], id[0:4])
	hex.Encode(s[9:13], id[4:6])
	hex.Encode(s[14:18], id[6:8])
	hex.Encode(s[19:23], id[8:10])
	hex.Encode(s[24:], id[10:])
	s[8], s[13], s[18], s[23] = '-', '-', '-', '-'
	return append(b, s[:]...)
}

// newToken returns the callback token of the task with id: the task's
// creation time in milliseconds (the first 48 bits of its UUIDv7) as 12 hex
// digits, then 160 random bits in URL-safe base64. The random part makes it
// unguessable; the time in front, no secret (the task id carries it too),
// makes new tokens sort after older ones, so the store's token index grows
// at its end instead of rewriting a random page for every new task.
func newToken(id uuid.UUID) string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	t := make([]byte, 12, 12+27)
	hex.Encode(t, id[:6])
	return string(base64.RawURLEncoding.AppendEncode(t, b[:]))
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

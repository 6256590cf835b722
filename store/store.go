// Package store defines how Conveyor keeps tasks: the Store interface the
// engine talks to, the records it stores, and the sentinel errors. Backends
// live in subpackages (store/bolt) and prove themselves against the shared
// conformance suite in store/storetest.
//
// The engine hands the store whole task records; the store derives every index
// from the difference between the stored record and the new one, inside the
// same transaction: the ref index, the callback-token index, the timer index,
// the runnable set, the per-node counters, the list indexes and the audit log.
// So an index can never disagree with the task it points to, whatever the
// engine does.
package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrNotFound: no task (or version) has that id, ref or token.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the task's revision is not the one the change expected; another
	// commit moved it first. The caller reloads and decides again.
	ErrConflict = errors.New("store: revision conflict")
	// ErrExists: a task with that id already exists.
	ErrExists = errors.New("store: task already exists")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// RefTakenError is returned when a new task's (process, ref) is already held by
// another task, active or retained. Existing is that task, so the caller can
// tell an idempotent retry (same input) from a conflict (different input).
type RefTakenError struct {
	Existing *Task
}

// Error implements error.
func (e *RefTakenError) Error() string {
	return "store: ref " + e.Existing.Ref + " is taken by task " + e.Existing.ID.String()
}

// Status is where a task stands in its life. The values are an API contract.
type Status string

// Task statuses.
const (
	StatusActive    Status = "active"    // runnable: in an api, set, condition or final node, a worker owes it a step
	StatusWaiting   Status = "waiting"   // parked in a callback or delay node, with a timer
	StatusEscalated Status = "escalated" // parked in an escalation node for operators
	StatusSucceeded Status = "succeeded" // finished in a final node with result success
	StatusFailed    Status = "failed"    // finished in a final node with result error
	StatusCanceled  Status = "canceled"  // canceled by an operator
)

// Final reports whether a task in this status will never move again.
func (s Status) Final() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCanceled
}

// Statuses are the statuses above, every one a task can be in. A store that
// keeps a range per status reads them all from here, so a new status is
// never missing from its lists.
var Statuses = []Status{StatusActive, StatusWaiting, StatusEscalated, StatusSucceeded, StatusFailed, StatusCanceled}

// Valid reports whether s is one of the statuses above.
func (s Status) Valid() bool { return slices.Contains(Statuses, s) }

// Task is the durable record of one task. The store treats Data as opaque
// bytes; the engine seals sensitive fields before they get here.
type Task struct {
	// ID is a UUIDv7, so ids sort by creation time.
	ID uuid.UUID `json:"id"`
	// Process and Version name the compiled definition the task runs on; a task
	// keeps the version it started with.
	Process string `json:"process"`
	Version string `json:"version"`
	// Ref is the caller's reference, unique per process while the task exists
	// (active or retained). Empty means none.
	Ref string `json:"ref,omitempty"`
	// InputHash is a digest of the submitted input, to tell a retried submit
	// (same ref, same input) from a conflicting one.
	InputHash string `json:"input_hash,omitempty"`
	// Node is the node the task is in now.
	Node   string `json:"node"`
	Status Status `json:"status"`
	// Data is the task's JSON object.
	Data []byte `json:"data"`
	// Error describes why the task is escalated; nil otherwise.
	Error *TaskError `json:"error,omitempty"`
	// Token is the task's callback token: random, unguessable, set when the
	// task is created and kept for its life, so late callbacks still find it.
	// The store indexes it for TaskByToken; tokens are unique.
	Token string `json:"token,omitempty"`
	// TimerAt is when the task's timer fires; zero means no timer. Every waiting
	// and escalated task with a timeout has one, and so does a task whose
	// outbound call is scheduled for a retry.
	TimerAt time.Time `json:"timer_at,omitzero"`
	// Timer says what the timer is for (see the engine); opaque to the store.
	Timer string `json:"timer,omitempty"`
	// Attempt counts outbound call attempts in the current visit of an api node.
	Attempt int `json:"attempt,omitempty"`
	// Steps counts the nodes passed since the task last waited (loop guard).
	Steps int `json:"steps,omitempty"`
	// Rev increases by one with every commit of the task; a Change names the
	// Rev it was decided on.
	Rev uint64 `json:"rev"`
	// HistoryLen is the number of history entries the task has.
	HistoryLen uint32 `json:"history_len"`
	// Marks remembers recently accepted callbacks so that a repeat is answered
	// as a duplicate rather than moving the task twice. Bounded by the engine.
	Marks []Mark `json:"marks,omitempty"`
	// Early holds callbacks that arrived, verified, while the task was still
	// making the call that precedes its callback node (a fast provider can call
	// back before its reply is processed). They are applied when the task
	// enters the callback node. Bounded by the engine.
	Early []Early `json:"early,omitempty"`
	// Created is when the task was submitted, Updated its last commit, Entered
	// when it entered its current node, Finished when it reached a final status.
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Entered  time.Time `json:"entered"`
	Finished time.Time `json:"finished,omitzero"`
}

// Clone returns a deep copy of t.
func (t *Task) Clone() *Task {
	c := *t
	c.Data = append([]byte(nil), t.Data...)
	if t.Error != nil {
		e := *t.Error
		c.Error = &e
	}
	c.Marks = append([]Mark(nil), t.Marks...)
	c.Early = append([]Early(nil), t.Early...)
	return &c
}

// TaskError is why a task landed in an escalation node.
type TaskError struct {
	// Code is machine-readable (err_code), e.g. "http_503" or a provider's code.
	Code string `json:"code"`
	// Description is for operators (err_description).
	Description string `json:"description"`
	// Node is the node that failed, where retry re-runs the task.
	Node string `json:"node"`
}

// Mark records one accepted callback: a digest of its body and the node that
// accepted it.
type Mark struct {
	Hash string    `json:"hash"`
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// Early is a callback kept for a task until it waits for it.
type Early struct {
	ContentType string    `json:"content_type,omitempty"`
	Body        []byte    `json:"body"`
	Actor       string    `json:"actor,omitempty"`
	At          time.Time `json:"at"`
}

// HistoryEntry is one line of a task's append-only history: a transition, or
// an event that was recorded without moving the task (a late callback, an
// operator note).
type HistoryEntry struct {
	// Seq numbers the entries of one task from 0.
	Seq uint32 `json:"seq"`
	// At is when the entry was committed.
	At time.Time `json:"at"`
	// From and To are node names; equal when the task did not move.
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	// Event names what happened: an outcome of a node ("next", "timeout",
	// "error", a case name), or an engine event ("submit", "callback",
	// "reply", "retry_scheduled", "late_callback", "operator_retry", ...).
	Event string `json:"event"`
	// Actor is who caused it: "engine", "callback", "timer" or an operator.
	Actor string `json:"actor,omitempty"`
	// Reason is the operator's reason, when one acted.
	Reason string `json:"reason,omitempty"`
	// Detail is free text for people (an error, an HTTP status). Never secrets.
	Detail string `json:"detail,omitempty"`
	// JobID names the bulk job that performed an operator action; empty for
	// everything else.
	JobID string `json:"job_id,omitempty"`
}

// AuditPrefix starts the Event of every operator action ("operator_retry",
// "operator_move", ...). The store copies each history entry whose Event has
// it into the audit log, in the same transaction.
const AuditPrefix = "operator_"

// Audited reports whether a history entry is an operator action, which the
// store also keeps in the audit log.
func (h *HistoryEntry) Audited() bool { return strings.HasPrefix(h.Event, AuditPrefix) }

// Change is one task's commit: the new record, the revision it replaces, and
// the history entries it appends. Rev 0 means the task is new.
type Change struct {
	// Task is the new record. The store sets Task.Rev to Rev+1 and Updated is
	// the engine's business.
	Task *Task
	// Rev is the revision the change was decided on: the stored task's Rev must
	// equal it, or the commit fails with ErrConflict. 0 creates the task.
	Rev uint64
	// History is appended in order; each entry's Seq must continue the stored
	// task's HistoryLen, and Task.HistoryLen must count them.
	History []HistoryEntry
}

// Timer is an entry of the timer index: a task whose timer is due.
type Timer struct {
	TaskID uuid.UUID
	At     time.Time
}

// Filter selects tasks for List. Zero fields match everything.
type Filter struct {
	Process string
	Node    string
	Status  Status
	Ref     string
	// ErrorCode matches escalated tasks by TaskError.Code.
	ErrorCode string
	// EnteredBefore matches tasks that entered their node before this time
	// ("waiting longer than").
	EnteredBefore time.Time
	// Limit caps the page; the store applies a default and a maximum.
	Limit int
	// Cursor continues a previous page; opaque.
	Cursor string
}

// Page is a page of tasks, newest first, and the cursor of the next page
// ("" when this is the last).
type Page struct {
	Tasks []*Task
	Next  string
}

// NodeCount is how many tasks of a process stand in a node now, per status,
// and for final nodes how many ever arrived there (Total survives purges).
type NodeCount struct {
	Process string
	Node    string
	// Now counts tasks currently in the node, by status.
	Now map[Status]int64
	// Total counts every arrival into a final node (0 for other nodes).
	Total int64
}

// Version is a stored process definition: its source, so tasks that started
// on it can run after a restart even when the file on disk has changed.
type Version struct {
	Process string    `json:"process"`
	Version string    `json:"version"`
	File    string    `json:"file"`
	Source  []byte    `json:"source"`
	Loaded  time.Time `json:"loaded"`
}

// BatchReader is implemented by stores that read many tasks at once for less
// than one by one: the timer service loads the tasks of a burst of due timers
// in chunks through it, when the store has it.
type BatchReader interface {
	// Tasks returns the tasks with the given ids, in the order of ids, as
	// Task would one by one, but as of one moment; nil for an id with no
	// task.
	Tasks(ctx context.Context, ids []uuid.UUID) ([]*Task, error)
}

// Store keeps tasks, their history and indexes, process versions, the audit
// log, bulk jobs and queue alarm crossings. Every method is safe for
// concurrent use. Writes are durable (fsynced) when they return nil.
type Store interface {
	// Commit applies the changes in one transaction: all or none. For each
	// change it checks the revision, writes the record, appends the history,
	// and updates every index from the difference between the old and the new
	// record. A new task whose (process, ref) is taken fails with a
	// *RefTakenError. Concurrent commits are grouped into one transaction and
	// one fsync; a failing commit does not fail the others in its group.
	Commit(ctx context.Context, changes ...Change) error

	// Task returns the task with id, or ErrNotFound.
	Task(ctx context.Context, id uuid.UUID) (*Task, error)
	// TaskByRef returns the task holding (process, ref), or ErrNotFound.
	TaskByRef(ctx context.Context, process, ref string) (*Task, error)
	// TaskByToken returns the task whose callback token is token, or ErrNotFound.
	TaskByToken(ctx context.Context, token string) (*Task, error)
	// History returns the task's history in order, or ErrNotFound.
	History(ctx context.Context, id uuid.UUID) ([]HistoryEntry, error)
	// List returns a page of tasks matching f, newest first.
	List(ctx context.Context, f Filter) (Page, error)
	// Counts returns the node counters of a process (all processes for "").
	Counts(ctx context.Context, process string) ([]NodeCount, error)

	// Due returns up to limit timers due at or before t, earliest first.
	Due(ctx context.Context, t time.Time, limit int) ([]Timer, error)
	// NextDue returns the earliest timer, or false when there is none.
	NextDue(ctx context.Context) (time.Time, bool, error)
	// Runnable returns up to limit ids of active tasks with ids after the given
	// one (uuid.Nil to start), in id order: what a restarted engine owes a step.
	Runnable(ctx context.Context, after uuid.UUID, limit int) ([]uuid.UUID, error)

	// Purge deletes up to limit finished tasks that finished before t, with
	// their history and index entries (their ref becomes free), and returns how
	// many it deleted. Final-node totals are kept, and so are the tasks'
	// entries in the audit log, which outlives them.
	Purge(ctx context.Context, t time.Time, limit int) (int, error)

	// PutVersion stores a process version if it is not stored yet.
	PutVersion(ctx context.Context, v Version) error
	// Version returns a stored process version, or ErrNotFound.
	Version(ctx context.Context, process, version string) (*Version, error)

	// Audit returns a page of the audit log, newest first (by At, then task
	// id and history Seq). The log holds a copy of every history entry whose
	// Event starts with AuditPrefix, written by the Commit that appended it.
	// Purge leaves it alone: the audit log outlives the tasks.
	Audit(ctx context.Context, f AuditFilter) (AuditPage, error)

	// PutJob creates a bulk job (Rev 0; ErrExists when its id is taken) or
	// replaces it (ErrConflict unless the stored job is at j.Rev; ErrNotFound
	// when there is none), and sets j.Rev to the new revision.
	PutJob(ctx context.Context, j *Job) error
	// Job returns the job with id, or ErrNotFound.
	Job(ctx context.Context, id uuid.UUID) (*Job, error)
	// Jobs returns up to limit jobs (default 50, at most 1000), newest first.
	Jobs(ctx context.Context, limit int) ([]*Job, error)
	// PutJobResults stores results of a job (ErrNotFound when there is no
	// such job). A job has one result per task: a result for a task that has
	// one replaces it, so a runner that redoes a page after a restart does not
	// count a task twice.
	PutJobResults(ctx context.Context, jobID uuid.UUID, results []JobResult) error
	// JobResults returns up to limit results of a job (default 100, at most
	// 1000) in task id order, after cursor ("" from the first), and the cursor
	// of the next page ("" on the last). ErrNotFound when there is no such
	// job.
	JobResults(ctx context.Context, jobID uuid.UUID, cursor string, limit int) ([]JobResult, string, error)

	// PutAlarmCrossing records a crossing of a node's queue alarm. Its Seq
	// must follow the node's latest crossing (1 for the first), or it fails
	// with ErrConflict: two engines cannot both record one crossing.
	PutAlarmCrossing(ctx context.Context, c AlarmCrossing) error
	// AlarmStates returns the latest crossing of every node that has one,
	// sorted by process and node.
	AlarmStates(ctx context.Context) ([]AlarmCrossing, error)
	// AlarmCrossings returns up to limit crossings (default 50, at most
	// 1000), newest first.
	AlarmCrossings(ctx context.Context, limit int) ([]AlarmCrossing, error)

	// Close flushes pending commits and releases the store.
	Close() error
}

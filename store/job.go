package store

import (
	"time"

	"github.com/google/uuid"
)

// Bulk actions a Job applies to each task it selects.
const (
	JobRetry  = "retry"
	JobMove   = "move"
	JobCancel = "cancel"
)

// JobStatus is where a bulk job stands. The values are an API contract.
type JobStatus string

// Job statuses.
const (
	JobPending  JobStatus = "pending"  // stored, not picked up by a runner yet
	JobRunning  JobStatus = "running"  // a runner pages through the selection
	JobDone     JobStatus = "done"     // every selected task has a result
	JobCanceled JobStatus = "canceled" // an operator stopped it; the results so far stay
	JobFailed   JobStatus = "failed"   // it could not go on; Job.Error says why
)

// Final reports whether a job in this status will never run again.
func (s JobStatus) Final() bool { return s == JobDone || s == JobCanceled || s == JobFailed }

// JobFilter is the selection of a bulk job: the fields of Filter, without
// Limit and Cursor. The engine fixes EnteredBefore when it creates the job
// (just after the creation time, or OlderThan before it), so that tasks
// arriving later never join the selection.
type JobFilter struct {
	Process   string `json:"process"`
	Node      string `json:"node,omitempty"`
	Status    Status `json:"status,omitempty"`
	Ref       string `json:"ref,omitempty"`
	ErrorCode string `json:"error_code,omitempty"`
	// OlderThan is how long a task must have stood in its node when the job
	// was created, as the operator asked for it; EnteredBefore already
	// applies it.
	OlderThan time.Duration `json:"older_than,omitempty"`
	// EnteredBefore keeps the tasks that entered their node before this time.
	EnteredBefore time.Time `json:"entered_before,omitzero"`
}

// Filter returns the List filter of the selection, from the first page.
func (f JobFilter) Filter() Filter {
	return Filter{Process: f.Process, Node: f.Node, Status: f.Status, Ref: f.Ref, ErrorCode: f.ErrorCode, EnteredBefore: f.EnteredBefore}
}

// Job is a durable bulk operator action: one action applied to every task a
// filter selects, at a bounded rate, with a result per task. It survives
// restarts: a runner resumes it from Cursor.
type Job struct {
	// ID is a UUIDv7, so jobs sort by creation time.
	ID uuid.UUID `json:"id"`
	// Action is JobRetry, JobMove or JobCancel.
	Action string    `json:"action"`
	Filter JobFilter `json:"filter"`
	// To is the node a move sends tasks to; empty for the other actions.
	To string `json:"to,omitempty"`
	// Reason and Actor are recorded in each task's history entry.
	Reason string `json:"reason,omitempty"`
	Actor  string `json:"actor"`
	// Rate caps the tasks acted on per second.
	Rate   int       `json:"rate"`
	Status JobStatus `json:"status"`
	// Error says why a failed job stopped.
	Error string `json:"error,omitempty"`
	// Total is how many tasks the selection held when the job was created;
	// Done how many have a result, Succeeded and Failed how those ended.
	Total     int `json:"total"`
	Done      int `json:"done"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// Pending are the tasks of the page being worked on: a runner stores
	// them before it acts on them, and clears them with the page's results
	// and counts. A runner that finds them after a restart finishes them
	// first (the job id in a task's history tells whether it was acted on).
	Pending []uuid.UUID `json:"pending,omitempty"`
	// Cursor is the List cursor of the page after Pending ("" for the first
	// page); Listed is set once the last page has been listed.
	Cursor string `json:"cursor,omitempty"`
	Listed bool   `json:"listed,omitempty"`
	// Runner names the engine running the job among engines that share the
	// store, and Beat is when it last said so; both empty for a single
	// engine. Another engine takes a job over when its Beat is old.
	Runner string    `json:"runner,omitempty"`
	Beat   time.Time `json:"beat,omitzero"`
	// Created is when the job was stored, Updated its last write, Started
	// when a runner first picked it up, Finished when it reached a final
	// status.
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Rev increases by one with every PutJob: PutJob fails with ErrConflict
	// unless the stored job is at the Rev the caller read. 0 creates the job.
	Rev uint64 `json:"rev"`
}

// Clone returns a deep copy of j.
func (j *Job) Clone() *Job {
	c := *j
	c.Pending = append([]uuid.UUID(nil), j.Pending...)
	return &c
}

// JobResult is what a bulk job did to one task.
type JobResult struct {
	TaskID uuid.UUID `json:"task_id"`
	// OK is true when the action was applied (also when the job had applied
	// it before a restart).
	OK bool `json:"ok"`
	// Error says why the action was not applied, for people.
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

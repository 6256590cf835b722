package store

import (
	"time"

	"github.com/google/uuid"
)

// AuditEntry is one operator action as the audit log keeps it: a copy of the
// history entry that recorded it, with the task and process it concerned.
// The store writes it in the same transaction as the history entry, and keeps
// it when the task is purged: the audit log outlives tasks.
type AuditEntry struct {
	// At is when the action was committed (the history entry's At).
	At time.Time `json:"at"`
	// Actor is who acted: the API principal and operator ("token:alice").
	Actor string `json:"actor"`
	// Action is the history entry's Event: "operator_retry", "operator_move",
	// "operator_cancel", "operator_edit".
	Action string `json:"action"`
	// TaskID and Seq name the history entry: the task and its place in the
	// task's history.
	TaskID uuid.UUID `json:"task_id"`
	Seq    uint32    `json:"seq"`
	// Process is the task's process.
	Process string `json:"process"`
	// From and To are the nodes the task left and entered (equal for a cancel).
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Reason is the operator's reason.
	Reason string `json:"reason,omitempty"`
	// Detail says what changed beyond the node (the fields an edit changed,
	// the status a cancel ended). Never values of sensitive fields.
	Detail string `json:"detail,omitempty"`
	// JobID names the bulk job that acted; empty for a single action.
	JobID string `json:"job_id,omitempty"`
}

// NewAuditEntry returns the audit entry of an audited history entry of a task.
func NewAuditEntry(t *Task, h *HistoryEntry) AuditEntry {
	return AuditEntry{
		At: h.At, Actor: h.Actor, Action: h.Event, TaskID: t.ID, Seq: h.Seq, Process: t.Process,
		From: h.From, To: h.To, Reason: h.Reason, Detail: h.Detail, JobID: h.JobID,
	}
}

// AuditFilter selects audit entries. Zero fields match everything.
type AuditFilter struct {
	// TaskID keeps the actions on one task.
	TaskID uuid.UUID
	// Actor keeps the actions of one actor, exactly as recorded.
	Actor string
	// Process keeps the actions on tasks of one process.
	Process string
	// Since keeps the actions at or after this time.
	Since time.Time
	// Limit caps the page; the store applies a default (50) and a maximum
	// (1000).
	Limit int
	// Cursor continues a previous page; opaque.
	Cursor string
}

// AuditPage is a page of audit entries, newest first, and the cursor of the
// next page ("" when this is the last).
type AuditPage struct {
	Entries []AuditEntry
	Next    string
}

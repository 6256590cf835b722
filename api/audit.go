package api

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/store"
)

// auditList is the answer of GET /api/v1/audit.
type auditList struct {
	Entries    []store.AuditEntry `json:"entries"`
	NextCursor string             `json:"next_cursor"`
}

// audit answers a page of the audit log, newest first: every operator
// action, single or bulk.
func (s *server) audit(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "task", "actor", "process", "since", "limit", "cursor")
	if err != nil {
		return err
	}
	f := store.AuditFilter{Actor: q.Get("actor"), Process: q.Get("process"), Cursor: q.Get("cursor")}
	if v := q.Get("task"); v != "" {
		if f.TaskID, err = uuid.Parse(v); err != nil {
			return conveyor.Errorf(conveyor.EInvalid, "task must be a task id (a UUID)")
		}
	}
	if v := q.Get("since"); v != "" {
		if f.Since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return conveyor.Errorf(conveyor.EInvalid, "since must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
	}
	if f.Limit, err = limitParam(q); err != nil {
		return err
	}
	page, err := s.eng.Audit(r.Context(), f)
	if err != nil {
		return err
	}
	if page.Entries == nil {
		page.Entries = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, auditList{Entries: page.Entries, NextCursor: page.Next})
	return nil
}

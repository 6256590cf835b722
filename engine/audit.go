package engine

import (
	"context"

	"github.com/conveyor-dev/conveyor/store"
)

// Audit returns a page of the audit log, newest first: every operator action,
// single or bulk, with who (Actor), when (At), why (Reason), what changed
// (From, To, Detail) and the bulk job that did it (JobID). The store writes
// an entry with the history entry of each action, and keeps it after the
// task is purged. The same actions show in each task's history.
func (e *Engine) Audit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error) {
	return e.st.Audit(ctx, f)
}

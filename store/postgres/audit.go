package postgres

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/store"
)

// zeroAuditTime is the audit table's at for the zero time, which has no Unix
// nanoseconds: the smallest bigint, so it sorts oldest.
const zeroAuditTime = math.MinInt64

// auditTime returns the audit table's at of t.
func auditTime(t time.Time) int64 {
	if t.IsZero() {
		return zeroAuditTime
	}
	return t.UnixNano()
}

// auditTimeOf undoes auditTime.
func auditTimeOf(ns int64) time.Time {
	if ns == zeroAuditTime {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// auditCursor is the position of an audit entry: the hex of its at, task id
// and seq.
type auditCursor struct {
	at   int64
	task uuid.UUID
	seq  int64
}

func (c auditCursor) String() string {
	b := binary.BigEndian.AppendUint64(nil, uint64(c.at))
	b = append(b, c.task[:]...)
	return hex.EncodeToString(binary.BigEndian.AppendUint32(b, uint32(c.seq)))
}

func parseAuditCursor(s string) (auditCursor, bool) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 28 {
		return auditCursor{}, false
	}
	return auditCursor{at: int64(binary.BigEndian.Uint64(b)), task: uuid.UUID(b[8:24]), seq: int64(binary.BigEndian.Uint32(b[24:]))}, true
}

// Audit returns a page of the audit log, newest first (by at, task id and
// seq); see store.Store. Limit defaults to 50 and is capped at 1000. The
// cursor is the position of the last entry of the previous page; another
// cursor fails with a conveyor.EInvalid error.
func (db *DB) Audit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error) {
	if err := db.ready(ctx); err != nil {
		return store.AuditPage{}, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultPage
	}
	limit = min(limit, maxPage)
	var conds []string
	var args []any
	where := func(cond string, arg ...any) {
		n := make([]any, len(arg))
		for i := range arg {
			args = append(args, arg[i])
			n[i] = len(args)
		}
		conds = append(conds, fmt.Sprintf(cond, n...))
	}
	if f.Cursor != "" {
		c, ok := parseAuditCursor(f.Cursor)
		if !ok {
			return store.AuditPage{}, invalid("store: audit: bad cursor %q", f.Cursor)
		}
		where("(at, task_id, seq) < ($%d, $%d, $%d)", c.at, c.task, c.seq)
	}
	if f.TaskID != uuid.Nil {
		where("task_id = $%d", f.TaskID)
	}
	if f.Actor != "" {
		if !storable(f.Actor) {
			return store.AuditPage{}, nil
		}
		where("actor = $%d", f.Actor)
	}
	if f.Process != "" {
		if !storable(f.Process) {
			return store.AuditPage{}, nil
		}
		where("process = $%d", f.Process)
	}
	if !f.Since.IsZero() {
		where("at >= $%d", bound(f.Since))
	}
	q := `SELECT task_id, seq, at, process, actor, action, from_node, to_node, reason, detail, job_id FROM audit`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	args = append(args, limit+1)
	q += fmt.Sprintf(` ORDER BY at DESC, task_id DESC, seq DESC LIMIT $%d`, len(args))
	rows, _ := db.pool.Query(ctx, q, args...)
	var positions []auditCursor
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditEntry, error) {
		var a store.AuditEntry
		var seq, at int64
		err := row.Scan(&a.TaskID, &seq, &at, &a.Process, &a.Actor, &a.Action, &a.From, &a.To, &a.Reason, &a.Detail, &a.JobID)
		a.Seq, a.At = uint32(seq), auditTimeOf(at)
		positions = append(positions, auditCursor{at, a.TaskID, seq})
		return a, err
	})
	if err != nil {
		return store.AuditPage{}, db.fail("audit", err)
	}
	page := store.AuditPage{Entries: entries}
	if len(entries) > limit {
		page.Entries = entries[:limit]
		page.Next = positions[limit-1].String()
	}
	return page, nil
}

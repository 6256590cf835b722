package bolt

import (
	"bytes"
	"context"
	"encoding/hex"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// Audit returns a page of the audit log, newest first; see store.Store.
// A TaskID filter reads the auditbytask index, any other the whole log from
// the newest entry down to Since. Limit defaults to 50 and is capped at 1000.
// The cursor is the hex key of the last entry of the previous page; another
// cursor fails with a conveyor.EInvalid error.
func (db *DB) Audit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error) {
	if err := db.flushLog(ctx); err != nil {
		return store.AuditPage{}, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultPage
	}
	limit = min(limit, maxPage)
	var after []byte
	if f.Cursor != "" {
		k, err := hex.DecodeString(f.Cursor)
		if err != nil || len(k) != auditKeyLen {
			return store.AuditPage{}, invalid("store: audit: bad cursor %q", f.Cursor)
		}
		after = k
	}
	var page store.AuditPage
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		page, err = auditPage(tx, f, after, limit)
		return err
	})
	return page, err
}

// auditPage fills a page of up to limit entries below the audit key after
// (nil: from the newest), looking one match further for the next page.
func auditPage(tx *bbolt.Tx, f store.AuditFilter, after []byte, limit int) (store.AuditPage, error) {
	var page store.AuditPage
	var last []byte
	var err error
	since := nanos(f.Since)
	visit := func(k, v []byte) bool {
		if !f.Since.IsZero() && keyNanos(k) < since {
			return false
		}
		var a store.AuditEntry
		if a, err = decodeAudit(v); err != nil {
			err = internal("store: audit entry %x: decode: %v", k, err)
			return false
		}
		if f.Actor != "" && a.Actor != f.Actor || f.Process != "" && a.Process != f.Process {
			return true
		}
		if len(page.Entries) == limit {
			page.Next = hex.EncodeToString(last)
			return false
		}
		page.Entries = append(page.Entries, a)
		last = bytes.Clone(k)
		return true
	}
	audit := tx.Bucket(bucketAudit)
	if f.TaskID == uuid.Nil {
		descend(audit.Cursor(), nil, after, visit)
		return page, err
	}
	var start []byte
	if after != nil {
		if !bytes.Equal(after[8:24], f.TaskID[:]) {
			return page, invalid("store: audit: the cursor belongs to another task")
		}
		start = auditByTaskKey(after)[16:]
	}
	descend(tx.Bucket(bucketAuditByTask).Cursor(), f.TaskID[:], start, func(tk, _ []byte) bool {
		k := auditKeyOf(tk)
		v := audit.Get(k)
		if v == nil {
			err = internal("store: auditbytask names a missing audit entry %x (run Check)", k)
			return false
		}
		return visit(k, v)
	})
	return page, err
}

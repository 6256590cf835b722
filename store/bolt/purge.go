package bolt

import (
	"bytes"
	"context"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// defaultLimit is the limit of Due, Runnable and Purge when the caller passes
// 0 or less.
const defaultLimit = 100

// Purge deletes up to limit tasks (default 100 for limit <= 0) that finished
// before t, oldest first, with their history and index entries, and returns
// how many it deleted; see store.Store. It goes through the writer, so it
// commits with concurrent Commits.
func (db *DB) Purge(ctx context.Context, t time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	if db.lg != nil {
		// A purge must not race a logged commit of a task it deletes: keep
		// the logger still, and let bbolt catch up first.
		db.lg.gate.Lock()
		defer db.lg.gate.Unlock()
		if err := db.flushLog(ctx); err != nil {
			return 0, err
		}
	}
	var n int
	err := db.submit(ctx, 1, func(tx *bbolt.Tx) (func() error, error) {
		p, err := planPurge(tx, t, limit)
		if err != nil {
			return nil, err
		}
		if n = len(p.writes); n == 0 {
			return nil, nil
		}
		return func() error { return p.apply(&db.later) }, nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// planPurge plans the deletion of up to limit tasks that finished before t.
func planPurge(tx *bbolt.Tx, t time.Time, limit int) (*plan, error) {
	p := newPlan()
	before := nanos(t)
	c := tx.Bucket(bucketFinished).Cursor()
	for k, _ := c.First(); k != nil && keyNanos(k) < before && len(p.writes) < limit; k, _ = c.Next() {
		old, err := loadIndexed(tx, "finished", k[8:])
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(keyOf(old, finishedKey), k) {
			return nil, internal("store: finished index disagrees with task %s (run Check)", old.ID)
		}
		p.add(write{old: old})
	}
	return p, nil
}

// PutVersion stores v unless its (process, version) is stored already, in
// which case it does nothing, even when the source differs: a version never
// changes. It goes through the writer like Commit.
func (db *DB) PutVersion(ctx context.Context, v store.Version) error {
	if v.Process == "" || v.Version == "" {
		return invalid("store: a version needs a process and a version")
	}
	if strings.IndexByte(v.Process+v.Version, 0) >= 0 || len(v.Process)+len(v.Version) > maxName {
		return invalid("store: version %q of %q: names must be under %d bytes without 0x00", v.Version, v.Process, maxName)
	}
	val, err := encodeVersion(&v)
	if err != nil {
		return invalid("store: version %q of %q: encode: %v", v.Version, v.Process, err)
	}
	key := join(v.Process, v.Version)
	return db.submit(ctx, 1, func(tx *bbolt.Tx) (func() error, error) {
		b := tx.Bucket(bucketVersions)
		if b.Get(key) != nil {
			return nil, nil
		}
		return func() error { return b.Put(key, val) }, nil
	})
}

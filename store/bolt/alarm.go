package bolt

import (
	"context"
	"fmt"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// PutAlarmCrossing records a crossing of a node's queue alarm and makes it
// the node's state, unless its Seq does not follow the state's (ErrConflict);
// see store.Store. It goes through the writer like Commit.
func (db *DB) PutAlarmCrossing(ctx context.Context, c store.AlarmCrossing) error {
	switch {
	case c.Process == "" || c.Node == "":
		return invalid("store: an alarm crossing needs a process and a node")
	case strings.IndexByte(c.Process+c.Node, 0) >= 0 || len(c.Process)+len(c.Node) > maxName:
		return invalid("store: alarm of %q/%q: names must be under %d bytes without 0x00", c.Process, c.Node, maxName)
	case c.Seq == 0:
		return invalid("store: alarm of %q/%q: crossings are numbered from 1", c.Process, c.Node)
	}
	val, err := encodeAlarm(&c)
	if err != nil {
		return invalid("store: alarm of %q/%q: encode: %v", c.Process, c.Node, err)
	}
	key := join(c.Process, c.Node)
	return db.submit(ctx, 1, func(tx *bbolt.Tx) (func() error, error) {
		states := tx.Bucket(bucketAlarms)
		var last uint64
		if v := states.Get(key); v != nil {
			prev, err := decodeAlarm(v)
			if err != nil {
				return nil, internal("store: alarm of %q/%q: decode: %v", c.Process, c.Node, err)
			}
			last = prev.Seq
		}
		if c.Seq != last+1 {
			return nil, fmt.Errorf("alarm of %s/%s is at crossing %d, not %d: %w", c.Process, c.Node, last, c.Seq-1, store.ErrConflict)
		}
		return func() error {
			if err := states.Put(key, val); err != nil {
				return err
			}
			return tx.Bucket(bucketAlarmLog).Put(alarmLogKey(&c), val)
		}, nil
	})
}

// AlarmStates returns the latest crossing of every node that has one,
// sorted by process and node.
func (db *DB) AlarmStates(ctx context.Context) ([]store.AlarmCrossing, error) {
	var out []store.AlarmCrossing
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAlarms).ForEach(func(k, v []byte) error {
			c, err := decodeAlarm(v)
			if err != nil {
				return internal("store: alarm %q: decode: %v", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// AlarmCrossings returns up to limit crossings (default 50, at most 1000),
// newest first.
func (db *DB) AlarmCrossings(ctx context.Context, limit int) ([]store.AlarmCrossing, error) {
	if limit <= 0 {
		limit = defaultPage
	}
	limit = min(limit, maxPage)
	var out []store.AlarmCrossing
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAlarmLog).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			a, err := decodeAlarm(v)
			if err != nil {
				return internal("store: alarm crossing %x: decode: %v", k, err)
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

package bolt

import (
	"bytes"
	"errors"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// The history backlog.
//
// A timeout, a callback or an operator action appends an entry to the
// history of a task that may be old, and history is keyed by task id, so
// the entry lands in the middle of the history tree. When a burst moves
// thousands of old tasks in one group commit (100,000 timeouts falling due
// together, or the backlog after downtime), every few of them dirty another
// leaf of a tree as large as all the history ever kept: a quarter of the
// writer's time in the burst of BENCHMARKS.md, which the acknowledgement of
// every timeout waits for.
//
// So a large group commit puts those entries in a second bucket with the
// same keys, the backlog, which holds only the entries not yet moved and is
// therefore small and written densely; and the writer, once it has had no
// request for backlogIdle, moves them into history in chunks of key order,
// each chunk one transaction. The backlog is part of the same transactions
// as the tasks, so it is as durable as they are, and a restart carries on
// where the last chunk stopped. Readers see the union: History reads both
// buckets, Check checks both, and a purge deletes a task's entries from
// both.
//
// Small group commits (the steady traffic of submits and callbacks) write
// history directly, as before: their entries mostly land next to each
// other at the end of the tree, and moving them twice would cost more than
// it saves.
const (
	// backlogFrom is the smallest group commit, in changes, whose history
	// appends go to the backlog.
	backlogFrom = 512
	// backlogMax bounds the backlog: at this many entries (an estimate
	// that only ever runs high), group commits write history directly
	// again, so a writer that never idles cannot grow it without end.
	backlogMax = 1 << 18
	// backlogChunk is how many entries one move transaction takes.
	backlogChunk = 8192
	// backlogIdle is how long the writer waits without a request before it
	// moves a chunk.
	backlogIdle = 10 * time.Millisecond
)

// countBacklog returns how many entries the backlog holds.
func countBacklog(tx *bbolt.Tx) int {
	return tx.Bucket(bucketBacklog).Stats().KeyN
}

// moveBacklog moves up to backlogChunk entries, in key order, from the
// backlog into history, in one transaction. It runs on the writer goroutine,
// between group commits, and reports how many it moved and the statistics
// of the transaction.
func (db *DB) moveBacklog() (moved int, stats bbolt.TxStats, err error) {
	var last *bbolt.Tx
	err = db.update(func(tx *bbolt.Tx) error {
		last = tx
		backlog, history := writable(tx, bucketBacklog), writable(tx, bucketHistory)
		// Collected first: deleting under a cursor skips keys.
		var entries []kv
		c := backlog.Cursor()
		for k, v := c.First(); k != nil && len(entries) < backlogChunk; k, v = c.Next() {
			entries = append(entries, kv{bytes.Clone(k), bytes.Clone(v)})
		}
		for _, e := range entries {
			if err := history.Put(e.k, e.v); err != nil {
				return err
			}
			if err := backlog.Delete(e.k); err != nil {
				return err
			}
		}
		if moved = len(entries); moved == 0 {
			return errNoWrites
		}
		return nil
	})
	switch {
	case errors.Is(err, errNoWrites):
		return 0, stats, nil
	case err != nil:
		return 0, stats, err
	}
	return moved, last.Stats(), nil
}

package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// maxCheckErrors caps the errors Check reports.
const maxCheckErrors = 20

// Check verifies the file with bbolt's consistency check, then Conveyor's own
// invariants: every index entry names an existing task that agrees with it,
// and every task has the entries its record implies; the counters equal a
// recount of the non-final tasks and the totals are at least the final tasks
// at each node; every task's history has HistoryLen entries numbered from 0.
// It returns nil or every problem found (up to 20), joined.
//
// Check reads the whole file in one write transaction, holding commits back,
// and keeps every index key in memory: use it in tests and offline tools, not
// on a busy store.
func (db *DB) Check() error {
	if db.closed.Load() {
		return store.ErrClosed
	}
	// bbolt's check is only safe concurrently with writers in a write tx.
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return fmt.Errorf("store: check: %w", viewErr(err))
	}
	defer tx.Rollback()
	c := &checker{tx: tx}
	for err := range tx.Check() {
		c.fail("bbolt: %v", err)
	}
	c.tasks()
	c.indexes()
	c.counters()
	c.history()
	c.versions()
	return errors.Join(c.errs...)
}

// checker collects the problems Check finds.
type checker struct {
	tx      *bbolt.Tx
	errs    []error
	lens    map[uuid.UUID]uint32         // HistoryLen per task
	entries map[string]map[string][]byte // bucket -> key -> value the tasks imply
	counts  map[string]int64             // counts key -> non-final tasks
	finals  map[string]int64             // totals key -> final tasks now
}

func (c *checker) fail(format string, args ...any) {
	if len(c.errs) < maxCheckErrors {
		c.errs = append(c.errs, fmt.Errorf("store: check: "+format, args...))
	}
}

// tasks decodes every task and derives the entries it implies.
func (c *checker) tasks() {
	c.lens = map[uuid.UUID]uint32{}
	c.entries = map[string]map[string][]byte{}
	c.counts, c.finals = map[string]int64{}, map[string]int64{}
	for _, ix := range indexes {
		c.entries[string(ix.bucket)] = map[string][]byte{}
	}
	_ = c.tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
		t, err := decodeTask(v)
		if err == nil && !bytes.Equal(k, t.ID[:]) {
			err = fmt.Errorf("holds task %s", t.ID)
		}
		if err == nil {
			err = validateTask(t)
		}
		if err != nil {
			c.fail("task %x: %v", k, err)
			return nil
		}
		c.task(t)
		return nil
	})
}

// task records what one valid task implies.
func (c *checker) task(t *store.Task) {
	c.lens[t.ID] = t.HistoryLen
	if t.Status.Final() && t.Finished.IsZero() {
		c.fail("task %s is %s without a Finished time", t.ID, t.Status)
	}
	for _, ix := range indexes {
		k := ix.key(t)
		if k == nil {
			continue
		}
		want := c.entries[string(ix.bucket)]
		if other, dup := want[string(k)]; dup {
			c.fail("%s: tasks %x and %s both claim key %s", ix.bucket, other, t.ID, show(ix.bucket, k))
		}
		v := empty
		if ix.byID {
			v = t.ID[:]
		}
		want[string(k)] = v
	}
	if k := countKey(t); k != nil {
		c.counts[string(k)]++
	}
	if k := totalKey(t); k != nil {
		c.finals[string(k)]++
	}
}

// indexes compares every index bucket with the entries the tasks imply.
func (c *checker) indexes() {
	for _, ix := range indexes {
		want := c.entries[string(ix.bucket)]
		seen := 0
		_ = c.tx.Bucket(ix.bucket).ForEach(func(k, v []byte) error {
			w, ok := want[string(k)]
			switch {
			case !ok:
				c.fail("%s: entry %s matches no task", ix.bucket, show(ix.bucket, k))
			case !bytes.Equal(v, w):
				c.fail("%s: entry %s holds %x, the task is %x", ix.bucket, show(ix.bucket, k), v, w)
			default:
				seen++
			}
			return nil
		})
		if seen != len(want) {
			c.fail("%s: %d of %d entries the tasks imply are missing", ix.bucket, len(want)-seen, len(want))
		}
	}
}

// counters compares the counts with a recount and the totals with the final
// tasks still stored.
func (c *checker) counters() {
	seen := 0
	_ = c.tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
		if got, want := getInt64(v), c.counts[string(k)]; got != want || want == 0 {
			c.fail("counts %q is %d, a recount gives %d", k, got, want)
		} else {
			seen++
		}
		return nil
	})
	if seen != len(c.counts) {
		c.fail("counts: %d of %d counters are missing", len(c.counts)-seen, len(c.counts))
	}
	totals := c.tx.Bucket(bucketTotals)
	for k, n := range c.finals {
		if got := getInt64(totals.Get([]byte(k))); got < n {
			c.fail("totals %q is %d, below the %d final tasks stored", k, got, n)
		}
	}
}

// history checks that each task's entries are numbered 0..HistoryLen-1 and
// that no entry outlives its task.
func (c *checker) history() {
	got := map[uuid.UUID]uint32{}
	_ = c.tx.Bucket(bucketHistory).ForEach(func(k, v []byte) error {
		if len(k) != 20 {
			c.fail("history: malformed key %x", k)
			return nil
		}
		id, seq := uuid.UUID(k[:16]), binary.BigEndian.Uint32(k[16:])
		if _, ok := c.lens[id]; !ok {
			c.fail("history: entry %d of missing task %s", seq, id)
			return nil
		}
		h, err := decodeHistory(v)
		switch {
		case err != nil:
			c.fail("history: task %s entry %d: decode: %v", id, seq, err)
		case seq != got[id] || h.Seq != seq:
			c.fail("history: task %s: entry %d (seq %d) out of order", id, seq, h.Seq)
		}
		got[id]++
		return nil
	})
	for id, n := range c.lens {
		if got[id] != n {
			c.fail("history: task %s has %d entries, HistoryLen %d", id, got[id], n)
		}
	}
}

// versions checks that every version decodes under its own key, and the
// schema version.
func (c *checker) versions() {
	_ = c.tx.Bucket(bucketVersions).ForEach(func(k, v []byte) error {
		ver, err := decodeVersion(v)
		if err != nil {
			c.fail("versions: %q: decode: %v", k, err)
		} else if !bytes.Equal(k, join(ver.Process, ver.Version)) {
			c.fail("versions: %q holds version %q of %q", k, ver.Version, ver.Process)
		}
		return nil
	})
	if v := getUint32(c.tx.Bucket(bucketMeta).Get(schemaKey)); v != schemaVersion {
		c.fail("meta: schema version %d, want %d", v, schemaVersion)
	}
}

// show prints an index key for a report; callback tokens are secrets.
func show(bucket, k []byte) string {
	if bytes.Equal(bucket, bucketTokens) {
		return "(a token)"
	}
	return fmt.Sprintf("%x", k)
}

package bolt

import (
	"bytes"
	"context"
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
// at each node; every task's history has HistoryLen entries numbered from 0;
// every operator action in a stored task's history has its audit entry (the
// entries of purged tasks stay, and are not flagged); jobs, their results and
// alarm crossings decode under their keys. It returns nil or every problem
// found (up to 20), joined.
//
// Check reads the whole file in one write transaction, holding commits back,
// and keeps every index key in memory: use it in tests and offline tools, not
// on a busy store.
func (db *DB) Check() error {
	if db.closed.Load() {
		return store.ErrClosed
	}
	if err := db.flushLog(context.Background()); err != nil {
		return fmt.Errorf("store: check: %w", err)
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
	c.audit()
	c.jobs()
	c.alarms()
	c.versions()
	return errors.Join(c.errs...)
}

// checker collects the problems Check finds.
type checker struct {
	tx      *bbolt.Tx
	errs    []error
	lens    map[uuid.UUID]uint32         // HistoryLen per task
	procs   map[uuid.UUID]string         // process per task
	audited map[string]store.AuditEntry  // audit key -> the entry the history implies
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
	c.lens, c.procs = map[uuid.UUID]uint32{}, map[uuid.UUID]string{}
	c.entries = map[string]map[string][]byte{}
	c.counts, c.finals = map[string]int64{}, map[string]int64{}
	for _, ix := range indexes {
		c.entries[string(ix.bucket)] = map[string][]byte{}
	}
	_ = c.tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
		var t *store.Task
		err := fmt.Errorf("key of %d bytes", len(k))
		if len(k) == len(uuid.UUID{}) {
			t, err = decodeStored(c.tx, uuid.UUID(k), v)
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
	// Every body belongs to a task stored split; the loop above found the
	// body of each of those.
	_ = c.tx.Bucket(bucketBodies).ForEach(func(k, _ []byte) error {
		if v := c.tx.Bucket(bucketTasks).Get(k); len(v) == 0 || v[0] != recordV2 {
			c.fail("bodies: %x belongs to no task stored split", k)
		}
		return nil
	})
}

// task records what one valid task implies.
func (c *checker) task(t *store.Task) {
	c.lens[t.ID], c.procs[t.ID] = t.HistoryLen, t.Process
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
	c.audited = map[string]store.AuditEntry{}
	// The backlog holds the later entries of its tasks (backlog.go), so
	// reading it after history visits each task's entries in order.
	for _, name := range [][]byte{bucketHistory, bucketBacklog} {
		_ = c.tx.Bucket(name).ForEach(func(k, v []byte) error {
			if len(k) != 20 {
				c.fail("%s: malformed key %x", name, k)
				return nil
			}
			id, seq := uuid.UUID(k[:16]), binary.BigEndian.Uint32(k[16:])
			if _, ok := c.lens[id]; !ok {
				c.fail("%s: entry %d of missing task %s", name, seq, id)
				return nil
			}
			h, err := decodeHistory(v)
			switch {
			case err != nil:
				c.fail("%s: task %s entry %d: decode: %v", name, id, seq, err)
			case seq != got[id] || h.Seq != seq:
				c.fail("%s: task %s: entry %d (seq %d) out of order", name, id, seq, h.Seq)
			case h.Audited():
				t := &store.Task{ID: id, Process: c.procs[id]}
				c.audited[string(auditKey(h.At, id, seq))] = store.NewAuditEntry(t, &h)
			}
			got[id]++
			return nil
		})
	}
	for id, n := range c.lens {
		if got[id] != n {
			c.fail("history: task %s has %d entries, HistoryLen %d", id, got[id], n)
		}
	}
}

// audit checks the audit log against the history: every operator action of
// a stored task has its entry, equal to it, and so has auditbytask. Entries
// of tasks no longer stored are the log outliving a purge, and are fine.
func (c *checker) audit() {
	byTask := c.tx.Bucket(bucketAuditByTask)
	seen := 0
	_ = c.tx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
		if len(k) != auditKeyLen {
			c.fail("audit: malformed key %x", k)
			return nil
		}
		a, err := decodeAudit(v)
		switch {
		case err != nil:
			c.fail("audit: entry %x: decode: %v", k, err)
			return nil
		case !bytes.Equal(k, auditKey(a.At, a.TaskID, a.Seq)):
			c.fail("audit: entry %x holds task %s entry %d at %v", k, a.TaskID, a.Seq, a.At)
		case byTask.Get(auditByTaskKey(k)) == nil:
			c.fail("audit: entry %x has no auditbytask entry", k)
		}
		if _, stored := c.lens[a.TaskID]; !stored {
			return nil
		}
		want, ok := c.audited[string(k)]
		switch {
		case !ok:
			c.fail("audit: entry %x of task %s matches no operator action in its history", k, a.TaskID)
		case !sameAudit(want, a):
			c.fail("audit: entry %x of task %s is %+v, the history says %+v", k, a.TaskID, a, want)
		default:
			seen++
		}
		return nil
	})
	if seen != len(c.audited) {
		c.fail("audit: %d of %d operator actions in the history have no audit entry", len(c.audited)-seen, len(c.audited))
	}
	audit := c.tx.Bucket(bucketAudit)
	_ = byTask.ForEach(func(k, _ []byte) error {
		if len(k) != auditKeyLen || audit.Get(auditKeyOf(k)) == nil {
			c.fail("auditbytask: entry %x names no audit entry", k)
		}
		return nil
	})
}

// sameAudit reports whether two audit entries are equal, times by Equal.
func sameAudit(a, b store.AuditEntry) bool {
	at := a.At
	a.At = b.At
	return a == b && at.Equal(b.At)
}

// jobs checks that every job decodes under its own id, and that every result
// belongs to a stored job and decodes under its task's id.
func (c *checker) jobs() {
	jobs := c.tx.Bucket(bucketJobs)
	_ = jobs.ForEach(func(k, v []byte) error {
		j, err := decodeJob(v)
		switch {
		case err != nil:
			c.fail("jobs: %x: decode: %v", k, err)
		case !bytes.Equal(k, j.ID[:]):
			c.fail("jobs: %x holds job %s", k, j.ID)
		case validateJob(j) != nil:
			c.fail("jobs: %v", validateJob(j))
		case j.Rev == 0:
			c.fail("jobs: job %s is at rev 0", j.ID)
		}
		return nil
	})
	_ = c.tx.Bucket(bucketJobResults).ForEach(func(k, v []byte) error {
		if len(k) != 32 {
			c.fail("jobresults: malformed key %x", k)
			return nil
		}
		r, err := decodeResult(v)
		switch {
		case err != nil:
			c.fail("jobresults: %x: decode: %v", k, err)
		case !bytes.Equal(k[16:], r.TaskID[:]):
			c.fail("jobresults: %x holds the result of task %s", k, r.TaskID)
		case jobs.Get(k[:16]) == nil:
			c.fail("jobresults: result of task %s belongs to missing job %x", r.TaskID, k[:16])
		}
		return nil
	})
}

// alarms checks that the alarm log decodes under its keys and that each
// node's state is its latest crossing.
func (c *checker) alarms() {
	type crossing struct {
		seq uint64
		raw []byte
	}
	latest := map[string]crossing{}
	_ = c.tx.Bucket(bucketAlarmLog).ForEach(func(k, v []byte) error {
		a, err := decodeAlarm(v)
		switch {
		case err != nil:
			c.fail("alarmlog: %x: decode: %v", k, err)
		case !bytes.Equal(k, alarmLogKey(&a)):
			c.fail("alarmlog: %x holds crossing %d of %q/%q", k, a.Seq, a.Process, a.Node)
		default:
			if key := string(join(a.Process, a.Node)); a.Seq > latest[key].seq {
				latest[key] = crossing{a.Seq, bytes.Clone(v)}
			}
		}
		return nil
	})
	seen := 0
	_ = c.tx.Bucket(bucketAlarms).ForEach(func(k, v []byte) error {
		if want, ok := latest[string(k)]; !ok || !bytes.Equal(want.raw, v) {
			c.fail("alarms: the state of %q is not the latest crossing in the log (crossing %d)", k, want.seq)
			return nil
		}
		seen++
		return nil
	})
	if seen != len(latest) {
		c.fail("alarms: %d of %d nodes in the alarm log have no state", len(latest)-seen, len(latest))
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

package bolt

import (
	"bytes"
	"encoding/binary"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/store"
)

// Bucket names. Every integer in a key is big-endian, so byte order is numeric
// order, and names are joined with a 0x00 separator, which names may not hold.
var (
	bucketTasks   = []byte("tasks")   // id -> a task's state record (schema 3 and older: its whole record)
	bucketBodies  = []byte("bodies")  // id -> a task's body record (encode.go)
	bucketHistory = []byte("history") // id + seq u32 -> encoded HistoryEntry
	// bucketBacklog holds history entries of tasks that large group
	// commits moved on, until the writer, idle, moves them into history
	// (see backlog.go); same keys and values.
	bucketBacklog = []byte("historybacklog")
	bucketRefs    = []byte("refs")   // process 0 ref -> id
	bucketTokens  = []byte("tokens") // token -> id
	bucketTimers  = []byte("timers") // unix-nano u64 + id -> empty
	// bucketRunnable held the ids of active tasks up to schema 2; the
	// "active" range of bystatus (now bystate) holds the same, so Open
	// drops it.
	bucketRunnable = []byte("runnable")
	// bucketByNode (process 0 node 0 id) and bucketByStatus (status 0 id)
	// listed the tasks up to schema 5; bystate holds both, so Open builds
	// it from the tasks and drops them.
	bucketByNode   = []byte("bynode")
	bucketByStatus = []byte("bystatus")
	bucketByState  = []byte("bystate")  // status 0 process 0 node 0 id -> empty
	bucketCounts   = []byte("counts")   // process 0 node 0 status -> i64, non-final tasks now
	bucketTotals   = []byte("totals")   // process 0 node -> i64, arrivals into a final status
	bucketFinished = []byte("finished") // finish unix-nano u64 + id -> empty
	bucketVersions = []byte("versions") // process 0 version -> JSON Version
	bucketMeta     = []byte("meta")     // "schema" -> u32

	// The audit log outlives the tasks: Purge leaves both buckets alone.
	bucketAudit       = []byte("audit")       // at unix-nano u64 + task id + seq u32 -> JSON AuditEntry
	bucketAuditByTask = []byte("auditbytask") // task id + at unix-nano u64 + seq u32 -> empty
	bucketJobs        = []byte("jobs")        // job id -> JSON Job
	bucketJobResults  = []byte("jobresults")  // job id + task id -> JSON JobResult
	bucketAlarms      = []byte("alarms")      // process 0 node -> JSON AlarmCrossing, the latest
	bucketAlarmLog    = []byte("alarmlog")    // at unix-nano u64 + process 0 node 0 seq u64 -> JSON AlarmCrossing

	allBuckets = [][]byte{
		bucketTasks, bucketBodies, bucketHistory, bucketBacklog, bucketRefs, bucketTokens, bucketTimers,
		bucketByState, bucketCounts, bucketTotals,
		bucketFinished, bucketVersions, bucketMeta,
		bucketAudit, bucketAuditByTask, bucketJobs, bucketJobResults, bucketAlarms, bucketAlarmLog,
	}
)

// schemaKey holds the schema version in the meta bucket; schemaVersion is the
// one this code writes and reads.
var schemaKey = []byte("schema")

// Version 2 added the audit log, jobs and alarms; Open upgrades a version 1
// file by creating their buckets and filling the audit log from the history.
// Version 3 dropped the runnable index (bystatus's "active" range is the
// same set, and keeping both cost two writes per task).
// Version 4 split a task's record into its state (tasks) and its body
// (bodies); records of older files are read as they are and written split
// on their task's next commit, so the upgrade only creates the bucket.
// Version 5 added the history backlog (backlog.go); the upgrade only creates
// the bucket, and a build that knows nothing of it refuses the file.
// Version 6 merged the bynode and bystatus indexes into bystate, keyed by
// status, process, node and id: a move that changes a task's node and
// status (a timeout, a reply) updates one list index instead of two. The
// upgrade builds bystate from the tasks and drops the two.
const schemaVersion uint32 = 6

// empty is the value of set-like index entries.
var empty = []byte{}

// join concatenates parts with a 0x00 separator.
func join(parts ...string) []byte {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

// split undoes join.
func split(k []byte) []string {
	parts := bytes.Split(k, []byte{0})
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = string(p)
	}
	return s
}

// withID returns prefix followed by id.
func withID(prefix []byte, id uuid.UUID) []byte {
	k := make([]byte, 0, len(prefix)+len(id))
	return append(append(k, prefix...), id[:]...)
}

// idAt reads the id that ends key k.
func idAt(k []byte) uuid.UUID {
	var id uuid.UUID
	copy(id[:], k[len(k)-len(id):])
	return id
}

// nanos converts t to unsigned unix nanoseconds for a time key, clamping times
// before 1970 to 0 and after 2262 to the largest value, so keys always sort.
func nanos(t time.Time) uint64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

// timeKey returns the big-endian nanoseconds of t followed by id.
func timeKey(t time.Time, id uuid.UUID) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), nanos(t))
	return append(k, id[:]...)
}

// keyTime reads the time at the start of a timeKey.
func keyTime(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC()
}

// keyNanos reads the nanoseconds at the start of a timeKey.
func keyNanos(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// historyKey is the key of a task's history entry seq.
func historyKey(id uuid.UUID, seq uint32) []byte {
	return binary.BigEndian.AppendUint32(withID(nil, id), seq)
}

// auditKey is the audit bucket's key of a task's history entry.
func auditKey(at time.Time, id uuid.UUID, seq uint32) []byte {
	return binary.BigEndian.AppendUint32(timeKey(at, id), seq)
}

// auditByTaskKey is the auditbytask key of an audit key.
func auditByTaskKey(ak []byte) []byte {
	k := make([]byte, 0, len(ak))
	k = append(k, ak[8:24]...)
	k = append(k, ak[:8]...)
	return append(k, ak[24:]...)
}

// auditKeyOf undoes auditByTaskKey.
func auditKeyOf(tk []byte) []byte {
	k := make([]byte, 0, len(tk))
	k = append(k, tk[16:24]...)
	k = append(k, tk[:16]...)
	return append(k, tk[24:]...)
}

// auditKeyLen is the length of audit and auditbytask keys.
const auditKeyLen = 8 + 16 + 4

// alarmLogKey is the alarmlog key of a crossing.
func alarmLogKey(c *store.AlarmCrossing) []byte {
	k := binary.BigEndian.AppendUint64(nil, nanos(c.At))
	k = append(append(k, join(c.Process, c.Node)...), 0)
	return binary.BigEndian.AppendUint64(k, c.Seq)
}

// The index keys of a task. Each returns nil when the task has no entry in
// that index, so the diff in commit.go compares keys and nothing else.

func refKey(t *store.Task) []byte {
	if t.Ref == "" {
		return nil
	}
	return join(t.Process, t.Ref)
}

func tokenKey(t *store.Task) []byte {
	if t.Token == "" {
		return nil
	}
	return []byte(t.Token)
}

func timerKey(t *store.Task) []byte {
	if t.TimerAt.IsZero() {
		return nil
	}
	return timeKey(t.TimerAt, t.ID)
}

func byStateKey(t *store.Task) []byte {
	return withID(statePrefix(t.Status, t.Process, t.Node), t.ID)
}

func finishedKey(t *store.Task) []byte {
	if !t.Status.Final() {
		return nil
	}
	return timeKey(t.Finished, t.ID)
}

// countKey is the counts entry of a non-final task, nil for a final one.
func countKey(t *store.Task) []byte {
	if t.Status.Final() {
		return nil
	}
	return join(t.Process, t.Node, string(t.Status))
}

// totalKey is the totals entry of a task in a final status, nil otherwise.
func totalKey(t *store.Task) []byte {
	if !t.Status.Final() {
		return nil
	}
	return join(t.Process, t.Node)
}

// statePrefix is the bystate prefix of the tasks with status s in one node.
func statePrefix(s store.Status, process, node string) []byte {
	return append(join(string(s), process, node), 0)
}

// statusPrefix is the bystate prefix of the tasks with status s (of process,
// unless it is ""): the ranges of their nodes follow it.
func statusPrefix(s store.Status, process string) []byte {
	if process == "" {
		return append([]byte(s), 0)
	}
	return append(join(string(s), process), 0)
}

// upperBound returns the smallest key greater than every key with prefix, or
// nil when there is none (the prefix is empty or all 0xff).
func upperBound(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] < 0xff {
			u := bytes.Clone(prefix[:i+1])
			u[i]++
			return u
		}
	}
	return nil
}

// putInt64 and getInt64 encode the counters.
func putInt64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func getInt64(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func putUint32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func getUint32(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

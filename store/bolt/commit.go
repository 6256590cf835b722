package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/store"
)

// maxName bounds Process, Node, Ref and Token, so every index key fits
// bbolt's key size limit (32 KiB) and a Put can never fail on it.
const maxName = 4096

// Commit applies changes in one transaction, grouped with concurrent commits;
// see store.Store. On success it sets each change's Task.Rev to Rev+1, and
// Task.Finished to the time of the call when the task reached a final status
// without one. The store reads the tasks until Commit returns: don't change
// them meanwhile. Changes that break the contract (a history Seq that does not
// continue HistoryLen, a changed Process or Ref, a name with a 0x00 byte, a
// token held by another task, ...) fail with a conveyor.EInvalid or
// conveyor.EConflict *conveyor.Error and write nothing.
//
// The records are validated and encoded here, in the caller's goroutine,
// before they are queued: the writer, which every commit waits for, only
// checks them against the stored tasks and writes.
func (db *DB) Commit(ctx context.Context, changes ...store.Change) error {
	if len(changes) == 0 {
		return nil
	}
	now := db.clock().Round(0)
	ws := make([]write, len(changes))
	for i, c := range changes {
		w, err := encodeChange(c, now)
		if err != nil {
			return err
		}
		ws[i] = w
	}
	var err error
	if db.lg != nil {
		err = db.logCommit(ctx, changes, ws)
	} else {
		err = db.submit(ctx, len(changes), func(tx *bbolt.Tx) (func() error, error) {
			p, err := planCommit(tx, changes, ws, &db.later, nil)
			if err != nil {
				return nil, err
			}
			return func() error { return p.apply(&db.later) }, nil
		})
	}
	if err != nil {
		return err
	}
	for i, c := range changes {
		c.Task.Rev, c.Task.Finished = ws[i].new.Rev, ws[i].new.Finished
	}
	return nil
}

// encodeChange validates what a change can show on its own and encodes its
// record and history: the store's copy of the task, at its next revision.
func encodeChange(c store.Change, now time.Time) (write, error) {
	if c.Task == nil {
		return write{}, invalid("store: a change has no task")
	}
	n := *c.Task // the store's copy; it is only read and encoded
	if err := validateTask(&n); err != nil {
		return write{}, err
	}
	n.Rev = c.Rev + 1
	if n.Status.Final() && n.Finished.IsZero() {
		n.Finished = now
	}
	return encodeWrite(&n, c.History)
}

// write moves one task from old to new; old is nil for a new task, new is nil
// for a purged one.
type write struct {
	old, new *store.Task
	// state and body are new's records, encoded; sameBody is set by the
	// planner when the stored body is byte for byte the new one, which is
	// then not written again.
	state, body []byte
	sameBody    bool
	history     [][]byte // the appended entries, encoded, from old.HistoryLen on
	audit       []kv     // the audit entries of the appended operator actions
}

// kv is a key and its value.
type kv struct{ k, v []byte }

// id is the task the write is about.
func (w *write) id() uuid.UUID {
	if w.new != nil {
		return w.new.ID
	}
	return w.old.ID
}

// plan is a request's writes and the counter deltas they imply, validated
// and ready to apply.
type plan struct {
	writes []write
	deltas []delta
}

// delta adds d to the counter key of counts (or of totals).
type delta struct {
	key   []byte
	d     int64
	total bool
}

func newPlan() *plan { return &plan{} }

// add appends w and its counter deltas.
func (p *plan) add(w write) {
	p.writes = append(p.writes, w)
	if k := keyOf(w.old, countKey); k != nil {
		p.deltas = append(p.deltas, delta{key: k, d: -1})
	}
	if k := keyOf(w.new, countKey); k != nil {
		p.deltas = append(p.deltas, delta{key: k, d: 1})
	}
	if k := keyOf(w.new, totalKey); k != nil && (w.old == nil || !w.old.Status.Final()) {
		p.deltas = append(p.deltas, delta{key: k, d: 1, total: true})
	}
}

// checkCounts fails when a counter would go below zero, counting what the
// transaction's earlier requests added (later): the counts index then
// disagrees with the tasks, and writing would hide it.
func (p *plan) checkCounts(tx *bbolt.Tx, later *deferred) error {
	sums := map[string]int64{}
	for _, x := range p.deltas {
		if !x.total {
			sums[string(x.key)] += x.d
		}
	}
	b := tx.Bucket(bucketCounts)
	for k, d := range sums {
		if d < 0 && getInt64(b.Get([]byte(k)))+later.counts[k]+d < 0 {
			return internal("store: counter %q would go below zero: the counts index is corrupt (run Check)", k)
		}
	}
	return nil
}

// apply writes the plan. It fails only on errors bbolt reports, which the
// validation that built the plan rules out.
func (p *plan) apply(later *deferred) error {
	wb := later.buckets()
	for i := range p.writes {
		if err := wb.apply(&p.writes[i], later); err != nil {
			return err
		}
	}
	later.count(p.deltas)
	return nil
}

// planner checks the changes of one request against the stored tasks.
// Besides the transaction it remembers what earlier changes of the same
// request claim, so two of them cannot take one ref or token.
type planner struct {
	tx     *bbolt.Tx
	later  *deferred // for its cursors
	plan   *plan
	ids    map[uuid.UUID]bool
	refs   map[string]*store.Task // ref key -> new task claiming it
	tokens map[string]uuid.UUID   // token -> claiming task, uuid.Nil when released
	// st, for the logger, holds the writes logged (or staged) but not in
	// tx yet, which take precedence over tx.
	st *staged
}

// planCommit checks changes, encoded as ws by encodeChange, against tx and
// returns their plan, or the first change's error. With st (the logger's),
// it checks them against the overlay and the batch's staged writes over tx,
// a read transaction, and leaves the counters to the writer.
func planCommit(tx *bbolt.Tx, changes []store.Change, ws []write, later *deferred, st *staged) (*plan, error) {
	pl := &planner{
		tx:    tx,
		later: later,
		plan:  newPlan(),
		st:    st,
	}
	if len(changes) > 1 {
		// What one change claims, the next ones of the same request must see.
		pl.ids, pl.refs, pl.tokens = map[uuid.UUID]bool{}, map[string]*store.Task{}, map[string]uuid.UUID{}
	}
	for i, c := range changes {
		if err := pl.change(c, ws[i]); err != nil {
			return nil, err
		}
	}
	if st == nil {
		if err := pl.plan.checkCounts(tx, later); err != nil {
			return nil, err
		}
	}
	return pl.plan, nil
}

// change checks one change against the stored task and adds its write to the
// plan. Only the stored task's header is decoded: the indexes and the checks
// need its names, status, times and counters, not its data.
func (pl *planner) change(c store.Change, w write) error {
	n := w.new
	if pl.ids[n.ID] {
		return invalid("store: task %s: changed twice in one commit", n.ID)
	}
	if pl.ids != nil {
		pl.ids[n.ID] = true
	}
	old, same, err := pl.stored(n, w.body)
	if err != nil {
		return err
	}
	w.sameBody = same
	if err := store.CheckRev(old, c); err != nil {
		return err
	}
	if err := pl.checkRef(old, n); err != nil {
		return err
	}
	if err := store.CheckHistory(old, n, c.History); err != nil {
		return err
	}
	if err := pl.claimToken(old, n); err != nil {
		return err
	}
	w.old = old
	pl.plan.add(w)
	return nil
}

// stored returns the header of the stored task n changes (nil for a new
// task), and whether its stored body is body. The body is compared, not
// decoded, when it is the same: its fields (names, ref, token, marks) are
// then n's.
func (pl *planner) stored(n *store.Task, body []byte) (old *store.Task, same bool, err error) {
	var v, stored []byte
	var e *ovTask
	if pl.st != nil {
		e = pl.st.task(n.ID)
	}
	if e != nil {
		v, stored = e.state, e.body
	} else {
		v, _ = pl.later.get(curTasks, n.ID[:])
	}
	switch {
	case v == nil:
		return nil, false, nil
	case len(v) == 0 || v[0] != recordV2:
		old, err = decodeTaskRecord(v, false) // a whole record of schema 3 (or damage)
	default:
		if old, err = decodeState(n.ID, v); err != nil {
			break
		}
		if e == nil {
			stored, _ = pl.later.get(curBodies, n.ID[:])
		}
		if same = bytes.Equal(stored, body); same {
			old.Process, old.Version, old.Ref, old.InputHash, old.Token, old.Created, old.Marks =
				n.Process, n.Version, n.Ref, n.InputHash, n.Token, n.Created, n.Marks
			return old, true, nil
		}
		err = decodeStoredBody(old, stored, false)
	}
	if err != nil {
		return nil, false, internal("store: task %s: decode: %v", n.ID, err)
	}
	return old, false, nil
}

// logged returns the logged (or staged) write of the task an index entry's
// value names, nil when there is none or no overlay.
func (pl *planner) logged(v []byte) *ovTask {
	if pl.st == nil || len(v) != len(uuid.UUID{}) {
		return nil
	}
	return pl.st.task(idAt(v))
}

// validateTask checks what the indexes need of a record.
func validateTask(t *store.Task) error {
	switch {
	case t.ID == uuid.Nil:
		return invalid("store: a task has no id")
	case t.Process == "":
		return invalid("store: task %s: no process", t.ID)
	case !t.Status.Valid():
		return invalid("store: task %s: unknown status %q", t.ID, t.Status)
	}
	for _, f := range []struct{ name, v string }{
		{"process", t.Process}, {"node", t.Node}, {"ref", t.Ref}, {"token", t.Token},
	} {
		if len(f.v) > maxName {
			return invalid("store: task %s: %s is longer than %d bytes", t.ID, f.name, maxName)
		}
		if f.name != "token" && strings.IndexByte(f.v, 0) >= 0 {
			return invalid("store: task %s: %s holds a 0x00 byte", t.ID, f.name)
		}
	}
	return nil
}

// checkRef keeps a task's (process, ref) fixed and unique.
func (pl *planner) checkRef(old, n *store.Task) error {
	if old != nil {
		if old.Process != n.Process || old.Ref != n.Ref {
			return invalid("store: task %s: process and ref never change (stored %q/%q, new %q/%q)",
				n.ID, old.Process, old.Ref, n.Process, n.Ref)
		}
		return nil
	}
	k := refKey(n)
	if k == nil {
		return nil
	}
	if t, ok := pl.refs[string(k)]; ok {
		return &store.RefTakenError{Existing: t.Clone()}
	}
	if pl.st != nil {
		if id, ok := pl.st.ref(string(k)); ok {
			t, err := pl.st.task(id).task(id)
			if err != nil {
				return err
			}
			return &store.RefTakenError{Existing: t}
		}
	}
	if v := pl.tx.Bucket(bucketRefs).Get(k); v != nil {
		var t *store.Task
		var err error
		if e := pl.logged(v); e != nil {
			t, err = e.task(idAt(v))
		} else {
			t, err = loadIndexed(pl.tx, "refs", v)
		}
		if err != nil {
			return err
		}
		return &store.RefTakenError{Existing: t}
	}
	if pl.refs != nil {
		pl.refs[string(k)] = n
	}
	return nil
}

// claimToken keeps callback tokens unique: a token another task holds cannot
// be taken. A token released earlier in the same request can.
func (pl *planner) claimToken(old, n *store.Task) error {
	if old != nil && old.Token == n.Token {
		return nil
	}
	if old != nil && old.Token != "" && pl.tokens != nil {
		pl.tokens[old.Token] = uuid.Nil
	}
	if n.Token == "" {
		return nil
	}
	holder, seen := pl.tokens[n.Token]
	if !seen && pl.st != nil {
		holder, seen = pl.st.token(n.Token)
	}
	if !seen {
		if v := pl.tx.Bucket(bucketTokens).Get([]byte(n.Token)); v != nil {
			holder = idAt(v)
			if e := pl.logged(v); e != nil && e.token != n.Token {
				holder = uuid.Nil // a logged write released it
			}
		}
	}
	if holder != uuid.Nil && holder != n.ID {
		return conveyor.Errorf(conveyor.EConflict, "store: task %s: its callback token is held by task %s", n.ID, holder)
	}
	if pl.tokens != nil {
		pl.tokens[n.Token] = n.ID
	}
	return nil
}

// encodeWrite encodes the new record and the appended history; the old record
// is the planner's to fill in.
func encodeWrite(n *store.Task, entries []store.HistoryEntry) (write, error) {
	w := write{new: n}
	var err error
	if w.state, w.body, err = encodeTask(n); err != nil {
		return write{}, invalid("store: task %s: encode: %v", n.ID, err)
	}
	for i := range entries {
		h := &entries[i]
		b, err := encodeHistory(h)
		if err != nil {
			return write{}, invalid("store: task %s: encode history entry %d: %v", n.ID, i, err)
		}
		w.history = append(w.history, b)
		if h.Audited() {
			a := store.NewAuditEntry(n, h)
			if b, err = encodeAudit(&a); err != nil {
				return write{}, invalid("store: task %s: encode audit entry %d: %v", n.ID, i, err)
			}
			w.audit = append(w.audit, kv{auditKey(h.At, n.ID, h.Seq), b})
		}
	}
	return w, nil
}

// index is one of the indexes derived from a task: key gives the task's
// entry (nil for none). The value is the task id when byID, else empty.
// same reports whether two versions of one task have the same key, from
// the fields the key is made of, so that the writer builds no key for an
// entry that stays.
type index struct {
	bucket []byte
	key    func(*store.Task) []byte
	byID   bool
	same   func(a, b *store.Task) bool
}

// indexes are the per-task indexes; the counters are kept by plan.
var indexes = []index{
	{bucketRefs, refKey, true, func(a, b *store.Task) bool { return a.Process == b.Process && a.Ref == b.Ref }},
	{bucketTokens, tokenKey, true, func(a, b *store.Task) bool { return a.Token == b.Token }},
	{bucketTimers, timerKey, false, func(a, b *store.Task) bool {
		return nanos(a.TimerAt) == nanos(b.TimerAt) && a.TimerAt.IsZero() == b.TimerAt.IsZero()
	}},
	{bucketByState, byStateKey, false, func(a, b *store.Task) bool {
		return a.Status == b.Status && a.Process == b.Process && a.Node == b.Node
	}},
	{bucketFinished, finishedKey, false, func(a, b *store.Task) bool {
		return a.Status.Final() == b.Status.Final() && (!a.Status.Final() || nanos(a.Finished) == nanos(b.Finished))
	}},
}

// keyOf returns t's key, nil when t is nil.
func keyOf(t *store.Task, key func(*store.Task) []byte) []byte {
	if t == nil {
		return nil
	}
	return key(t)
}

// writeBuckets are the buckets a plan writes, looked up once per apply
// rather than once per write and index.
type writeBuckets struct {
	tasks, bodies, history, backlog, audit, auditByTask *bbolt.Bucket
	indexes                                             []*bbolt.Bucket // in the order of indexes
}

func openWrite(tx *bbolt.Tx) *writeBuckets {
	wb := &writeBuckets{
		tasks: writable(tx, bucketTasks), bodies: writable(tx, bucketBodies), history: writable(tx, bucketHistory),
		backlog: writable(tx, bucketBacklog), audit: writable(tx, bucketAudit), auditByTask: writable(tx, bucketAuditByTask),
		indexes: make([]*bbolt.Bucket, len(indexes)),
	}
	for i, ix := range indexes {
		wb.indexes[i] = writable(tx, ix.bucket)
	}
	return wb
}

// apply writes the record, its history and the index entries that differ
// between old and new.
//
// The entries of the indexes no later request of the batch reads (timers,
// bystate, finished) are queued in later instead, and written at
// the end of the transaction in key order: a burst moves thousands of tasks
// per transaction, and writing each index's entries in order keeps bbolt's
// descent through the tree on pages it has just visited.
func (wb *writeBuckets) apply(w *write, later *deferred) error {
	id := w.id()
	if err := wb.writeRecord(w, id, later); err != nil {
		return err
	}
	for i, ix := range indexes {
		if w.old != nil && w.new != nil && ix.same(w.old, w.new) {
			continue
		}
		ok, nk := keyOf(w.old, ix.key), keyOf(w.new, ix.key)
		if !ix.byID {
			later.move(i, ok, nk)
			continue
		}
		if err := moveEntry(wb.indexes[i], ix, ok, nk, id); err != nil {
			return err
		}
	}
	return nil
}

// deferred is what the writer's current transaction has applied but leaves
// for its end: the entries of set-like indexes (whose value is empty), which
// flush writes in key order, and the counter deltas, summed over the
// transaction so that a burst of moves between the same two nodes updates
// each counter once instead of once per task. It also keeps the
// transaction's bucket handles. Only the writer goroutine uses it.
type deferred struct {
	tx *bbolt.Tx
	// toBacklog sends the history appended to existing tasks to the backlog
	// instead of the history bucket (backlog.go); backlogged counts them.
	// checkBacklog, set while the backlog may hold entries, sends there too
	// the history of a task that has entries in it, so that a task's
	// entries in the backlog are always its latest.
	toBacklog, checkBacklog bool
	backlogged              int
	wb                      *writeBuckets
	ops                     []laterOp
	counts, totals          map[string]int64
	// cursors are reused for the transaction's reads and deletes, which
	// through Bucket.Get and Bucket.Delete would allocate a cursor and its
	// stack each: the tasks' and bodies' cursors (curTasks, curBodies),
	// then one per index, in the order of indexes.
	cursors []*bbolt.Cursor
}

// The first cursors of deferred.
const (
	curTasks = iota
	curBodies
	curIndexes
)

// cursor returns the transaction's cursor i (see deferred.cursors).
func (l *deferred) cursor(i int) *bbolt.Cursor {
	if l.cursors[i] == nil {
		switch i {
		case curTasks:
			l.cursors[i] = l.tx.Bucket(bucketTasks).Cursor()
		case curBodies:
			l.cursors[i] = l.tx.Bucket(bucketBodies).Cursor()
		default:
			l.cursors[i] = l.buckets().indexes[i-curIndexes].Cursor()
		}
	}
	return l.cursors[i]
}

// get is Bucket.Get through cursor i; ok tells a key with an empty value
// from a missing one. Seek starts from the bucket's root, so writes between
// two calls do not disturb it.
func (l *deferred) get(i int, key []byte) (v []byte, ok bool) {
	k, v := l.cursor(i).Seek(key)
	if !bytes.Equal(k, key) {
		return nil, false
	}
	return v, true
}

// laterOp deletes (put false) or puts the entry key of the ix-th index.
type laterOp struct {
	ix, seq int // seq orders the operations on one key
	key     []byte
	put     bool
}

// reset starts (or starts again) the transaction tx with nothing pending.
func (l *deferred) reset(tx *bbolt.Tx, toBacklog, checkBacklog bool) {
	l.tx, l.wb, l.ops = tx, nil, l.ops[:0]
	if l.cursors == nil {
		l.cursors = make([]*bbolt.Cursor, curIndexes+len(indexes))
	}
	clear(l.cursors)
	l.toBacklog, l.checkBacklog, l.backlogged = toBacklog, checkBacklog, 0
	if l.counts == nil {
		l.counts, l.totals = map[string]int64{}, map[string]int64{}
	}
	clear(l.counts)
	clear(l.totals)
}

// buckets returns the transaction's buckets, looked up once.
func (l *deferred) buckets() *writeBuckets {
	if l.wb == nil {
		l.wb = openWrite(l.tx)
	}
	return l.wb
}

// count adds a request's counter deltas.
func (l *deferred) count(deltas []delta) {
	for _, x := range deltas {
		if x.total {
			l.totals[string(x.key)] += x.d
		} else {
			l.counts[string(x.key)] += x.d
		}
	}
}

// move queues what replaces the entry old by new (either may be nil).
func (l *deferred) move(ix int, old, new []byte) {
	if bytes.Equal(old, new) {
		return
	}
	if old != nil {
		l.ops = append(l.ops, laterOp{ix: ix, seq: len(l.ops), key: old})
	}
	if new != nil {
		l.ops = append(l.ops, laterOp{ix: ix, seq: len(l.ops), key: new, put: true})
	}
}

// flush writes the queued entries, index by index in key order; two
// operations on one key (a task moved twice in one transaction) keep their
// order.
func (l *deferred) flush() error {
	slices.SortFunc(l.ops, func(a, b laterOp) int {
		if a.ix != b.ix {
			return a.ix - b.ix
		}
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	for _, op := range l.ops {
		var err error
		if op.put {
			err = l.buckets().indexes[op.ix].Put(op.key, empty)
		} else if _, ok := l.get(curIndexes+op.ix, op.key); ok {
			err = l.cursor(curIndexes + op.ix).Delete() // the entries are empty values, never nested buckets
		}
		if err != nil {
			return err
		}
	}
	l.ops = l.ops[:0]
	if err := addCounters(l.tx.Bucket(bucketCounts), l.counts); err != nil {
		return err
	}
	return addCounters(l.tx.Bucket(bucketTotals), l.totals)
}

// writeRecord puts (or for a purge deletes) the task and its history, the
// history of an existing task in the backlog when later says so.
func (wb *writeBuckets) writeRecord(w *write, id uuid.UUID, later *deferred) error {
	tasks, history := wb.tasks, wb.history
	if w.new == nil {
		if err := tasks.Delete(id[:]); err != nil {
			return err
		}
		if err := wb.bodies.Delete(id[:]); err != nil {
			return err
		}
		if err := deletePrefix(wb.backlog, id[:]); err != nil {
			return err
		}
		return deletePrefix(history, id[:])
	}
	if err := tasks.Put(id[:], w.state); err != nil {
		return err
	}
	if !w.sameBody {
		if err := wb.bodies.Put(id[:], w.body); err != nil {
			return err
		}
	}
	var base uint32
	if w.old != nil {
		base = w.old.HistoryLen
		if later.toBacklog || later.checkBacklog && hasPrefix(wb.backlog, id[:]) {
			history = wb.backlog
			later.backlogged += len(w.history)
		}
	}
	for i, h := range w.history {
		if err := history.Put(historyKey(id, base+uint32(i)), h); err != nil {
			return err
		}
	}
	return putAudit(wb.audit, wb.auditByTask, w.audit)
}

// appendFill is how full bbolt packs the pages of a bucket whose keys mostly
// arrive in ascending order. bbolt splits a page it writes at FillPercent,
// 50 % by default, which suits random keys; keys that arrive in order only
// ever land on the last page of their range, so every page left behind
// would stay half empty for good and the file (and the page cache the map
// pins) twice the size it needs. 10 % stays free for records that grow.
const appendFill = 0.9

// appendOrdered are the buckets whose keys arrive mostly in ascending order:
// UUIDv7 task ids (created in time order), a task's history after its id,
// index entries after a prefix, times, and callback tokens (the engine puts
// the creation time in front of their random part). refs and timers have
// keys in no useful order and keep bbolt's default.
var appendOrdered = map[string]bool{
	string(bucketTasks): true, string(bucketBodies): true, string(bucketHistory): true,
	string(bucketTokens): true, string(bucketByState): true, string(bucketFinished): true,
	string(bucketAudit): true, string(bucketAuditByTask): true,
}

// writable returns a bucket of a write transaction, with its fill set for the
// order in which its keys arrive. FillPercent belongs to the bucket handle,
// so every write transaction sets it again.
func writable(tx *bbolt.Tx, name []byte) *bbolt.Bucket {
	b := tx.Bucket(name)
	if appendOrdered[string(name)] {
		b.FillPercent = appendFill
	}
	return b
}

// putAudit writes audit entries and their auditbytask mirrors.
func putAudit(audit, byTask *bbolt.Bucket, entries []kv) error {
	for _, a := range entries {
		if err := audit.Put(a.k, a.v); err != nil {
			return err
		}
		if err := byTask.Put(auditByTaskKey(a.k), empty); err != nil {
			return err
		}
	}
	return nil
}

// moveEntry replaces old's entry in ix by new's when they differ. An entry
// that holds an id is deleted only while it still names this task.
func moveEntry(b *bbolt.Bucket, ix index, ok, nk []byte, id uuid.UUID) error {
	if bytes.Equal(ok, nk) {
		return nil
	}
	if ok != nil && (!ix.byID || bytes.Equal(b.Get(ok), id[:])) {
		if err := b.Delete(ok); err != nil {
			return err
		}
	}
	if nk == nil {
		return nil
	}
	v := empty
	if ix.byID {
		v = id[:]
	}
	return b.Put(nk, v)
}

// addCounters adds deltas to the counters in b, deleting those that reach 0.
func addCounters(b *bbolt.Bucket, deltas map[string]int64) error {
	for k, d := range deltas {
		if d == 0 {
			continue
		}
		key := []byte(k)
		v := getInt64(b.Get(key)) + d
		var err error
		if v == 0 {
			err = b.Delete(key)
		} else {
			err = b.Put(key, putInt64(v))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// hasPrefix reports whether b holds a key with prefix.
func hasPrefix(b *bbolt.Bucket, prefix []byte) bool {
	k, _ := b.Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// deletePrefix deletes every key with prefix, collecting them first because
// deleting under a cursor skips keys.
func deletePrefix(b *bbolt.Bucket, prefix []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// loadTask returns the stored task with id, or nil when there is none.
func loadTask(tx *bbolt.Tx, id uuid.UUID) (*store.Task, error) {
	v := tx.Bucket(bucketTasks).Get(id[:])
	if v == nil {
		return nil, nil
	}
	t, err := decodeStored(tx, id, v)
	if err != nil {
		return nil, internal("store: task %s: decode: %v", id, err)
	}
	return t, nil
}

// decodeStored decodes the whole task whose tasks-bucket value is v: a
// state record and the body stored beside it, or a whole record of schema 3
// or older.
func decodeStored(tx *bbolt.Tx, id uuid.UUID, v []byte) (*store.Task, error) {
	return decodeRecord(tx, id, v, true)
}

// decodeHeader decodes the task whose tasks-bucket value is v without its
// data: its names, status, times and counters.
func decodeHeader(tx *bbolt.Tx, id uuid.UUID, v []byte) (*store.Task, error) {
	return decodeRecord(tx, id, v, false)
}

// decodeRecord is decodeStored, or decodeHeader unless full.
func decodeRecord(tx *bbolt.Tx, id uuid.UUID, v []byte, full bool) (*store.Task, error) {
	if len(v) == 0 || v[0] != recordV2 {
		t, err := decodeTaskRecord(v, full)
		if err == nil && t.ID != id {
			err = fmt.Errorf("the record holds task %s", t.ID)
		}
		return t, err
	}
	t, err := decodeState(id, v)
	if err != nil {
		return nil, err
	}
	return t, decodeStoredBody(t, tx.Bucket(bucketBodies).Get(id[:]), full)
}

// decodeStoredBody decodes a stored body into t; a missing one is damage.
func decodeStoredBody(t *store.Task, body []byte, full bool) error {
	if body == nil {
		return errors.New("the task's body record is missing")
	}
	if err := decodeBody(t, body, full); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

// loadIndexed returns the task an index entry's value names; a missing task
// means the index is corrupt.
func loadIndexed(tx *bbolt.Tx, index string, v []byte) (*store.Task, error) {
	if len(v) != len(uuid.UUID{}) {
		return nil, internal("store: %s index holds a malformed id (run Check)", index)
	}
	id := idAt(v)
	t, err := loadTask(tx, id)
	if err == nil && t == nil {
		err = internal("store: %s index names missing task %s (run Check)", index, id)
	}
	return t, err
}

// invalid is the error of a change or argument that breaks the contract.
func invalid(format string, args ...any) error {
	return conveyor.Errorf(conveyor.EInvalid, format, args...)
}

// internal is the error of a store whose data disagrees with itself: a bug
// or a damaged file.
func internal(format string, args ...any) error {
	return conveyor.Errorf(conveyor.EInternal, format, args...)
}

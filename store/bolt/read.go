package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// List page sizes.
const (
	defaultPage = 50
	maxPage     = 1000
)

// view runs fn in a read-only transaction. fn must copy what it keeps: byte
// slices from bbolt are only valid inside the transaction.
func (db *DB) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.closed.Load() {
		return store.ErrClosed
	}
	return viewErr(db.bolt.View(fn))
}

// Task returns the task with id, or store.ErrNotFound.
func (db *DB) Task(ctx context.Context, id uuid.UUID) (*store.Task, error) {
	if ov := db.overlay(); ov != nil {
		defer ov.mu.RUnlock()
		if e := ov.tasks[id]; e != nil {
			return e.task(id)
		}
	}
	var t *store.Task
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		t, err = loadTask(tx, id)
		if err == nil && t == nil {
			err = store.ErrNotFound
		}
		return err
	})
	return t, err
}

// Tasks returns the tasks with the given ids, in the order of ids (nil for
// an id with no task), from one read transaction; see store.BatchReader. It
// reads them in id order with one cursor per bucket, so that tasks stored
// side by side share their pages' trips through memory: a burst of timeouts
// due at one moment is a run of ids.
func (db *DB) Tasks(ctx context.Context, ids []uuid.UUID) ([]*store.Task, error) {
	order := make([]int, len(ids))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(ids[a][:], ids[b][:]) })
	ts := make([]*store.Task, len(ids))
	ov := db.overlay()
	if ov != nil {
		defer ov.mu.RUnlock()
	}
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		tasks, bodies := tx.Bucket(bucketTasks).Cursor(), tx.Bucket(bucketBodies).Cursor()
		for _, i := range order {
			id := ids[i]
			if ov != nil {
				if e := ov.tasks[id]; e != nil {
					t, err := e.task(id)
					if err != nil {
						return err
					}
					ts[i] = t
					continue
				}
			}
			k, v := tasks.Seek(id[:])
			if !bytes.Equal(k, id[:]) {
				continue
			}
			var t *store.Task
			var err error
			if len(v) == 0 || v[0] != recordV2 {
				t, err = decodeRecord(tx, id, v, true) // a whole record of schema 3
			} else if t, err = decodeState(id, v); err == nil {
				var body []byte
				if k, b := bodies.Seek(id[:]); bytes.Equal(k, id[:]) {
					body = b
				}
				err = decodeStoredBody(t, body, true)
			}
			if err != nil {
				return internal("store: task %s: decode: %v", id, err)
			}
			ts[i] = t
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ts, nil
}

// TaskByRef returns the task holding (process, ref), or store.ErrNotFound.
func (db *DB) TaskByRef(ctx context.Context, process, ref string) (*store.Task, error) {
	return db.taskBy(ctx, "refs", bucketRefs, join(process, ref), process != "" && ref != "")
}

// TaskByToken returns the task whose callback token is token, or
// store.ErrNotFound.
func (db *DB) TaskByToken(ctx context.Context, token string) (*store.Task, error) {
	return db.taskBy(ctx, "tokens", bucketTokens, []byte(token), token != "")
}

// taskBy looks key up in an index whose values are task ids.
func (db *DB) taskBy(ctx context.Context, index string, bucket, key []byte, ok bool) (*store.Task, error) {
	if !ok {
		return nil, store.ErrNotFound
	}
	ov := db.overlay()
	if ov != nil {
		defer ov.mu.RUnlock()
		m := ov.refs
		if index == "tokens" {
			m = ov.tokens
		}
		if id, ok := m[string(key)]; ok {
			return ov.tasks[id].task(id)
		}
	}
	var t *store.Task
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucket).Get(key)
		if v == nil {
			return store.ErrNotFound
		}
		if ov != nil && len(v) == len(uuid.UUID{}) {
			if e := ov.tasks[idAt(v)]; e != nil {
				if index == "tokens" && e.token != string(key) {
					return store.ErrNotFound // a logged write released it
				}
				var err error
				t, err = e.task(idAt(v))
				return err
			}
		}
		var err error
		t, err = loadIndexed(tx, index, v)
		return err
	})
	return t, err
}

// overlay returns the write-ahead log's overlay read-locked, or nil without
// a log. The caller reads it, opens its bbolt transaction (if any) and then
// releases the lock (see overlay).
func (db *DB) overlay() *overlay {
	if db.lg == nil {
		return nil
	}
	db.lg.ov.mu.RLock()
	return db.lg.ov
}

// logged reports whether the task id has a write the write-ahead log holds
// and bbolt does not yet.
func (db *DB) logged(id uuid.UUID) bool {
	ov := db.overlay()
	if ov == nil {
		return false
	}
	defer ov.mu.RUnlock()
	return ov.tasks[id] != nil
}

// History returns the task's history in order, or store.ErrNotFound. With
// the write-ahead log, the entries bbolt has not applied yet come from the
// writes waiting for it.
func (db *DB) History(ctx context.Context, id uuid.UUID) ([]store.HistoryEntry, error) {
	var logged [][]byte
	ov := db.overlay()
	if ov != nil {
		defer ov.mu.RUnlock()
		if ov.tasks[id] != nil {
			// Read before bbolt: an entry the writer applies meanwhile is
			// then in both, and skipped below by its Seq.
			logged = db.lg.pendingHistory(id)
		}
	}
	var hs []store.HistoryEntry
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketTasks).Get(id[:]) == nil && (ov == nil || ov.tasks[id] == nil) {
			return store.ErrNotFound
		}
		var err error
		hs, err = readHistory(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, b := range logged {
		h, err := decodeHistory(b)
		if err != nil {
			return nil, internal("store: history of task %s: decode logged entry: %v", id, err)
		}
		if h.Seq >= uint32(len(hs)) {
			hs = append(hs, h)
		}
	}
	return hs, nil
}

// readHistory decodes the history entries of id in order: those in the
// history bucket, then those still in the backlog (backlog.go), which are
// the later ones, since the backlog is moved in key order.
func readHistory(tx *bbolt.Tx, id uuid.UUID) ([]store.HistoryEntry, error) {
	var hs []store.HistoryEntry
	for _, name := range [][]byte{bucketHistory, bucketBacklog} {
		c := tx.Bucket(name).Cursor()
		for k, v := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, v = c.Next() {
			h, err := decodeHistory(v)
			if err != nil {
				return nil, internal("store: history of task %s: decode: %v", id, err)
			}
			hs = append(hs, h)
		}
	}
	return hs, nil
}

// List returns a page of tasks matching f, newest first. It reads the
// narrowest index the filter allows: the ref (Process and Ref), the node
// (Process and Node), the status, or else every task. Limit defaults to 50
// and is capped at 1000. A cursor that this DB did not return fails with a
// conveyor.EInvalid error.
func (db *DB) List(ctx context.Context, f store.Filter) (store.Page, error) {
	if err := db.flushLog(ctx); err != nil {
		return store.Page{}, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultPage
	}
	limit = min(limit, maxPage)
	var after []byte
	if f.Cursor != "" {
		id, err := hex.DecodeString(f.Cursor)
		if err != nil || len(id) != len(uuid.UUID{}) {
			return store.Page{}, invalid("store: list: bad cursor %q", f.Cursor)
		}
		after = id
	}
	var page store.Page
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		page, err = list(tx, f, after, limit)
		return err
	})
	return page, err
}

// list fills a page of up to limit tasks older than the id after (nil: from
// the newest), and looks one match further to know whether a next page exists.
func list(tx *bbolt.Tx, f store.Filter, after []byte, limit int) (store.Page, error) {
	var page store.Page
	var err error
	visit := func(t *store.Task) bool {
		if !matches(t, f) {
			return true
		}
		if len(page.Tasks) == limit {
			page.Next = hex.EncodeToString(page.Tasks[limit-1].ID[:])
			return false
		}
		page.Tasks = append(page.Tasks, t)
		return true
	}
	if f.Process != "" && f.Ref != "" {
		v := tx.Bucket(bucketRefs).Get(join(f.Process, f.Ref))
		if v == nil || (after != nil && bytes.Compare(v, after) >= 0) {
			return page, nil
		}
		t, err := loadIndexed(tx, "refs", v)
		if err == nil {
			visit(t)
		}
		return page, err
	}
	b := tx.Bucket(bucketByState)
	switch {
	case f.Process != "" && f.Node != "":
		err = scanIndex(tx, descendMerged(b, nodeRanges(f.Status, f.Process, f.Node), after), visit)
	case f.Status != "":
		err = scanIndex(tx, descendMerged(b, groups(b, statusPrefix(f.Status, f.Process)), after), visit)
	default:
		err = scanTasks(tx, after, visit)
	}
	return page, err
}

// matches reports whether t passes every field of f.
func matches(t *store.Task, f store.Filter) bool {
	switch {
	case f.Process != "" && t.Process != f.Process,
		f.Node != "" && t.Node != f.Node,
		f.Status != "" && t.Status != f.Status,
		f.Ref != "" && t.Ref != f.Ref,
		f.ErrorCode != "" && (t.Error == nil || t.Error.Code != f.ErrorCode),
		!f.EnteredBefore.IsZero() && !t.Entered.Before(f.EnteredBefore):
		return false
	}
	return true
}

// scanIndex visits the tasks of a walk over bystate until visit returns
// false.
func scanIndex(tx *bbolt.Tx, m *merged, visit func(*store.Task) bool) error {
	for id, ok := m.next(); ok; id, ok = m.next() {
		t, err := loadIndexed(tx, string(bucketByState), id[:])
		if err != nil {
			return err
		}
		if !visit(t) {
			return nil
		}
	}
	return nil
}

// scanTasks visits every task, newest first, starting below after.
func scanTasks(tx *bbolt.Tx, after []byte, visit func(*store.Task) bool) error {
	var err error
	descend(tx.Bucket(bucketTasks).Cursor(), nil, after, func(k, v []byte) bool {
		var t *store.Task
		if t, err = decodeStored(tx, uuid.UUID(k), v); err != nil {
			err = internal("store: task %x: decode: %v", k, err)
			return false
		}
		return visit(t)
	})
	return err
}

// descend calls fn for the keys with prefix in descending order, starting
// below prefix + after (or at the last key with prefix when after is nil),
// until fn returns false.
func descend(c *bbolt.Cursor, prefix, after []byte, fn func(k, v []byte) bool) {
	for k, v := seekBelow(c, prefix, after); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		if !fn(k, v) {
			return
		}
	}
}

// Counts returns the node counters of process (of every process for ""),
// sorted by process and node. Now counts the tasks in a non-final status;
// Total counts arrivals into a final status at the node, including tasks
// since purged.
func (db *DB) Counts(ctx context.Context, process string) ([]store.NodeCount, error) {
	if err := db.flushLog(ctx); err != nil {
		return nil, err
	}
	var prefix []byte
	if process != "" {
		prefix = append([]byte(process), 0)
	}
	byNode := map[[2]string]*store.NodeCount{}
	at := func(process, node string) *store.NodeCount {
		nc := byNode[[2]string{process, node}]
		if nc == nil {
			nc = &store.NodeCount{Process: process, Node: node, Now: map[store.Status]int64{}}
			byNode[[2]string{process, node}] = nc
		}
		return nc
	}
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketCounts).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if p := split(k); len(p) == 3 {
				at(p[0], p[1]).Now[store.Status(p[2])] = getInt64(v)
			}
		}
		c = tx.Bucket(bucketTotals).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if p := split(k); len(p) == 2 {
				at(p[0], p[1]).Total = getInt64(v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	counts := make([]store.NodeCount, 0, len(byNode))
	for _, nc := range byNode {
		counts = append(counts, *nc)
	}
	sort.Slice(counts, func(i, j int) bool {
		if counts[i].Process != counts[j].Process {
			return counts[i].Process < counts[j].Process
		}
		return counts[i].Node < counts[j].Node
	})
	return counts, nil
}

// Due returns up to limit (default 100 for limit <= 0) timers due at or
// before t, earliest first. Times are UTC, to the nanosecond.
func (db *DB) Due(ctx context.Context, t time.Time, limit int) ([]store.Timer, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	return db.due(ctx, nanos(t), limit)
}

// due returns up to limit timers due at or before until (in nanos): those of
// the timers index, less the tasks whose logged write decides instead, and
// those of the logged writes.
func (db *DB) due(ctx context.Context, until uint64, limit int) ([]store.Timer, error) {
	ov := db.overlay()
	if ov != nil {
		defer ov.mu.RUnlock()
	}
	var due []store.Timer
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketTimers).Cursor()
		if ov == nil {
			for k, _ := c.First(); k != nil && keyNanos(k) <= until && len(due) < limit; k, _ = c.Next() {
				due = append(due, store.Timer{TaskID: idAt(k), At: keyTime(k)})
			}
			return nil
		}
		k, _ := c.First()
		if floor := ov.dueFloor(); floor != nil {
			k, _ = c.Seek(floor)
		}
		shadowed := true // so far, every entry is a logged task's
		for ; k != nil && keyNanos(k) <= until && len(due) < limit; k, _ = c.Next() {
			id := idAt(k)
			if ov.tasks[id] != nil {
				continue
			}
			if shadowed {
				ov.raiseFloor(k)
				shadowed = false
			}
			due = append(due, store.Timer{TaskID: id, At: keyTime(k)})
		}
		if shadowed && k != nil {
			ov.raiseFloor(k)
		}
		return nil
	})
	if err != nil || ov == nil || ov.timers == 0 {
		return due, err
	}
	for _, t := range ov.dueTimers(until, limit) {
		due = append(due, store.Timer{TaskID: t.id, At: time.Unix(0, int64(t.at)).UTC()})
	}
	slices.SortFunc(due, func(a, b store.Timer) int {
		if c := cmp.Compare(nanos(a.At), nanos(b.At)); c != 0 {
			return c
		}
		return bytes.Compare(a.TaskID[:], b.TaskID[:])
	})
	return due[:min(len(due), limit)], nil
}

// NextDue returns the earliest timer, or false when there is none.
func (db *DB) NextDue(ctx context.Context) (time.Time, bool, error) {
	due, err := db.due(ctx, math.MaxUint64, 1)
	if err != nil || len(due) == 0 {
		return time.Time{}, false, err
	}
	return due[0].At, true, nil
}

// Runnable returns up to limit (default 100 for limit <= 0) ids of active
// tasks after the id after, in id order.
func (db *DB) Runnable(ctx context.Context, after uuid.UUID, limit int) ([]uuid.UUID, error) {
	if err := db.flushLog(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	var ids []uuid.UUID
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketByState)
		m := ascendMerged(b, groups(b, statusPrefix(store.StatusActive, "")), after[:])
		for id, ok := m.next(); ok && len(ids) < limit; id, ok = m.next() {
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// Version returns a stored process version, or store.ErrNotFound.
func (db *DB) Version(ctx context.Context, process, version string) (*store.Version, error) {
	var v *store.Version
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketVersions).Get(join(process, version))
		if b == nil {
			return store.ErrNotFound
		}
		var err error
		if v, err = decodeVersion(b); err != nil {
			return internal("store: version %q of %q: decode: %v", version, process, err)
		}
		return nil
	})
	return v, err
}

package postgres

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/store"
)

// maxAttempts bounds how often a transaction runs when it loses a race.
const maxAttempts = 5

// inTx runs fn in a transaction, and again (up to maxAttempts in all) when it
// deadlocked or lost a race on a unique index. fn must not keep anything from
// a failed run.
func (db *DB) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, db.pool, fn)
		if err == nil || attempt == maxAttempts || !transient(err) || ctx.Err() != nil {
			return err
		}
	}
}

// Commit applies changes in one transaction; see store.Store. It locks the
// stored rows of the changed tasks, checks every change against them, and
// writes nothing unless all pass. On success it sets each change's Task.Rev
// to Rev+1, and Task.Finished to the commit time when the task reached a
// final status without one. The store reads the tasks until Commit returns:
// don't change them meanwhile. Changes that break the contract (a history Seq
// that does not continue HistoryLen, a changed Process or Ref, a string text
// cannot hold, a token held by another task, ...) fail with a
// conveyor.EInvalid or conveyor.EConflict *conveyor.Error, as in store/bolt.
//
// Concurrent commits do not wait for each other unless they change the same
// tasks or node counters; a commit that makes a task runnable or sets a
// nearer timer notifies Options.Channel when it commits.
func (db *DB) Commit(ctx context.Context, changes ...store.Change) error {
	if len(changes) == 0 {
		return nil
	}
	if err := db.ready(ctx); err != nil {
		return err
	}
	var stored []*store.Task
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		snap, err := loadSnapshot(ctx, tx, changes)
		if err != nil {
			return err
		}
		p, err := planCommit(snap, db.clock(), changes)
		if err != nil {
			return err
		}
		stored = p.tasks()
		return p.apply(ctx, tx, db.channel)
	})
	if err != nil {
		return db.fail("commit", err)
	}
	for i, c := range changes {
		c.Task.Rev, c.Task.Finished = stored[i].Rev, stored[i].Finished
	}
	return nil
}

// refKey is a task's (process, ref).
type refKey struct{ process, ref string }

// snapshot is what a commit's checks read: the stored tasks it changes,
// locked until it ends, and the holders of the refs and tokens it asks for.
type snapshot struct {
	tasks  map[uuid.UUID]*store.Task
	refs   map[refKey]*store.Task
	tokens map[string]uuid.UUID
}

// loadSnapshot reads the snapshot of changes in one round trip. It locks the
// changed rows in id order, so that two commits never wait for each other in
// a cycle. The holders of refs and tokens are not locked: a holder that
// changes meanwhile makes the commit fail on the unique index and run again.
func loadSnapshot(ctx context.Context, tx pgx.Tx, changes []store.Change) (*snapshot, error) {
	snap := &snapshot{tasks: map[uuid.UUID]*store.Task{}, refs: map[refKey]*store.Task{}, tokens: map[string]uuid.UUID{}}
	var ids []uuid.UUID
	var processes, refs, tokens []string
	for _, c := range changes {
		t := c.Task
		if t == nil {
			continue
		}
		ids = append(ids, t.ID)
		if t.Ref != "" && storable(t.Process) && storable(t.Ref) {
			processes, refs = append(processes, t.Process), append(refs, t.Ref)
		}
		if t.Token != "" && storable(t.Token) {
			tokens = append(tokens, t.Token)
		}
	}
	sortIDs(ids)
	b := &pgx.Batch{}
	b.Queue(`SELECT `+taskColumns+` FROM tasks WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids).
		Query(func(rows pgx.Rows) error {
			return eachTask(rows, func(t *store.Task) { snap.tasks[t.ID] = t })
		})
	if len(refs) > 0 {
		b.Queue(`SELECT `+taskColumns+` FROM tasks
			WHERE ref <> '' AND (process, ref) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, processes, refs).
			Query(func(rows pgx.Rows) error {
				return eachTask(rows, func(t *store.Task) { snap.refs[refKey{t.Process, t.Ref}] = t })
			})
	}
	if len(tokens) > 0 {
		b.Queue(`SELECT id, token FROM tasks WHERE token = ANY($1)`, tokens).
			Query(func(rows pgx.Rows) error {
				var id uuid.UUID
				var token string
				_, err := pgx.ForEachRow(rows, []any{&id, &token}, func() error {
					snap.tokens[token] = id
					return nil
				})
				return err
			})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return snap, nil
}

// eachTask calls fn with every task of rows.
func eachTask(rows pgx.Rows, fn func(*store.Task)) error {
	defer rows.Close()
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return err
		}
		fn(t)
	}
	return rows.Err()
}

// write moves one task from old (nil for a new task) to new.
type write struct {
	old, new *store.Task
	args     []any // new's taskColumns
	history  []store.HistoryEntry
}

// countKey and totalKey name rows of the counts and totals tables.
type (
	countKey struct{ process, node, status string }
	totalKey struct{ process, node string }
)

// plan is a commit's writes and the counter deltas they imply, checked and
// ready to apply.
type plan struct {
	writes []write
	counts map[countKey]int64
	totals map[totalKey]int64
	notify bool // the commit makes work for the nodes
}

// add appends w and its counter deltas.
func (p *plan) add(w write) {
	p.writes = append(p.writes, w)
	if w.old != nil && !w.old.Status.Final() {
		p.counts[countKey{w.old.Process, w.old.Node, string(w.old.Status)}]--
	}
	if !w.new.Status.Final() {
		p.counts[countKey{w.new.Process, w.new.Node, string(w.new.Status)}]++
	} else if w.old == nil || !w.old.Status.Final() {
		p.totals[totalKey{w.new.Process, w.new.Node}]++
	}
	p.notify = p.notify || makesWork(w.old, w.new)
}

// makesWork reports whether a task's move gives the nodes something to do: it
// became runnable, or got a timer it did not have or an earlier one.
func makesWork(old, n *store.Task) bool {
	if n.Status == store.StatusActive && (old == nil || old.Status != store.StatusActive) {
		return true
	}
	return !n.TimerAt.IsZero() && (old == nil || old.TimerAt.IsZero() || n.TimerAt.Before(old.TimerAt))
}

// tasks returns the new records, in the order of the writes.
func (p *plan) tasks() []*store.Task {
	ts := make([]*store.Task, len(p.writes))
	for i, w := range p.writes {
		ts[i] = w.new
	}
	return ts
}

// The statements of apply.
var (
	insertTask = `INSERT INTO tasks (` + taskColumns + `) VALUES (` + placeholders(1, 22) + `)`
	// updateTask sets every column but id ($1).
	updateTask = `UPDATE tasks SET (` + strings.SplitN(taskColumns, ",", 2)[1] + `) = (` + placeholders(2, 22) + `) WHERE id = $1`

	insertHistory = `INSERT INTO history (task_id, seq, at, from_node, to_node, event, actor, reason, detail, job_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	insertAudit = `INSERT INTO audit (task_id, seq, at, process, actor, action, from_node, to_node, reason, detail, job_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
	addCount = `INSERT INTO counts (process, node, status, n) VALUES ($1, $2, $3, $4)
		ON CONFLICT (process, node, status) DO UPDATE SET n = counts.n + excluded.n`
	// subCount takes from a counter: an INSERT ... ON CONFLICT would check
	// the constraint n >= 0 against the negative row it proposes.
	subCount      = `UPDATE counts SET n = n + $4 WHERE process = $1 AND node = $2 AND status = $3`
	dropZeroCount = `DELETE FROM counts WHERE process = $1 AND node = $2 AND status = $3 AND n = 0`
	addTotal      = `INSERT INTO totals (process, node, n) VALUES ($1, $2, $3)
		ON CONFLICT (process, node) DO UPDATE SET n = totals.n + excluded.n`
	notify = `SELECT pg_notify($1, '')`
)

// placeholders returns "$from, ..., $to".
func placeholders(from, to int) string {
	ps := make([]string, 0, to-from+1)
	for i := from; i <= to; i++ {
		ps = append(ps, fmt.Sprintf("$%d", i))
	}
	return strings.Join(ps, ", ")
}

// apply writes the plan in one round trip. Counters are written in key
// order, after every task row, so concurrent commits lock them in one order.
func (p *plan) apply(ctx context.Context, tx pgx.Tx, channel string) error {
	b := &pgx.Batch{}
	for _, w := range p.writes {
		if w.old == nil {
			b.Queue(insertTask, w.args...)
		} else {
			b.Queue(updateTask, w.args...)
		}
		for _, h := range w.history {
			b.Queue(insertHistory, w.new.ID, int64(h.Seq), timeArg(h.At), h.From, h.To, h.Event, h.Actor, h.Reason, h.Detail, h.JobID)
			if h.Audited() {
				b.Queue(insertAudit, w.new.ID, int64(h.Seq), auditTime(h.At), w.new.Process, h.Actor, h.Event,
					h.From, h.To, h.Reason, h.Detail, h.JobID)
			}
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(p.counts), compareCounts) {
		switch d := p.counts[k]; {
		case d > 0:
			b.Queue(addCount, k.process, k.node, k.status, d)
		case d < 0:
			b.Queue(subCount, k.process, k.node, k.status, d).Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() == 0 {
					return internal("store: counter %q/%q/%q is missing: the counts table is corrupt (run Check)", k.process, k.node, k.status)
				}
				return nil
			})
			b.Queue(dropZeroCount, k.process, k.node, k.status)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(p.totals), compareTotals) {
		b.Queue(addTotal, k.process, k.node, p.totals[k])
	}
	if p.notify {
		b.Queue(notify, channel)
	}
	return tx.SendBatch(ctx, b).Close()
}

func compareCounts(a, b countKey) int {
	return cmp.Or(strings.Compare(a.process, b.process), strings.Compare(a.node, b.node), strings.Compare(a.status, b.status))
}

func compareTotals(a, b totalKey) int {
	return cmp.Or(strings.Compare(a.process, b.process), strings.Compare(a.node, b.node))
}

// planner checks the changes of one commit. Besides the snapshot it
// remembers what earlier changes of the commit claim, so two of them cannot
// take one ref or token.
type planner struct {
	snap   *snapshot
	now    time.Time
	plan   *plan
	ids    map[uuid.UUID]bool
	refs   map[refKey]*store.Task // new tasks claiming a ref
	tokens map[string]uuid.UUID   // token -> claiming task, uuid.Nil when released
}

// planCommit checks changes against snap, in order, and returns their plan
// or the first failing change's error.
func planCommit(snap *snapshot, now time.Time, changes []store.Change) (*plan, error) {
	pl := &planner{
		snap:   snap,
		now:    now,
		plan:   &plan{counts: map[countKey]int64{}, totals: map[totalKey]int64{}},
		ids:    map[uuid.UUID]bool{},
		refs:   map[refKey]*store.Task{},
		tokens: map[string]uuid.UUID{},
	}
	for _, c := range changes {
		if err := pl.change(c); err != nil {
			return nil, err
		}
	}
	return pl.plan, nil
}

// change checks one change and adds its write to the plan; the checks and
// their order are store/bolt's.
func (pl *planner) change(c store.Change) error {
	if c.Task == nil {
		return invalid("store: a change has no task")
	}
	n := *c.Task // the store's copy; it is only read and encoded
	if err := validateTask(&n); err != nil {
		return err
	}
	if pl.ids[n.ID] {
		return invalid("store: task %s: changed twice in one commit", n.ID)
	}
	pl.ids[n.ID] = true
	old := pl.snap.tasks[n.ID]
	if err := store.CheckRev(old, c); err != nil {
		return err
	}
	if err := pl.checkRef(old, &n); err != nil {
		return err
	}
	if err := checkHistory(old, &n, c.History); err != nil {
		return err
	}
	if err := pl.claimToken(old, &n); err != nil {
		return err
	}
	n.Rev = c.Rev + 1
	if n.Status.Final() && n.Finished.IsZero() {
		n.Finished = pl.now
	}
	args, err := taskArgs(&n)
	if err != nil {
		return invalid("store: task %s: encode: %v", n.ID, err)
	}
	pl.plan.add(write{old: old, new: &n, args: args, history: c.History})
	return nil
}

// validateTask checks what the columns and indexes need of a record.
func validateTask(t *store.Task) error {
	switch {
	case t.ID == uuid.Nil:
		return invalid("store: a task has no id")
	case t.Process == "":
		return invalid("store: task %s: no process", t.ID)
	case !t.Status.Valid():
		return invalid("store: task %s: unknown status %q", t.ID, t.Status)
	}
	for _, f := range []field{{"process", t.Process}, {"node", t.Node}, {"ref", t.Ref}, {"token", t.Token}} {
		if len(f.v) > maxName {
			return invalid("store: task %s: %s is longer than %d bytes", t.ID, f.name, maxName)
		}
	}
	if err := checkFields("task "+t.ID.String(), taskFields(t)...); err != nil {
		return err
	}
	for _, tf := range []struct {
		name string
		t    time.Time
	}{{"Created", t.Created}, {"Updated", t.Updated}, {"Entered", t.Entered}, {"Finished", t.Finished}, {"TimerAt", t.TimerAt}} {
		if !inRange(tf.t) {
			return invalid("store: task %s: %s %v is outside the years 1678 to 2262", t.ID, tf.name, tf.t)
		}
	}
	return nil
}

// taskFields are the strings of a task that end up in text.
func taskFields(t *store.Task) []field {
	fs := []field{
		{"process", t.Process}, {"version", t.Version}, {"ref", t.Ref}, {"input hash", t.InputHash},
		{"node", t.Node}, {"token", t.Token}, {"timer", t.Timer},
	}
	if e := t.Error; e != nil {
		fs = append(fs, field{"error code", e.Code}, field{"error description", e.Description}, field{"error node", e.Node})
	}
	for _, m := range t.Marks {
		fs = append(fs, field{"mark hash", m.Hash}, field{"mark node", m.Node})
	}
	for _, e := range t.Early {
		fs = append(fs, field{"early callback content type", e.ContentType}, field{"early callback actor", e.Actor})
	}
	return fs
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
	if n.Ref == "" {
		return nil
	}
	k := refKey{n.Process, n.Ref}
	if t, ok := pl.refs[k]; ok {
		return &store.RefTakenError{Existing: t.Clone()}
	}
	if t, ok := pl.snap.refs[k]; ok {
		return &store.RefTakenError{Existing: t}
	}
	pl.refs[k] = n
	return nil
}

// checkHistory checks the contract's numbering (store.CheckHistory), then
// what PostgreSQL's columns need of each entry.
func checkHistory(old, n *store.Task, entries []store.HistoryEntry) error {
	if err := store.CheckHistory(old, n, entries); err != nil {
		return err
	}
	for _, h := range entries {
		what := fmt.Sprintf("task %s: history entry %d", n.ID, h.Seq)
		err := checkFields(what, field{"from", h.From}, field{"to", h.To}, field{"event", h.Event},
			field{"actor", h.Actor}, field{"reason", h.Reason}, field{"detail", h.Detail}, field{"job id", h.JobID})
		if err != nil {
			return err
		}
		if !inRange(h.At) {
			return invalid("store: %s: At %v is outside the years 1678 to 2262", what, h.At)
		}
	}
	return nil
}

// claimToken keeps callback tokens unique: a token another task holds cannot
// be taken. A token released earlier in the same commit can.
func (pl *planner) claimToken(old, n *store.Task) error {
	if old != nil && old.Token == n.Token {
		return nil
	}
	if old != nil && old.Token != "" {
		pl.tokens[old.Token] = uuid.Nil
	}
	if n.Token == "" {
		return nil
	}
	holder, seen := pl.tokens[n.Token]
	if !seen {
		holder = pl.snap.tokens[n.Token]
	}
	if holder != uuid.Nil && holder != n.ID {
		return conveyor.Errorf(conveyor.EConflict, "store: task %s: its callback token is held by task %s", n.ID, holder)
	}
	pl.tokens[n.Token] = n.ID
	return nil
}

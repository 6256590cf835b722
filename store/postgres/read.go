package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/store"
)

// Page sizes of List, and the limit of Due, Runnable, Purge and the claims
// when the caller passes 0 or less.
const (
	defaultPage  = 50
	maxPage      = 1000
	defaultLimit = 100
)

// finalStatuses is the SQL list of the final statuses.
const finalStatuses = `('succeeded', 'failed', 'canceled')`

// Task returns the task with id, or store.ErrNotFound.
func (db *DB) Task(ctx context.Context, id uuid.UUID) (*store.Task, error) {
	return db.taskWhere(ctx, "task", `id = $1`, id)
}

// Tasks returns the tasks with the given ids, in the order of ids (nil for
// an id with no task), in one query; see store.BatchReader.
func (db *DB) Tasks(ctx context.Context, ids []uuid.UUID) ([]*store.Task, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	rows, _ := db.pool.Query(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ANY($1)`, ids)
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Task, error) { return scanTask(row) })
	if err != nil {
		return nil, db.fail("tasks", err)
	}
	byID := make(map[uuid.UUID]*store.Task, len(found))
	for _, t := range found {
		byID[t.ID] = t
	}
	ts := make([]*store.Task, len(ids))
	for i, id := range ids {
		ts[i] = byID[id]
	}
	return ts, nil
}

// TaskByRef returns the task holding (process, ref), or store.ErrNotFound.
func (db *DB) TaskByRef(ctx context.Context, process, ref string) (*store.Task, error) {
	if process == "" || ref == "" || !storable(process) || !storable(ref) {
		if err := db.ready(ctx); err != nil {
			return nil, err
		}
		return nil, store.ErrNotFound
	}
	return db.taskWhere(ctx, "task by ref", `process = $1 AND ref = $2`, process, ref)
}

// TaskByToken returns the task whose callback token is token, or
// store.ErrNotFound.
func (db *DB) TaskByToken(ctx context.Context, token string) (*store.Task, error) {
	if token == "" || !storable(token) {
		if err := db.ready(ctx); err != nil {
			return nil, err
		}
		return nil, store.ErrNotFound
	}
	return db.taskWhere(ctx, "task by token", `token = $1`, token)
}

// taskWhere returns the one task matching cond, or store.ErrNotFound.
func (db *DB) taskWhere(ctx context.Context, op, cond string, args ...any) (*store.Task, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	t, err := scanTask(db.pool.QueryRow(ctx, `SELECT `+taskColumns+` FROM tasks WHERE `+cond, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, db.fail(op, err)
	}
	return t, nil
}

// History returns the task's history in order, or store.ErrNotFound.
func (db *DB) History(ctx context.Context, id uuid.UUID) ([]store.HistoryEntry, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	rows, _ := db.pool.Query(ctx, `SELECT seq, at, from_node, to_node, event, actor, reason, detail, job_id
		FROM history WHERE task_id = $1 ORDER BY seq`, id)
	hs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.HistoryEntry, error) {
		var h store.HistoryEntry
		var seq int64
		var at *int64
		err := row.Scan(&seq, &at, &h.From, &h.To, &h.Event, &h.Actor, &h.Reason, &h.Detail, &h.JobID)
		h.Seq, h.At = uint32(seq), timeOf(at)
		return h, err
	})
	if err != nil {
		return nil, db.fail("history", err)
	}
	if len(hs) > 0 {
		return hs, nil
	}
	// A task may have no history; a missing task has none either.
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM tasks WHERE id = $1)`, id).Scan(&exists); err != nil {
		return nil, db.fail("history", err)
	}
	if !exists {
		return nil, store.ErrNotFound
	}
	return nil, nil
}

// List returns a page of tasks matching f, newest first. Limit defaults to 50
// and is capped at 1000. The cursor is the hex id of the last task of the
// previous page, as in store/bolt; another cursor fails with a
// conveyor.EInvalid error. PostgreSQL picks the index: (process, node, id),
// (status, id), the ref, or the primary key.
func (db *DB) List(ctx context.Context, f store.Filter) (store.Page, error) {
	if err := db.ready(ctx); err != nil {
		return store.Page{}, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultPage
	}
	limit = min(limit, maxPage)
	var after *uuid.UUID
	if f.Cursor != "" {
		b, err := hex.DecodeString(f.Cursor)
		if err != nil || len(b) != len(uuid.UUID{}) {
			return store.Page{}, invalid("store: list: bad cursor %q", f.Cursor)
		}
		id := uuid.UUID(b)
		after = &id
	}
	for _, s := range []string{f.Process, f.Node, string(f.Status), f.Ref, f.ErrorCode} {
		if !storable(s) {
			return store.Page{}, nil // no task holds it
		}
	}
	query, args := listQuery(f, after, limit+1)
	rows, _ := db.pool.Query(ctx, query, args...)
	tasks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Task, error) { return scanTask(row) })
	if err != nil {
		return store.Page{}, db.fail("list", err)
	}
	page := store.Page{Tasks: tasks}
	if len(tasks) > limit {
		page.Tasks = tasks[:limit]
		page.Next = hex.EncodeToString(tasks[limit-1].ID[:])
	}
	return page, nil
}

// listQuery returns the query of a page of up to limit tasks matching f with
// ids below after (nil: from the newest).
func listQuery(f store.Filter, after *uuid.UUID, limit int) (string, []any) {
	var conds []string
	var args []any
	where := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.Process != "" {
		where("process = $%d", f.Process)
	}
	if f.Node != "" {
		where("node = $%d", f.Node)
	}
	if f.Status != "" {
		where("status = $%d", string(f.Status))
	}
	if f.Ref != "" {
		where("ref = $%d", f.Ref)
	}
	if f.ErrorCode != "" {
		where("error->>'code' = $%d", f.ErrorCode)
	}
	if !f.EnteredBefore.IsZero() {
		where("(entered IS NULL OR entered < $%d)", bound(f.EnteredBefore))
	}
	if after != nil {
		where("id < $%d", *after)
	}
	q := `SELECT ` + taskColumns + ` FROM tasks`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	args = append(args, limit)
	return q + fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args)), args
}

// Counts returns the node counters of process (of every process for ""),
// sorted by process and node: Now counts the tasks in a non-final status,
// Total the arrivals into a final status, purged tasks included. It reads
// the counts and totals tables, never the tasks.
func (db *DB) Counts(ctx context.Context, process string) ([]store.NodeCount, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if !storable(process) {
		return nil, nil // no task holds it
	}
	byNode := map[totalKey]*store.NodeCount{}
	at := func(process, node string) *store.NodeCount {
		k := totalKey{process, node}
		if byNode[k] == nil {
			byNode[k] = &store.NodeCount{Process: process, Node: node, Now: map[store.Status]int64{}}
		}
		return byNode[k]
	}
	var p, node, status string
	var n int64
	b := &pgx.Batch{}
	b.Queue(`SELECT process, node, status, n FROM counts WHERE $1 = '' OR process = $1`, process).
		Query(func(rows pgx.Rows) error {
			_, err := pgx.ForEachRow(rows, []any{&p, &node, &status, &n}, func() error {
				at(p, node).Now[store.Status(status)] = n
				return nil
			})
			return err
		})
	b.Queue(`SELECT process, node, n FROM totals WHERE $1 = '' OR process = $1`, process).
		Query(func(rows pgx.Rows) error {
			_, err := pgx.ForEachRow(rows, []any{&p, &node, &n}, func() error {
				at(p, node).Total = n
				return nil
			})
			return err
		})
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, db.fail("counts", err)
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
// before t, earliest first (by time, then id). Times are UTC, to the
// nanosecond.
func (db *DB) Due(ctx context.Context, t time.Time, limit int) ([]store.Timer, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	rows, _ := db.pool.Query(ctx, `SELECT id, timer_at FROM tasks
		WHERE timer_at <= $1 ORDER BY timer_at, id LIMIT $2`, bound(t), limit)
	due, err := pgx.CollectRows(rows, scanTimer)
	if err != nil {
		return nil, db.fail("due", err)
	}
	return due, nil
}

// scanTimer reads a row of (id, timer_at).
func scanTimer(row pgx.CollectableRow) (store.Timer, error) {
	var id uuid.UUID
	var at int64
	err := row.Scan(&id, &at)
	return store.Timer{TaskID: id, At: timeOf(&at)}, err
}

// NextDue returns the earliest timer, or false when there is none.
func (db *DB) NextDue(ctx context.Context) (time.Time, bool, error) {
	if err := db.ready(ctx); err != nil {
		return time.Time{}, false, err
	}
	var at int64
	err := db.pool.QueryRow(ctx, `SELECT timer_at FROM tasks WHERE timer_at IS NOT NULL ORDER BY timer_at LIMIT 1`).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, db.fail("next due", err)
	}
	return timeOf(&at), true, nil
}

// Runnable returns up to limit (default 100 for limit <= 0) ids of active
// tasks after the id after, in id order, leased or not.
func (db *DB) Runnable(ctx context.Context, after uuid.UUID, limit int) ([]uuid.UUID, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	rows, _ := db.pool.Query(ctx, `SELECT id FROM tasks WHERE status = 'active' AND id > $1 ORDER BY id LIMIT $2`, after, limit)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, db.fail("runnable", err)
	}
	return ids, nil
}

// Version returns a stored process version, or store.ErrNotFound.
func (db *DB) Version(ctx context.Context, process, version string) (*store.Version, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if !storable(process) || !storable(version) {
		return nil, store.ErrNotFound
	}
	v := &store.Version{Process: process, Version: version}
	var loaded *int64
	err := db.pool.QueryRow(ctx, `SELECT file, source, loaded FROM versions WHERE process = $1 AND version = $2`,
		process, version).Scan(&v.File, &v.Source, &loaded)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, db.fail("version", err)
	}
	v.Loaded = timeOf(loaded)
	return v, nil
}

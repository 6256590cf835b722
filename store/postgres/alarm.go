package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/store"
)

// alarmColumns are the columns of a crossing, in the order of scanAlarm.
const alarmColumns = `process, node, seq, raised, count, threshold, signal, task_id, at`

// PutAlarmCrossing records a crossing of a node's queue alarm unless its Seq
// does not follow the node's latest (ErrConflict); see store.Store.
func (db *DB) PutAlarmCrossing(ctx context.Context, c store.AlarmCrossing) error {
	if err := db.ready(ctx); err != nil {
		return err
	}
	what := fmt.Sprintf("alarm of %q/%q", c.Process, c.Node)
	switch {
	case c.Process == "" || c.Node == "":
		return invalid("store: an alarm crossing needs a process and a node")
	case c.Seq == 0:
		return invalid("store: %s: crossings are numbered from 1", what)
	case !inRange(c.At):
		return invalid("store: %s: At %v is outside the years 1678 to 2262", what, c.At)
	}
	if err := checkFields(what, field{"process", c.Process}, field{"node", c.Node}, field{"signal", c.Signal}); err != nil {
		return err
	}
	var task *uuid.UUID
	if c.TaskID != uuid.Nil {
		task = &c.TaskID
	}
	tag, err := db.pool.Exec(ctx, `INSERT INTO alarm_crossings (`+alarmColumns+`)
		SELECT $1, $2, $3::bigint, $4, $5, $6, $7, $8, $9
		WHERE (SELECT coalesce(max(seq), 0) FROM alarm_crossings WHERE process = $1 AND node = $2) = $3::bigint - 1`,
		c.Process, c.Node, int64(c.Seq), c.On, c.Count, int64(c.Threshold), c.Signal, task, timeArg(c.At))
	if err != nil && transient(err) { // a concurrent writer took this Seq first
		return fmt.Errorf("store: %s: crossing %d is recorded already: %w", what, c.Seq, store.ErrConflict)
	}
	if err != nil {
		return db.fail("put alarm crossing", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: %s: crossing %d does not follow the latest: %w", what, c.Seq, store.ErrConflict)
	}
	return nil
}

// scanAlarm reads a row of alarmColumns.
func scanAlarm(row pgx.CollectableRow) (store.AlarmCrossing, error) {
	var c store.AlarmCrossing
	var seq, threshold int64
	var task *uuid.UUID
	var at *int64
	err := row.Scan(&c.Process, &c.Node, &seq, &c.On, &c.Count, &threshold, &c.Signal, &task, &at)
	c.Seq, c.Threshold, c.At = uint64(seq), int(threshold), timeOf(at)
	if task != nil {
		c.TaskID = *task
	}
	return c, err
}

// AlarmStates returns the latest crossing of every node that has one,
// sorted by process and node (byte order, as store/bolt).
func (db *DB) AlarmStates(ctx context.Context) ([]store.AlarmCrossing, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	rows, _ := db.pool.Query(ctx, `SELECT DISTINCT ON (process, node) `+alarmColumns+`
		FROM alarm_crossings ORDER BY process, node, seq DESC`)
	states, err := pgx.CollectRows(rows, scanAlarm)
	if err != nil {
		return nil, db.fail("alarm states", err)
	}
	slices.SortFunc(states, func(a, b store.AlarmCrossing) int {
		return cmp.Or(strings.Compare(a.Process, b.Process), strings.Compare(a.Node, b.Node))
	})
	return states, nil
}

// AlarmCrossings returns up to limit crossings (default 50, at most 1000),
// newest first.
func (db *DB) AlarmCrossings(ctx context.Context, limit int) ([]store.AlarmCrossing, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultPage
	}
	limit = min(limit, maxPage)
	rows, _ := db.pool.Query(ctx, `SELECT `+alarmColumns+` FROM alarm_crossings
		ORDER BY at DESC NULLS LAST, process DESC, node DESC, seq DESC LIMIT $1`, limit)
	out, err := pgx.CollectRows(rows, scanAlarm)
	if err != nil {
		return nil, db.fail("alarm crossings", err)
	}
	return out, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/store"
)

// maxCheckErrors caps the problems Check reports.
const maxCheckErrors = 20

// indexNames are the indexes the schema must have, valid, for the store's
// invariants (unique refs and tokens) and speed.
var indexNames = []string{
	"tasks_pkey", "tasks_token_unique", "tasks_ref", "tasks_timer", "tasks_runnable", "tasks_by_node",
	"tasks_by_status", "tasks_finished", "tasks_lease", "history_pkey", "counts_pkey", "totals_pkey",
	"versions_pkey", "schema_migrations_pkey",
	"audit_pkey", "audit_at", "audit_by_actor", "audit_by_process", "jobs_pkey", "job_results_pkey",
	"alarm_crossings_pkey", "alarm_crossings_at",
}

// Check verifies the invariants store/bolt's Check does, where PostgreSQL
// does not enforce them already: the counters equal a recount of the
// non-final tasks, and the totals are at least the final tasks at each node;
// every task decodes and passes a commit's checks, and a final one has a
// Finished time; every task's history has HistoryLen entries numbered from 0
// and no entry outlives its task; every operator action in the history has
// its audit entry, equal to it, and no audit entry of a stored task lacks its
// history entry (entries of purged tasks stay, and are not flagged); every
// job decodes and agrees with its columns; the schema is at this build's
// version with every index present and valid. The index entries themselves are
// PostgreSQL's and cannot disagree with the rows. It returns nil or every
// problem found (up to 20), joined.
//
// Check reads one snapshot (REPEATABLE READ, read only), so it does not hold
// commits back, but it reads every task: use it in tests and tools, not on a
// busy store.
func (db *DB) Check() error {
	if db.closed.Load() {
		return store.ErrClosed
	}
	ctx := context.Background()
	c := &checker{}
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(ctx, db.pool, opts, func(tx pgx.Tx) error {
		for _, step := range []func(context.Context, pgx.Tx) error{c.tasks, c.counters, c.totals, c.history, c.audit, c.jobs, c.schema} {
			if err := step(ctx, tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return db.fail("check", err)
	}
	return errors.Join(c.errs...)
}

// checker collects the problems Check finds.
type checker struct {
	errs []error
}

func (c *checker) fail(format string, args ...any) {
	if len(c.errs) < maxCheckErrors {
		c.errs = append(c.errs, fmt.Errorf("store: check: "+format, args...))
	}
}

// tasks decodes and validates every task.
func (c *checker) tasks(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+`, token = '' FROM tasks`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var emptyToken *bool
		t, err := scanTask(withExtra{rows, &emptyToken})
		switch {
		case err != nil:
			c.fail("%v", err)
		case validateTask(t) != nil:
			c.fail("%v", validateTask(t))
		case t.Status.Final() && t.Finished.IsZero():
			c.fail("task %s is %s without a Finished time", t.ID, t.Status)
		case emptyToken != nil && *emptyToken:
			c.fail("task %s holds the empty token, which must be NULL", t.ID)
		}
	}
	return rows.Err()
}

// withExtra scans a row of taskColumns followed by one more column.
type withExtra struct {
	row   scanner
	extra any
}

func (w withExtra) Scan(dest ...any) error { return w.row.Scan(append(dest, w.extra)...) }

// counters compares the counts table with a recount of the non-final tasks.
func (c *checker) counters(ctx context.Context, tx pgx.Tx) error {
	rows, _ := tx.Query(ctx, `
		SELECT coalesce(c.process, r.process), coalesce(c.node, r.node), coalesce(c.status, r.status),
			coalesce(c.n, 0), coalesce(r.n, 0)
		FROM counts c FULL JOIN (
			SELECT process, node, status, count(*) AS n FROM tasks
			WHERE status NOT IN `+finalStatuses+` GROUP BY process, node, status) r
		ON (c.process, c.node, c.status) = (r.process, r.node, r.status)
		WHERE c.n IS DISTINCT FROM r.n`)
	var process, node, status string
	var got, want int64
	_, err := pgx.ForEachRow(rows, []any{&process, &node, &status, &got, &want}, func() error {
		c.fail("counts %q/%q/%q is %d, a recount gives %d", process, node, status, got, want)
		return nil
	})
	return err
}

// totals checks that every node's total counts at least its final tasks.
func (c *checker) totals(ctx context.Context, tx pgx.Tx) error {
	rows, _ := tx.Query(ctx, `
		SELECT r.process, r.node, coalesce(t.n, 0), r.n
		FROM (SELECT process, node, count(*) AS n FROM tasks
			WHERE status IN `+finalStatuses+` GROUP BY process, node) r
		LEFT JOIN totals t ON (t.process, t.node) = (r.process, r.node)
		WHERE coalesce(t.n, 0) < r.n`)
	var process, node string
	var got, finals int64
	_, err := pgx.ForEachRow(rows, []any{&process, &node, &got, &finals}, func() error {
		c.fail("totals %q/%q is %d, below the %d final tasks stored", process, node, got, finals)
		return nil
	})
	return err
}

// history checks that each task's entries are numbered 0..HistoryLen-1 and
// that no entry outlives its task.
func (c *checker) history(ctx context.Context, tx pgx.Tx) error {
	rows, _ := tx.Query(ctx, `
		SELECT t.id, t.history_len, coalesce(h.n, 0), coalesce(h.lo, 0), coalesce(h.hi, -1)
		FROM tasks t LEFT JOIN (
			SELECT task_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM history GROUP BY task_id) h
		ON h.task_id = t.id
		WHERE coalesce(h.n, 0) <> t.history_len OR h.lo <> 0 OR h.hi <> h.n - 1`)
	var id uuid.UUID
	var want, n, lo, hi int64
	_, err := pgx.ForEachRow(rows, []any{&id, &want, &n, &lo, &hi}, func() error {
		c.fail("history: task %s has %d entries numbered %d to %d, HistoryLen %d", id, n, lo, hi, want)
		return nil
	})
	if err != nil {
		return err
	}
	rows, _ = tx.Query(ctx, `SELECT DISTINCT task_id FROM history h WHERE NOT EXISTS (SELECT FROM tasks t WHERE t.id = h.task_id)`)
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		c.fail("history: entries of missing task %s", id)
		return nil
	})
	return err
}

// audit compares the audit log with the operator actions of the history.
func (c *checker) audit(ctx context.Context, tx pgx.Tx) error {
	rows, _ := tx.Query(ctx, `
		SELECT coalesce(h.task_id, a.task_id), coalesce(h.seq, a.seq), h.task_id IS NULL, a.task_id IS NULL
		FROM (SELECT h.*, t.process FROM history h JOIN tasks t ON t.id = h.task_id
			WHERE h.event LIKE 'operator\_%') h
		FULL JOIN (SELECT a.* FROM audit a WHERE EXISTS (SELECT FROM tasks t WHERE t.id = a.task_id)) a
		ON (a.task_id, a.seq) = (h.task_id, h.seq)
		WHERE h.task_id IS NULL OR a.task_id IS NULL
			OR (a.at, a.process, a.actor, a.action, a.from_node, a.to_node, a.reason, a.detail, a.job_id)
			IS DISTINCT FROM (coalesce(h.at, `+fmt.Sprint(zeroAuditTime)+`), h.process, h.actor, h.event, h.from_node,
				h.to_node, h.reason, h.detail, h.job_id)`)
	var id uuid.UUID
	var seq int64
	var noHistory, noAudit bool
	_, err := pgx.ForEachRow(rows, []any{&id, &seq, &noHistory, &noAudit}, func() error {
		switch {
		case noHistory:
			c.fail("audit: entry of task %s seq %d matches no operator action in its history", id, seq)
		case noAudit:
			c.fail("audit: task %s: the operator action at seq %d has no audit entry", id, seq)
		default:
			c.fail("audit: entry of task %s seq %d differs from its history entry", id, seq)
		}
		return nil
	})
	return err
}

// jobs checks that every job decodes and agrees with its columns.
func (c *checker) jobs(ctx context.Context, tx pgx.Tx) error {
	rows, _ := tx.Query(ctx, `SELECT id, rev, status, job FROM jobs`)
	var id uuid.UUID
	var rev int64
	var status string
	var body []byte
	_, err := pgx.ForEachRow(rows, []any{&id, &rev, &status, &body}, func() error {
		j, err := decodeJob(body)
		switch {
		case err != nil:
			c.fail("jobs: %s: %v", id, err)
		case j.ID != id || j.Rev != uint64(rev) || string(j.Status) != status:
			c.fail("jobs: row %s (rev %d, %s) holds job %s (rev %d, %s)", id, rev, status, j.ID, j.Rev, j.Status)
		}
		return nil
	})
	return err
}

// schema checks the schema version and the indexes.
func (c *checker) schema(ctx context.Context, tx pgx.Tx) error {
	var version int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return err
	}
	if want := schemaVersion(); version != want {
		c.fail("schema_migrations: version %d, want %d", version, want)
	}
	valid := map[string]bool{}
	rows, _ := tx.Query(ctx, `
		SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'tasks'::regclass)`)
	var name string
	var ok bool
	if _, err := pgx.ForEachRow(rows, []any{&name, &ok}, func() error {
		valid[name] = ok
		return nil
	}); err != nil {
		return err
	}
	for _, name := range indexNames {
		if ok, found := valid[name]; !found || !ok {
			c.fail("index %s is missing or invalid", name)
		}
	}
	return nil
}

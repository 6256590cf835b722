package postgres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/store"
)

// defaultResultPage is the page size of JobResults when the caller passes 0
// or less.
const defaultResultPage = 100

// PutJob creates or replaces a bulk job, checking its revision; see
// store.Store.
func (db *DB) PutJob(ctx context.Context, j *store.Job) error {
	if err := db.ready(ctx); err != nil {
		return err
	}
	if err := validateJob(j); err != nil {
		return err
	}
	n := j.Clone()
	n.Rev = j.Rev + 1
	body, err := json.Marshal(n)
	if err != nil {
		return invalid("store: job %s: encode: %v", j.ID, err)
	}
	if j.Rev == 0 {
		tag, err := db.pool.Exec(ctx, `INSERT INTO jobs (id, rev, status, job) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING`, n.ID, int64(n.Rev), string(n.Status), body)
		if err != nil {
			return db.fail("put job", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("job %s: %w", j.ID, store.ErrExists)
		}
		j.Rev = n.Rev
		return nil
	}
	tag, err := db.pool.Exec(ctx, `UPDATE jobs SET rev = $2, status = $3, job = $4 WHERE id = $1 AND rev = $5`,
		n.ID, int64(n.Rev), string(n.Status), body, int64(j.Rev))
	if err != nil {
		return db.fail("put job", err)
	}
	if tag.RowsAffected() == 0 {
		var rev int64
		err := db.pool.QueryRow(ctx, `SELECT rev FROM jobs WHERE id = $1`, j.ID).Scan(&rev)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("job %s: %w", j.ID, store.ErrNotFound)
		}
		if err != nil {
			return db.fail("put job", err)
		}
		return fmt.Errorf("job %s is at rev %d, the change expects %d: %w", j.ID, rev, j.Rev, store.ErrConflict)
	}
	j.Rev = n.Rev
	return nil
}

// validateJob checks what the store needs of a job.
func validateJob(j *store.Job) error {
	switch {
	case j == nil:
		return invalid("store: no job")
	case j.ID == uuid.Nil:
		return invalid("store: a job has no id")
	}
	switch j.Status {
	case store.JobPending, store.JobRunning, store.JobDone, store.JobCanceled, store.JobFailed:
		return nil
	}
	return invalid("store: job %s: unknown status %q", j.ID, j.Status)
}

// Job returns the job with id, or store.ErrNotFound.
func (db *DB) Job(ctx context.Context, id uuid.UUID) (*store.Job, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	var body []byte
	err := db.pool.QueryRow(ctx, `SELECT job FROM jobs WHERE id = $1`, id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, db.fail("job", err)
	}
	return decodeJob(body)
}

// decodeJob decodes a jobs row's JSON.
func decodeJob(body []byte) (*store.Job, error) {
	j := new(store.Job)
	if err := json.Unmarshal(body, j); err != nil {
		return nil, internal("store: job: decode: %v", err)
	}
	return j, nil
}

// Jobs returns up to limit jobs (default 50, at most 1000), newest first.
func (db *DB) Jobs(ctx context.Context, limit int) ([]*store.Job, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultPage
	}
	limit = min(limit, maxPage)
	rows, _ := db.pool.Query(ctx, `SELECT job FROM jobs ORDER BY id DESC LIMIT $1`, limit)
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Job, error) {
		var body []byte
		if err := row.Scan(&body); err != nil {
			return nil, err
		}
		return decodeJob(body)
	})
	if err != nil {
		return nil, db.fail("jobs", err)
	}
	return jobs, nil
}

// PutJobResults stores results of a job, one per task, replacing a task's
// earlier result; see store.Store.
func (db *DB) PutJobResults(ctx context.Context, jobID uuid.UUID, results []store.JobResult) error {
	if err := db.ready(ctx); err != nil {
		return err
	}
	if len(results) == 0 {
		return nil
	}
	// One row per task: the last result given wins, as it would one by one.
	last := map[uuid.UUID]int{}
	var tasks []uuid.UUID
	for i, r := range results {
		if r.TaskID == uuid.Nil {
			return invalid("store: job %s: result %d names no task", jobID, i)
		}
		if err := checkFields(fmt.Sprintf("job %s: result %d", jobID, i), field{"error", r.Error}); err != nil {
			return err
		}
		if !inRange(r.At) {
			return invalid("store: job %s: result %d: At %v is outside the years 1678 to 2262", jobID, i, r.At)
		}
		if _, seen := last[r.TaskID]; !seen {
			tasks = append(tasks, r.TaskID)
		}
		last[r.TaskID] = i
	}
	oks, errs, ats := make([]bool, len(tasks)), make([]string, len(tasks)), make([]*int64, len(tasks))
	for i, id := range tasks {
		r := results[last[id]]
		oks[i], errs[i] = r.OK, r.Error
		if !r.At.IsZero() {
			at := r.At.UnixNano()
			ats[i] = &at
		}
	}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM jobs WHERE id = $1 FOR SHARE)`, jobID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("job %s: %w", jobID, store.ErrNotFound)
		}
		_, err := tx.Exec(ctx, `INSERT INTO job_results (job_id, task_id, ok, error, at)
			SELECT $1, * FROM unnest($2::uuid[], $3::boolean[], $4::text[], $5::bigint[])
			ON CONFLICT (job_id, task_id) DO UPDATE SET ok = excluded.ok, error = excluded.error, at = excluded.at`,
			jobID, tasks, oks, errs, ats)
		return err
	})
	if err != nil {
		return db.fail("put job results", err)
	}
	return nil
}

// JobResults returns a page of a job's results in task id order; see
// store.Store. The cursor is the hex id of the last task of the previous
// page, as in store/bolt; another cursor fails with a conveyor.EInvalid
// error.
func (db *DB) JobResults(ctx context.Context, jobID uuid.UUID, cursor string, limit int) ([]store.JobResult, string, error) {
	if err := db.ready(ctx); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = defaultResultPage
	}
	limit = min(limit, maxPage)
	var after uuid.UUID
	if cursor != "" {
		b, err := hex.DecodeString(cursor)
		if err != nil || len(b) != len(uuid.UUID{}) {
			return nil, "", invalid("store: job results: bad cursor %q", cursor)
		}
		after = uuid.UUID(b)
	}
	var exists bool
	var results []store.JobResult
	b := &pgx.Batch{}
	b.Queue(`SELECT EXISTS (SELECT FROM jobs WHERE id = $1)`, jobID).QueryRow(func(row pgx.Row) error {
		return row.Scan(&exists)
	})
	b.Queue(`SELECT task_id, ok, error, at FROM job_results WHERE job_id = $1 AND task_id > $2 ORDER BY task_id LIMIT $3`,
		jobID, after, limit+1).Query(func(rows pgx.Rows) error {
		var err error
		results, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.JobResult, error) {
			var r store.JobResult
			var at *int64
			err := row.Scan(&r.TaskID, &r.OK, &r.Error, &at)
			r.At = timeOf(at)
			return r, err
		})
		return err
	})
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, "", db.fail("job results", err)
	}
	if !exists {
		return nil, "", store.ErrNotFound
	}
	var next string
	if len(results) > limit {
		results = results[:limit]
		next = hex.EncodeToString(results[limit-1].TaskID[:])
	}
	return results, next, nil
}

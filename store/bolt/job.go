package bolt

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// Page sizes of JobResults, whose pages are larger than List's by default.
const defaultResultPage = 100

// PutJob creates or replaces a bulk job, checking its revision; see
// store.Store. It goes through the writer like Commit.
func (db *DB) PutJob(ctx context.Context, j *store.Job) error {
	if err := validateJob(j); err != nil {
		return err
	}
	n := j.Clone()
	n.Rev = j.Rev + 1
	val, err := encodeJob(n)
	if err != nil {
		return invalid("store: job %s: encode: %v", j.ID, err)
	}
	err = db.submit(ctx, 1, func(tx *bbolt.Tx) (func() error, error) {
		b := tx.Bucket(bucketJobs)
		old := b.Get(j.ID[:])
		switch {
		case j.Rev == 0 && old != nil:
			return nil, fmt.Errorf("job %s: %w", j.ID, store.ErrExists)
		case j.Rev > 0 && old == nil:
			return nil, fmt.Errorf("job %s: %w", j.ID, store.ErrNotFound)
		case j.Rev > 0:
			stored, err := decodeJob(old)
			if err != nil {
				return nil, internal("store: job %s: decode: %v", j.ID, err)
			}
			if stored.Rev != j.Rev {
				return nil, fmt.Errorf("job %s is at rev %d, the change expects %d: %w", j.ID, stored.Rev, j.Rev, store.ErrConflict)
			}
		}
		return func() error { return b.Put(j.ID[:], val) }, nil
	})
	if err != nil {
		return err
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
	var j *store.Job
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get(id[:])
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		if j, err = decodeJob(v); err != nil {
			return internal("store: job %s: decode: %v", id, err)
		}
		return nil
	})
	return j, err
}

// Jobs returns up to limit jobs (default 50, at most 1000), newest first.
func (db *DB) Jobs(ctx context.Context, limit int) ([]*store.Job, error) {
	if limit <= 0 {
		limit = defaultPage
	}
	limit = min(limit, maxPage)
	var jobs []*store.Job
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketJobs).Cursor()
		for k, v := c.Last(); k != nil && len(jobs) < limit; k, v = c.Prev() {
			j, err := decodeJob(v)
			if err != nil {
				return internal("store: job %x: decode: %v", k, err)
			}
			jobs = append(jobs, j)
		}
		return nil
	})
	return jobs, err
}

// PutJobResults stores results of a job, one per task, replacing a task's
// earlier result; see store.Store. It goes through the writer like Commit.
func (db *DB) PutJobResults(ctx context.Context, jobID uuid.UUID, results []store.JobResult) error {
	if len(results) == 0 {
		return nil
	}
	vals := make([]kv, len(results))
	for i := range results {
		r := &results[i]
		if r.TaskID == uuid.Nil {
			return invalid("store: job %s: result %d names no task", jobID, i)
		}
		v, err := encodeResult(r)
		if err != nil {
			return invalid("store: job %s: encode result %d: %v", jobID, i, err)
		}
		vals[i] = kv{withID(jobID[:], r.TaskID), v}
	}
	return db.submit(ctx, len(results), func(tx *bbolt.Tx) (func() error, error) {
		if tx.Bucket(bucketJobs).Get(jobID[:]) == nil {
			return nil, fmt.Errorf("job %s: %w", jobID, store.ErrNotFound)
		}
		return func() error {
			b := tx.Bucket(bucketJobResults)
			for _, r := range vals {
				if err := b.Put(r.k, r.v); err != nil {
					return err
				}
			}
			return nil
		}, nil
	})
}

// JobResults returns a page of a job's results in task id order; see
// store.Store. The cursor is the hex id of the last task of the previous
// page; another cursor fails with a conveyor.EInvalid error.
func (db *DB) JobResults(ctx context.Context, jobID uuid.UUID, cursor string, limit int) ([]store.JobResult, string, error) {
	if limit <= 0 {
		limit = defaultResultPage
	}
	limit = min(limit, maxPage)
	seek := withID(jobID[:], uuid.Nil)
	var after []byte
	if cursor != "" {
		id, err := hex.DecodeString(cursor)
		if err != nil || len(id) != len(uuid.UUID{}) {
			return nil, "", invalid("store: job results: bad cursor %q", cursor)
		}
		after = withID(jobID[:], uuid.UUID(id))
		seek = after
	}
	var out []store.JobResult
	var next string
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketJobs).Get(jobID[:]) == nil {
			return store.ErrNotFound
		}
		c := tx.Bucket(bucketJobResults).Cursor()
		k, v := c.Seek(seek)
		if after != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, jobID[:]); k, v = c.Next() {
			if len(out) == limit {
				next = hex.EncodeToString(out[limit-1].TaskID[:])
				return nil
			}
			r, err := decodeResult(v)
			if err != nil {
				return internal("store: job %s: result %x: decode: %v", jobID, k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

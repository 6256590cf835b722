package postgres

import (
	"context"
	"time"

	"github.com/conveyor-dev/conveyor/store"
)

// Purge deletes up to limit tasks (default 100 for limit <= 0) that finished
// before t, oldest first, with their history (their ref and token become
// free), and returns how many it deleted; see store.Store. Final-node totals
// are kept. Tasks a concurrent commit holds are skipped, so Purge never waits
// for one, and nodes may purge concurrently.
func (db *DB) Purge(ctx context.Context, t time.Time, limit int) (int, error) {
	if err := db.ready(ctx); err != nil {
		return 0, err
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	// history goes with its task: ON DELETE CASCADE.
	tag, err := db.pool.Exec(ctx, `DELETE FROM tasks WHERE id IN (
		SELECT id FROM tasks WHERE status IN `+finalStatuses+` AND finished < $1
		ORDER BY finished, id LIMIT $2 FOR UPDATE SKIP LOCKED)`, bound(t), limit)
	if err != nil {
		return 0, db.fail("purge", err)
	}
	return int(tag.RowsAffected()), nil
}

// PutVersion stores v unless its (process, version) is stored already, in
// which case it does nothing, even when the source differs: a version never
// changes.
func (db *DB) PutVersion(ctx context.Context, v store.Version) error {
	if err := db.ready(ctx); err != nil {
		return err
	}
	if v.Process == "" || v.Version == "" {
		return invalid("store: a version needs a process and a version")
	}
	what := "version " + v.Version + " of " + v.Process
	if err := checkFields(what, field{"process", v.Process}, field{"version", v.Version}, field{"file", v.File}); err != nil {
		return err
	}
	if len(v.Process)+len(v.Version) > maxName {
		return invalid("store: %s: names must be under %d bytes", what, maxName)
	}
	if !inRange(v.Loaded) {
		return invalid("store: %s: Loaded %v is outside the years 1678 to 2262", what, v.Loaded)
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO versions (process, version, file, source, loaded)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (process, version) DO NOTHING`,
		v.Process, v.Version, v.File, v.Source, timeArg(v.Loaded))
	if err != nil {
		return db.fail("put version", err)
	}
	return nil
}

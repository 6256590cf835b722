package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The methods below are what the engine's cluster mode needs beyond the
// claims of lease.go: a node that commits a task owing an outbound call
// leases it itself (TryLease) before it sends, and the claimer of every node
// only takes tasks that nobody has committed for a while (ClaimIdle), so a
// fresh task stays with the node that made it. See docs/postgres.md.

// Channel returns the channel commits notify (Options.Channel), for Listen.
func (db *DB) Channel() string { return db.channel }

// TryLease leases the task id to owner until now+lease when its lease is
// free, expired, or owner's already, and reports whether owner holds it now.
// It reports false, without error, when another owner holds a live lease or
// the task does not exist.
func (db *DB) TryLease(ctx context.Context, owner string, id uuid.UUID, now time.Time, lease time.Duration) (bool, error) {
	if err := db.ready(ctx); err != nil {
		return false, err
	}
	if err := checkLease(owner, lease); err != nil {
		return false, err
	}
	tag, err := db.pool.Exec(ctx, `UPDATE tasks SET lease_owner = $2, lease_until = $4
		WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until <= $3)`,
		id, owner, bound(now), bound(now.Add(lease)))
	if err != nil {
		return false, db.fail("try lease", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ClaimIdle leases to owner, until now+lease, up to limit (default 100 for
// limit <= 0) active tasks that have no timer, whose lease is free or
// expired, and whose last commit (Task.Updated) is at least idle before now,
// and returns their ids sorted. It is ClaimRunnable for a cluster of engines:
// a task committed moments ago belongs to the node that committed it, which
// leases it itself, and an active task with a timer (a call waiting to be
// retried) is the timer service's business (ClaimDue). Rows other
// transactions hold are skipped.
func (db *DB) ClaimIdle(ctx context.Context, owner string, now time.Time, idle, lease time.Duration, limit int) ([]uuid.UUID, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if err := checkLease(owner, lease); err != nil {
		return nil, err
	}
	if idle < 0 {
		return nil, invalid("store: idle must not be negative, not %v", idle)
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	rows, _ := db.pool.Query(ctx, `
		WITH idle AS (
			SELECT id FROM tasks
			WHERE status = 'active' AND timer_at IS NULL
				AND (lease_until IS NULL OR lease_until <= $1) AND updated <= $2
			ORDER BY id LIMIT $3
			FOR UPDATE SKIP LOCKED)
		UPDATE tasks SET lease_owner = $4, lease_until = $5
		FROM idle WHERE tasks.id = idle.id
		RETURNING tasks.id`, bound(now), bound(now.Add(-idle)), limit, owner, bound(now.Add(lease)))
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, db.fail("claim idle", err)
	}
	sortIDs(ids)
	return ids, nil
}

// ReleaseOwner frees every lease owner holds, live or expired, and returns
// how many it freed; when one of them is active it notifies
// Options.Channel. A node that restarts under the same owner name calls it
// first: what its previous life leased, nobody works on.
func (db *DB) ReleaseOwner(ctx context.Context, owner string) (int, error) {
	if err := db.ready(ctx); err != nil {
		return 0, err
	}
	if owner == "" || !storable(owner) {
		return 0, invalid("store: a lease needs an owner: valid UTF-8 without 0x00 bytes")
	}
	var n, active int
	err := db.pool.QueryRow(ctx, `
		WITH released AS (
			UPDATE tasks SET lease_owner = NULL, lease_until = NULL
			WHERE lease_until IS NOT NULL AND lease_owner = $1
			RETURNING status)
		SELECT count(*), count(*) FILTER (WHERE status = 'active') FROM released`, owner).Scan(&n, &active)
	if err != nil {
		return 0, db.fail("release owner", err)
	}
	if active > 0 {
		if err := db.Notify(ctx, db.channel); err != nil {
			return n, err
		}
	}
	return n, nil
}

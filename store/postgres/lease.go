package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/store"
)

// A lease tells the other nodes that owner works on a task until a time. It
// lives in the task's row (lease_owner, lease_until) and is not part of
// store.Task: Commit neither reads nor changes it, and a commit succeeds
// whoever holds the lease, so leases spread the work while the revision
// check keeps it correct. One lease covers both kinds of work on a task: a
// step it owes (it is active) and a timer that fell due.
//
// Lease times come from the caller's clock (Options.Clock, or the now the
// caller passes), so the nodes' clocks must agree to well within a lease.

// checkLease validates the arguments common to the claims.
func checkLease(owner string, lease time.Duration) error {
	if owner == "" || !storable(owner) {
		return invalid("store: a lease needs an owner: valid UTF-8 without 0x00 bytes")
	}
	if lease <= 0 {
		return invalid("store: a lease must last more than 0, not %v", lease)
	}
	return nil
}

// ClaimRunnable leases to owner, for lease from now (Options.Clock), up to
// limit (default 100 for limit <= 0) active tasks whose lease is free or
// expired, in id order, and returns their ids sorted. Rows other
// transactions hold are skipped (FOR UPDATE SKIP LOCKED), so concurrent
// claims never wait for each other and never return one task twice.
func (db *DB) ClaimRunnable(ctx context.Context, owner string, lease time.Duration, limit int) ([]uuid.UUID, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if err := checkLease(owner, lease); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	now := db.clock()
	rows, _ := db.pool.Query(ctx, `
		WITH free AS (
			SELECT id FROM tasks
			WHERE status = 'active' AND (lease_until IS NULL OR lease_until <= $1)
			ORDER BY id LIMIT $2
			FOR UPDATE SKIP LOCKED)
		UPDATE tasks SET lease_owner = $3, lease_until = $4
		FROM free WHERE tasks.id = free.id
		RETURNING tasks.id`, bound(now), limit, owner, bound(now.Add(lease)))
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, db.fail("claim runnable", err)
	}
	sortIDs(ids)
	return ids, nil
}

// ClaimDue leases to owner, for lease from now, up to limit (default 100 for
// limit <= 0) tasks whose timer is due at or before now and whose lease is
// free or expired, and returns their timers earliest first, as Due does.
// Like ClaimRunnable it skips rows other transactions hold.
func (db *DB) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.Timer, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if err := checkLease(owner, lease); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	rows, _ := db.pool.Query(ctx, `
		WITH due AS (
			SELECT id FROM tasks
			WHERE timer_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
			ORDER BY timer_at, id LIMIT $2
			FOR UPDATE SKIP LOCKED)
		UPDATE tasks SET lease_owner = $3, lease_until = $4
		FROM due WHERE tasks.id = due.id
		RETURNING tasks.id, tasks.timer_at`, bound(now), limit, owner, bound(now.Add(lease)))
	timers, err := pgx.CollectRows(rows, scanTimer)
	if err != nil {
		return nil, db.fail("claim due", err)
	}
	slices.SortFunc(timers, func(a, b store.Timer) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return compareIDs(a.TaskID, b.TaskID)
	})
	return timers, nil
}

// RenewLease extends to lease from now (Options.Clock) the leases owner holds
// on ids, expired or not, and returns the ids it renewed, sorted. An id it
// does not return was lost (rescued, or claimed by another node after it
// expired) or is gone: the owner should stop working on it.
func (db *DB) RenewLease(ctx context.Context, owner string, ids []uuid.UUID, lease time.Duration) ([]uuid.UUID, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if err := checkLease(owner, lease); err != nil {
		return nil, err
	}
	rows, _ := db.pool.Query(ctx, `UPDATE tasks SET lease_until = $3
		WHERE id = ANY($1) AND lease_owner = $2 RETURNING id`, ids, owner, bound(db.clock().Add(lease)))
	renewed, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, db.fail("renew lease", err)
	}
	sortIDs(renewed)
	return renewed, nil
}

// ReleaseLease frees the leases owner holds on ids; leases another owner
// holds are left alone. When a released task is still active it notifies
// Options.Channel, so another node picks it up.
func (db *DB) ReleaseLease(ctx context.Context, owner string, ids []uuid.UUID) error {
	if err := db.ready(ctx); err != nil {
		return err
	}
	if owner == "" || !storable(owner) {
		return invalid("store: a lease needs an owner: valid UTF-8 without 0x00 bytes")
	}
	_, err := db.pool.Exec(ctx, `
		WITH released AS (
			UPDATE tasks SET lease_owner = NULL, lease_until = NULL
			WHERE id = ANY($1) AND lease_owner = $2
			RETURNING status)
		SELECT pg_notify($3, '') FROM (SELECT FROM released WHERE status = 'active' LIMIT 1) AS runnable`,
		ids, owner, db.channel)
	if err != nil {
		return db.fail("release lease", err)
	}
	return nil
}

// RescueExpired frees every lease that expired at or before now, the leases
// of nodes that died or stalled, and returns how many it freed. Rows other
// transactions hold are skipped; the next rescue frees them. When it frees an
// active task it notifies Options.Channel. Claims take expired leases
// anyway, so rescuing is what makes the state plain to operators and wakes
// idle nodes.
func (db *DB) RescueExpired(ctx context.Context, now time.Time) (int, error) {
	if err := db.ready(ctx); err != nil {
		return 0, err
	}
	var n, active int
	err := db.pool.QueryRow(ctx, `
		WITH expired AS (
			SELECT id FROM tasks WHERE lease_until <= $1 FOR UPDATE SKIP LOCKED),
		rescued AS (
			UPDATE tasks SET lease_owner = NULL, lease_until = NULL
			FROM expired WHERE tasks.id = expired.id
			RETURNING tasks.status)
		SELECT count(*), count(*) FILTER (WHERE status = 'active') FROM rescued`, bound(now)).Scan(&n, &active)
	if err != nil {
		return 0, db.fail("rescue expired leases", err)
	}
	if active > 0 {
		if err := db.Notify(ctx, db.channel); err != nil {
			return n, err
		}
	}
	return n, nil
}

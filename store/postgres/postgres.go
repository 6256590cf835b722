// Package postgres is the PostgreSQL backend of store.Store, for Conveyor
// nodes that share one database.
//
// Every Commit is one transaction: it locks the rows it changes (SELECT ...
// FOR UPDATE, in id order, so concurrent commits do not deadlock on them),
// checks each change exactly as store/bolt does, and writes the tasks, their
// history and the node counters. What bolt keeps in index buckets by hand
// (refs, tokens, timers, runnable, by node, by status, finished) are
// PostgreSQL indexes on the tasks table; the counters (counts and totals) are
// tables this package maintains from the old and the new record in the same
// transaction, so Counts never scans tasks. There is no group-commit writer:
// PostgreSQL runs concurrent commits itself, and one that fails does not fail
// the others. A commit that loses a race (a deadlock, or a ref, token or id
// another commit took meanwhile) runs again from the start, a few times, and
// then fails or reports what it lost to.
//
// Work is shared between nodes with leases: ClaimRunnable and ClaimDue lease
// free rows to an owner with SELECT ... FOR UPDATE SKIP LOCKED, RenewLease
// extends a lease, ReleaseLease gives it back, and RescueExpired frees the
// leases of a node that died. A lease spreads the work; it is not a lock: a
// commit succeeds whatever the lease, and the revision check stops two nodes
// that work on one task from both moving it. Commits that make a task
// runnable, or set a timer earlier than the task had, NOTIFY Options.Channel,
// so idle nodes can Listen rather than poll.
//
// The schema is versioned: the embedded migrations/*.sql are applied by Open
// (and by Migrate) in one transaction under an advisory lock, so nodes that
// start together apply them once, and recorded in schema_migrations.
//
// Caveats: times are stored as Unix nanoseconds, because timestamptz keeps
// only microseconds and the store returns exactly what it was given, so times
// before 1678 or after 2262 are rejected. PostgreSQL text holds neither a 0x00
// byte nor invalid UTF-8, so strings with them are rejected (bolt stores
// them), and names (process, node, ref, token) are limited to 1024 bytes so
// that index entries fit. NOTIFY takes a database-wide lock at commit, which
// bounds the commit rate of a very busy database.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/store"
)

var _ store.Store = (*DB)(nil)

// DefaultChannel is the channel commits notify when they make work.
const DefaultChannel = "conveyor_work"

// Options tunes Open. The zero value gives the documented defaults.
type Options struct {
	// MaxConns caps the connection pool. Default: pool_max_conns from the
	// URL, else pgxpool's default (the larger of 4 and the number of CPUs).
	// Listen connections are not counted.
	MaxConns int32
	// Channel is the channel that commits NOTIFY when they make a task
	// runnable or set a nearer timer. Nodes sharing a database must agree on
	// it. Default DefaultChannel.
	Channel string
	// Logger receives lost Listen connections and open and close events.
	// Default: discard.
	Logger *slog.Logger
	// Clock gives the commit time, which becomes Task.Finished when a task
	// reaches a final status without one, and the start of the leases
	// ClaimRunnable and RenewLease grant. Nodes sharing a database must have
	// clocks that agree to well within a lease. Default time.Now.
	Clock func() time.Time
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.Channel == "" {
		o.Channel = DefaultChannel
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// DB is a store.Store kept in a PostgreSQL database. Open it with Open; all
// methods are safe for concurrent use, also from several processes.
type DB struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	clock   func() time.Time
	channel string

	// mu orders Listen's registration against Close, so Close waits for
	// every listener it did not prevent.
	mu        sync.Mutex
	closed    atomic.Bool
	done      context.Context // canceled by Close: ends the listeners
	cancel    context.CancelFunc
	listeners sync.WaitGroup
	closeOnce sync.Once
}

// Open connects to the database at url (a postgres:// URL or a libpq
// key=value string; a search_path parameter selects the schema), applies the
// migrations it lacks, and returns the store. It fails when the database's
// schema is newer than this build knows.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	if err := checkChannel(opts.Channel); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	applied, err := migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: open %s: %w", where, err)
	}
	done, cancel := context.WithCancel(context.Background())
	db := &DB{
		pool:    pool,
		log:     opts.Logger.With("database", where),
		clock:   opts.Clock,
		channel: opts.Channel,
		done:    done,
		cancel:  cancel,
	}
	if len(applied) > 0 {
		db.log.Info("store: schema migrated", "applied", applied)
	}
	db.log.Debug("store opened")
	return db, nil
}

// Close ends the listeners, waits for the calls in flight and closes the
// pool. Later calls return store.ErrClosed; Close itself always returns nil.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed.Store(true)
		db.mu.Unlock()
		db.cancel()
		db.listeners.Wait()
		db.pool.Close()
		db.log.Debug("store closed")
	})
	return nil
}

// ready fails a call that must not start: its ctx is done or the DB closed.
func (db *DB) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// fail returns the error of a call: the store's own errors as they are,
// store.ErrClosed when the DB was closed under the call, a conveyor.EInvalid
// error for a value PostgreSQL refused, and any other database error wrapped
// with op (context errors stay comparable with errors.Is).
func (db *DB) fail(op string, err error) error {
	var ce *conveyor.Error
	var taken *store.RefTakenError
	switch {
	case errors.As(err, &ce), errors.As(err, &taken),
		errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		return err
	case db.closed.Load():
		return store.ErrClosed
	}
	if e := refused(err); e != nil {
		return e
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

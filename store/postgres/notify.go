package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/store"
)

// maxChannel is the longest channel name PostgreSQL keeps whole.
const maxChannel = 63

// checkChannel validates a channel name.
func checkChannel(channel string) error {
	if channel == "" || len(channel) > maxChannel || !storable(channel) {
		return invalid("store: a channel name has 1 to %d bytes of valid UTF-8 without 0x00", maxChannel)
	}
	return nil
}

// Notify wakes every Listen on channel, in this process or another one
// sharing the database. Notifications carry nothing: a woken node asks the
// store what there is to do.
func (db *DB) Notify(ctx context.Context, channel string) error {
	if err := db.ready(ctx); err != nil {
		return err
	}
	if err := checkChannel(channel); err != nil {
		return err
	}
	if _, err := db.pool.Exec(ctx, notify, channel); err != nil {
		return db.fail("notify", err)
	}
	return nil
}

// Listen listens on channel on a connection of its own (outside the pool)
// and returns a channel that receives a value after each notification.
// Values coalesce: the channel holds at most one, so a slow reader sees one
// wake-up for many notifications, never none. When the connection is lost,
// Listen reconnects with backoff and then sends a wake-up, since
// notifications may have been missed. The channel is closed when ctx ends or
// the DB is closed.
func (db *DB) Listen(ctx context.Context, channel string) (<-chan struct{}, error) {
	if err := db.ready(ctx); err != nil {
		return nil, err
	}
	if err := checkChannel(channel); err != nil {
		return nil, err
	}
	if err := db.register(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(db.done, cancel)
	conn, err := db.listen(ctx, channel)
	if err != nil {
		stop()
		cancel()
		db.listeners.Done()
		return nil, db.fail("listen", err)
	}
	wake := make(chan struct{}, 1)
	go func() {
		defer db.listeners.Done()
		defer stop()
		defer cancel()
		defer close(wake)
		db.wait(ctx, conn, channel, wake)
	}()
	return wake, nil
}

// register counts a new listener, unless the DB is closed.
func (db *DB) register() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed.Load() {
		return store.ErrClosed
	}
	db.listeners.Add(1)
	return nil
}

// listen opens a connection with the pool's settings and listens on channel.
// The connection's application_name names the channel, for pg_stat_activity.
func (db *DB) listen(ctx context.Context, channel string) (*pgx.Conn, error) {
	cfg := db.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "conveyor listen " + channel
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

// wait turns notifications on conn into wake-ups until ctx ends,
// reconnecting when the connection is lost.
func (db *DB) wait(ctx context.Context, conn *pgx.Conn, channel string, wake chan<- struct{}) {
	for {
		_, err := conn.WaitForNotification(ctx)
		if err == nil {
			signal(wake)
			continue
		}
		conn.Close(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return
		}
		db.log.Warn("store: listen: connection lost, reconnecting", "channel", channel, "err", err)
		if conn = db.relisten(ctx, channel); conn == nil {
			return
		}
		signal(wake) // notifications may have come while it was away
	}
}

// relisten connects and listens again, backing off from 50ms to 5s between
// tries, until it succeeds or ctx ends (nil).
func (db *DB) relisten(ctx context.Context, channel string) *pgx.Conn {
	delay := 50 * time.Millisecond
	for {
		conn, err := db.listen(ctx, channel)
		if err == nil {
			return conn
		}
		db.log.Warn("store: listen: reconnect failed", "channel", channel, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// signal sends a wake-up unless one is pending already.
func signal(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

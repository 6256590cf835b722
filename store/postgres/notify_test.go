package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/store"
)

// patience bounds every wait for a notification.
const patience = 10 * time.Second

// wantWake fails the test unless wake receives a value within patience.
func wantWake(t *testing.T, wake <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-wake:
		if !ok {
			t.Fatalf("%s: the Listen channel closed, want a wake-up", what)
		}
	case <-time.After(patience):
		t.Fatalf("%s: no wake-up within %v", what, patience)
	}
}

// wantClosed fails the test unless wake is closed within patience, after any
// pending wake-up.
func wantClosed(t *testing.T, wake <-chan struct{}) {
	t.Helper()
	deadline := time.After(patience)
	for {
		select {
		case _, ok := <-wake:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("the Listen channel is still open after %v", patience)
		}
	}
}

// payloads listens on channel on a raw connection and returns a function
// that waits for the next notification's payload. Payloads tell the commit
// notifications (empty) from the test's markers, in the order PostgreSQL
// delivered them.
func payloads(t *testing.T, u, channel string) func() string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(t.Context(), "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), patience)
		defer cancel()
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("no notification on %s: %v", channel, err)
		}
		return n.Payload
	}
}

func TestDB_Listen(t *testing.T) {
	t.Parallel()
	t.Run("wakes_on_Notify_from_another_DB", func(t *testing.T) {
		t.Parallel()
		db, _, u := setup(t)
		other := openTest(t, u, Options{})
		wake, err := db.Listen(t.Context(), "wake_test")
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Notify(t.Context(), "wake_test"); err != nil {
			t.Fatal(err)
		}
		wantWake(t, wake, "after Notify")
	})
	t.Run("wakes_when_a_commit_makes_a_task_runnable", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		wake, err := db.Listen(t.Context(), db.channel)
		if err != nil {
			t.Fatal(err)
		}
		mustCommit(t, db, creation(newTask("payment", "")))
		wantWake(t, wake, "after creating an active task")
	})
	t.Run("closes_the_channel_when_ctx_ends_or_the_DB_closes", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		ctx, cancel := context.WithCancel(t.Context())
		first, err := db.Listen(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		second, err := db.Listen(t.Context(), "b")
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		wantClosed(t, first)
		db.Close()
		wantClosed(t, second)
	})
	t.Run("reconnects_after_losing_its_connection_and_wakes", func(t *testing.T) {
		t.Parallel()
		db, _, u := setup(t)
		wake, err := db.Listen(t.Context(), db.channel)
		if err != nil {
			t.Fatal(err)
		}
		admin(t, u, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`,
			"conveyor listen "+db.channel)
		wantWake(t, wake, "after the listener's connection was terminated")
		// The wake-up comes once it listens again, so a Notify now arrives.
		if err := db.Notify(t.Context(), db.channel); err != nil {
			t.Fatal(err)
		}
		wantWake(t, wake, "after Notify on the new connection")
	})
}

// stepping returns a function that makes the step of t when called.
func stepping(t *store.Task, mutate func(*store.Task)) func() store.Change {
	return func() store.Change { return step(t, mutate) }
}

func TestDB_Commit_notifies(t *testing.T) {
	t.Parallel()
	t.Run("only_when_it_makes_a_task_runnable_or_sets_a_nearer_timer", func(t *testing.T) {
		t.Parallel()
		db, clk, u := setup(t)
		next := payloads(t, u, db.channel)
		mark := func() {
			t.Helper()
			if _, err := db.pool.Exec(t.Context(), `SELECT pg_notify($1, 'marker')`, db.channel); err != nil {
				t.Fatal(err)
			}
		}
		task := newTask("payment", "")
		at := clk.now().Add(time.Hour)
		for _, tc := range []struct {
			name   string
			change func() store.Change // made when its turn comes: each step starts where the last left
			notify bool
		}{
			{"creating_an_active_task", func() store.Change { return creation(task) }, true},
			{"a_step_that_stays_active", stepping(task, func(t *store.Task) { t.Node = "charge" }), false},
			{"waiting_with_a_new_timer", stepping(task, func(t *store.Task) { t.Status, t.TimerAt = store.StatusWaiting, at }), true},
			{"moving_the_timer_later", stepping(task, func(t *store.Task) { t.TimerAt = at.Add(time.Minute) }), false},
			{"moving_the_timer_earlier", stepping(task, func(t *store.Task) { t.TimerAt = at }), true},
			{"escalating_without_a_timer", stepping(task, func(t *store.Task) { t.Status, t.TimerAt = store.StatusEscalated, time.Time{} }), false},
			{"retrying_into_active", stepping(task, func(t *store.Task) { t.Status = store.StatusActive }), true},
		} {
			mustCommit(t, db, tc.change())
			mark()
			got := next()
			if tc.notify {
				if got != "" {
					t.Errorf("%s: first notification %q, want the commit's", tc.name, got)
				}
				got = next()
			}
			if got != "marker" {
				t.Errorf("%s: notification %q, want the marker (the commit notified when it should not, or twice)", tc.name, got)
			}
		}
	})
}

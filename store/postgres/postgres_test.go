package postgres

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/storetest"
)

// testEnv names the variable that points the tests at a PostgreSQL database
// in which they may create and drop schemas.
const testEnv = "CONVEYOR_TEST_POSTGRES"

// testURL returns the test database's URL. Without one the test skips,
// saying how to start a local PostgreSQL, except under CI, which must run
// these tests and so fails.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(testEnv)
	switch {
	case u != "":
		return u
	case os.Getenv("CI") != "":
		t.Fatal(testEnv + " is not set, and CI never skips the PostgreSQL tests: .ci/run starts PostgreSQL with scripts/postgres.sh")
	default:
		t.Skip(testEnv + " is not set: run `eval \"$(bash scripts/postgres.sh)\"` to start a local PostgreSQL")
	}
	return ""
}

// freshSchema creates an empty schema that is dropped when the test ends and
// returns the test database's URL with search_path set to it.
func freshSchema(t testing.TB) string {
	t.Helper()
	base := testURL(t)
	name := "test_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	admin(t, base, `CREATE SCHEMA `+name)
	t.Cleanup(func() { admin(t, base, `DROP SCHEMA `+name+` CASCADE`) })
	return withParam(t, base, "search_path", name)
}

// withParam returns the connection string u with parameter k set to v.
func withParam(t testing.TB, u, k, v string) string {
	t.Helper()
	if !strings.Contains(u, "://") {
		return u + " " + k + "=" + v // a key=value string
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", testEnv, err)
	}
	q := parsed.Query()
	q.Set(k, v)
	parsed.RawQuery = q.Encode()
	return parsed.String()
}

// admin runs sql on a connection of its own. It may run in a cleanup, when
// the test's context is done already.
func admin(t testing.TB, u, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to %s: %v", testEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// openTest opens the store at u and closes it when the test ends.
func openTest(t testing.TB, u string, opts Options) *DB {
	t.Helper()
	db, err := Open(t.Context(), u, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// setup opens a store in a fresh schema; its clock stands at a fixed time
// until the test moves it.
func setup(t *testing.T) (*DB, *clock, string) {
	t.Helper()
	u := freshSchema(t)
	c := &clock{}
	c.set(time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC))
	return openTest(t, u, Options{Clock: c.now, Channel: "work_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")}), c, u
}

// clock is a clock the test moves.
type clock struct{ t atomic.Pointer[time.Time] }

func (c *clock) now() time.Time          { return *c.t.Load() }
func (c *clock) set(t time.Time)         { c.t.Store(&t) }
func (c *clock) advance(d time.Duration) { c.set(c.now().Add(d)) }

// newTask returns an uncommitted active task.
func newTask(process, ref string) *store.Task {
	now := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	return &store.Task{
		ID: uuid.Must(uuid.NewV7()), Process: process, Version: "v1", Ref: ref,
		Node: "start", Status: store.StatusActive, Data: []byte(`{"amount":100}`),
		Created: now, Updated: now, Entered: now, HistoryLen: 1,
	}
}

// creation is the change that creates t.
func creation(t *store.Task) store.Change {
	return store.Change{Task: t, History: []store.HistoryEntry{{Seq: 0, At: t.Created, To: t.Node, Event: "submit"}}}
}

// step is the change that applies mutate to t, with one history entry.
func step(t *store.Task, mutate func(*store.Task)) store.Change {
	rev, from := t.Rev, t.Node
	mutate(t)
	t.HistoryLen++
	return store.Change{Task: t, Rev: rev, History: []store.HistoryEntry{{Seq: t.HistoryLen - 1, From: from, To: t.Node, Event: "next"}}}
}

// mustCommit commits changes or fails the test.
func mustCommit(t testing.TB, db *DB, changes ...store.Change) {
	t.Helper()
	if err := db.Commit(t.Context(), changes...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// mustCheck fails the test when db.Check finds a problem.
func mustCheck(t testing.TB, db *DB) {
	t.Helper()
	if err := db.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestDB(t *testing.T) {
	t.Parallel()
	testURL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, freshSchema(t), Options{})
	})
}

func TestOpen(t *testing.T) {
	t.Parallel()
	t.Run("keeps_the_data_across_Close_and_reopen", func(t *testing.T) {
		t.Parallel()
		u := freshSchema(t)
		ctx := t.Context()
		db := openTest(t, u, Options{})
		task := newTask("payment", "order-1")
		task.Token, task.TimerAt = "tok-1", time.Date(2030, 1, 1, 0, 0, 0, 7, time.UTC)
		mustCommit(t, db, creation(task))
		if err := db.PutVersion(ctx, store.Version{Process: "payment", Version: "v1", Source: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		db.Close()

		db = openTest(t, u, Options{})
		got, err := db.TaskByToken(ctx, "tok-1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(task, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("task after reopen (-want +got):\n%s", diff)
		}
		if due, err := db.Due(ctx, task.TimerAt, 10); err != nil || len(due) != 1 || !due[0].At.Equal(task.TimerAt) {
			t.Errorf("Due after reopen = %v, %v; want the task's timer to the nanosecond", due, err)
		}
		mustCheck(t, db)
	})
	t.Run("fails_with_a_clear_error_on_a_schema_newer_than_this_build", func(t *testing.T) {
		t.Parallel()
		u := freshSchema(t)
		openTest(t, u, Options{}).Close()
		admin(t, u, `INSERT INTO schema_migrations (version, name) VALUES (99, '0099_future.sql')`)
		db, err := Open(t.Context(), u, Options{})
		if err == nil {
			db.Close()
			t.Fatal("Open = nil error, want one about the newer schema")
		}
		if !strings.Contains(err.Error(), "newer than this build") {
			t.Errorf("Open = %q, want it to say the schema is newer than this build", err)
		}
	})
	t.Run("fails_without_a_reachable_database", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		db, err := Open(ctx, "postgres://nobody:secret@127.0.0.1:1/none?sslmode=disable&connect_timeout=5", Options{})
		if err == nil {
			db.Close()
			t.Fatal("Open of a closed port = nil error")
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open's error shows the password: %q", err)
		}
	})
	t.Run("rejects_a_bad_channel", func(t *testing.T) {
		t.Parallel()
		_, err := Open(t.Context(), "postgres://127.0.0.1:1/none", Options{Channel: strings.Repeat("c", 64)})
		if conveyor.ErrorCode(err) != conveyor.EInvalid {
			t.Errorf("Open with a 64-byte channel = %v, want an EInvalid error", err)
		}
	})
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	t.Run("applies_every_migration_once_and_records_it", func(t *testing.T) {
		t.Parallel()
		u := freshSchema(t)
		applied, err := Migrate(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := migrations()
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, m := range ms {
			want = append(want, m.name)
		}
		if !cmp.Equal(applied, want) {
			t.Errorf("first Migrate applied %v, want %v", applied, want)
		}
		if applied, err := Migrate(t.Context(), u); err != nil || len(applied) != 0 {
			t.Errorf("second Migrate = %v, %v; want nothing applied", applied, err)
		}
		db := openTest(t, u, Options{})
		var version int
		var name string
		if err := db.pool.QueryRow(t.Context(), `SELECT version, name FROM schema_migrations ORDER BY version DESC LIMIT 1`).Scan(&version, &name); err != nil {
			t.Fatal(err)
		}
		if version != len(want) || name != want[len(want)-1] {
			t.Errorf("schema_migrations ends with (%d, %q), want (%d, %s)", version, name, len(want), want[len(want)-1])
		}
		mustCheck(t, db)
	})
	t.Run("applies_once_when_nodes_start_together", func(t *testing.T) {
		t.Parallel()
		u := freshSchema(t)
		const nodes = 4
		results := make([][]string, nodes)
		errs := make([]error, nodes)
		var wg sync.WaitGroup
		for i := range nodes {
			wg.Go(func() { results[i], errs[i] = Migrate(t.Context(), u) })
		}
		wg.Wait()
		applied := 0
		for i := range nodes {
			if errs[i] != nil {
				t.Errorf("Migrate %d: %v", i, errs[i])
			}
			applied += len(results[i])
		}
		if applied != schemaVersion() {
			t.Errorf("%d migrations applied by %d concurrent Migrates, want %d", applied, nodes, schemaVersion())
		}
	})
	t.Run("0002_fills_the_audit_log_from_the_history", func(t *testing.T) {
		t.Parallel()
		u := freshSchema(t)
		ms, err := migrations()
		if err != nil {
			t.Fatal(err)
		}
		admin(t, u, ms[0].sql)
		admin(t, u, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
			INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql')`)
		id := uuid.Must(uuid.NewV7())
		at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
		admin(t, u, `INSERT INTO tasks (id, process, version, node, status, rev, history_len) VALUES ($1, 'payment', 'v1', 'done', 'active', 2, 2)`, id)
		admin(t, u, `INSERT INTO counts (process, node, status, n) VALUES ('payment', 'done', 'active', 1)`)
		admin(t, u, `INSERT INTO history (task_id, seq, at, to_node, event, actor) VALUES ($1, 0, $2, 'start', 'submit', 'api'),
			($1, 1, $2, 'done', 'operator_move', 'token:alice')`, id, at.UnixNano())
		db := openTest(t, u, Options{})
		page, err := db.Audit(t.Context(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		want := []store.AuditEntry{{At: at, Actor: "token:alice", Action: "operator_move", TaskID: id, Seq: 1, Process: "payment", To: "done"}}
		if diff := cmp.Diff(want, page.Entries); diff != "" {
			t.Errorf("Audit after the migration (-want +got):\n%s", diff)
		}
		mustCheck(t, db)
	})
}

func TestParseMigrations(t *testing.T) {
	t.Parallel()
	ms, err := migrations()
	if err != nil || len(ms) == 0 || ms[0].name != "0001_init.sql" {
		t.Fatalf("embedded migrations = %v, %v; want 0001_init.sql first", ms, err)
	}
	for name, files := range map[string][]string{
		"a_gap":          {"0001_a.sql", "0003_c.sql"},
		"a_bad_name":     {"0001_a.sql", "second.sql"},
		"not_sql":        {"0001_a.txt"},
		"not_from_one":   {"0002_b.sql"},
		"a_double_entry": {"0001_a.sql", "01_b.sql"},
	} {
		t.Run("rejects_"+name, func(t *testing.T) {
			t.Parallel()
			fsys := mapFS(files...)
			if _, err := parseMigrations(fsys, "m"); err == nil {
				t.Errorf("parseMigrations(%v) = nil error", files)
			}
		})
	}
}

// mapFS is a file system of empty SQL files in directory m.
func mapFS(names ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for _, n := range names {
		fsys["m/"+n] = &fstest.MapFile{Data: []byte("SELECT 1;")}
	}
	return fsys
}

func TestDB_Commit(t *testing.T) {
	t.Parallel()
	t.Run("sets_Finished_to_the_commit_time_when_a_task_finishes_without_one", func(t *testing.T) {
		t.Parallel()
		db, clk, _ := setup(t)
		ctx := t.Context()
		task := newTask("payment", "")
		mustCommit(t, db, creation(task))
		mustCommit(t, db, step(task, func(t *store.Task) { t.Node, t.Status = "done", store.StatusSucceeded }))
		if !task.Finished.Equal(clk.now()) {
			t.Errorf("caller's Finished = %v, want the commit time %v", task.Finished, clk.now())
		}
		if n, _ := db.Purge(ctx, clk.now(), 10); n != 0 {
			t.Errorf("Purge(commit time) = %d, want 0: the task finished at, not before, it", n)
		}
		if n, _ := db.Purge(ctx, clk.now().Add(time.Nanosecond), 10); n != 1 {
			t.Errorf("Purge(just after the commit time) = %d, want 1", n)
		}
		mustCheck(t, db)
	})
	t.Run("rejects_what_PostgreSQL_cannot_store_with_EInvalid_and_writes_nothing", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		for name, mutate := range map[string]func(*store.Task, *store.Change){
			"a_0x00_in_a_name":          func(t *store.Task, _ *store.Change) { t.Node = "st\x00rt" },
			"invalid_UTF-8_in_a_token":  func(t *store.Task, _ *store.Change) { t.Token = "tok\xff" },
			"a_0x00_in_the_error":       func(t *store.Task, _ *store.Change) { t.Error = &store.TaskError{Code: "a\x00b"} },
			"a_0x00_in_a_history_entry": func(_ *store.Task, c *store.Change) { c.History[0].Detail = "bad\x00" },
			"a_time_after_2262":         func(t *store.Task, _ *store.Change) { t.TimerAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) },
			"a_history_time_before_1678": func(_ *store.Task, c *store.Change) {
				c.History[0].At = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
			},
			"a_ref_over_1024_bytes": func(t *store.Task, _ *store.Change) { t.Ref = strings.Repeat("r", 1025) },
		} {
			t.Run(name, func(t *testing.T) {
				task := newTask("payment", "")
				c := creation(task)
				mutate(task, &c)
				err := db.Commit(t.Context(), c)
				if conveyor.ErrorCode(err) != conveyor.EInvalid {
					t.Errorf("Commit = %v, want an EInvalid error", err)
				}
				if _, err := db.Task(t.Context(), task.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Task after a rejected commit = %v, want ErrNotFound", err)
				}
			})
		}
		mustCheck(t, db)
	})
	t.Run("moves_a_token_from_one_task_to_another_in_one_commit", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		a, b := newTask("payment", ""), newTask("payment", "")
		a.Token = "tok-1"
		mustCommit(t, db, creation(a), creation(b))
		mustCommit(t, db,
			step(a, func(t *store.Task) { t.Token = "" }),
			step(b, func(t *store.Task) { t.Token = "tok-1" }))
		got, err := db.TaskByToken(t.Context(), "tok-1")
		if err != nil || got.ID != b.ID {
			t.Errorf("TaskByToken = %v, %v; want task b", got, err)
		}
		mustCheck(t, db)
	})
	t.Run("uses_bolt's_error_codes_for_contract_breaches", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		a, b := newTask("payment", "order-1"), newTask("payment", "")
		a.Token, b.Token = "tok-1", "tok-1"
		mustCommit(t, db, creation(a))
		if err := db.Commit(t.Context(), creation(b)); conveyor.ErrorCode(err) != conveyor.EConflict {
			t.Errorf("Commit taking a held token = %v, want EConflict", err)
		}
		if err := db.Commit(t.Context(), step(a.Clone(), func(t *store.Task) { t.Process = "refund" })); conveyor.ErrorCode(err) != conveyor.EInvalid {
			t.Errorf("Commit changing the process = %v, want EInvalid", err)
		}
		if err := db.Commit(t.Context(), store.Change{}); conveyor.ErrorCode(err) != conveyor.EInvalid {
			t.Errorf("Commit without a task = %v, want EInvalid", err)
		}
		c := creation(newTask("payment", ""))
		if err := db.Commit(t.Context(), c, c); conveyor.ErrorCode(err) != conveyor.EInvalid {
			t.Errorf("Commit changing a task twice = %v, want EInvalid", err)
		}
	})
	t.Run("lets_one_of_many_concurrent_creations_take_a_ref_and_names_it_to_the_others", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		const n = 16
		tasks := make([]*store.Task, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range tasks {
			tasks[i] = newTask("payment", "order-1")
			tasks[i].Token = "tok-" + tasks[i].ID.String()
			wg.Go(func() {
				<-start
				errs[i] = db.Commit(t.Context(), creation(tasks[i]))
			})
		}
		close(start)
		wg.Wait()
		var winner *store.Task
		for i, err := range errs {
			if err == nil {
				if winner != nil {
					t.Fatalf("two creations took ref order-1: %s and %s", winner.ID, tasks[i].ID)
				}
				winner = tasks[i]
			}
		}
		if winner == nil {
			t.Fatalf("no creation took the ref: %v", errs)
		}
		for _, err := range errs {
			var taken *store.RefTakenError
			if err != nil && (!errors.As(err, &taken) || taken.Existing.ID != winner.ID) {
				t.Errorf("a losing creation = %v, want a *RefTakenError naming %s", err, winner.ID)
			}
		}
		mustCheck(t, db)
	})
	t.Run("lets_one_of_many_concurrent_creations_take_a_token", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		const n = 16
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			task := newTask("payment", "")
			task.Token = "tok-1"
			wg.Go(func() {
				<-start
				errs[i] = db.Commit(t.Context(), creation(task))
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case conveyor.ErrorCode(err) != conveyor.EConflict:
				t.Errorf("a losing creation = %v, want an EConflict error", err)
			}
		}
		if won != 1 {
			t.Errorf("%d creations took token tok-1, want 1", won)
		}
		mustCheck(t, db)
	})
	t.Run("runs_again_when_it_loses_a_race_and_reports_the_winner", func(t *testing.T) {
		t.Parallel()
		for name, tc := range map[string]struct {
			mutate func(winner, loser *store.Task)
			want   func(t *testing.T, err error, winner *store.Task)
		}{
			"for_a_ref": {
				func(w, l *store.Task) { w.Ref, l.Ref = "order-1", "order-1" },
				func(t *testing.T, err error, winner *store.Task) {
					var taken *store.RefTakenError
					if !errors.As(err, &taken) || taken.Existing.ID != winner.ID {
						t.Errorf("Commit = %v, want a *RefTakenError naming the winner", err)
					}
				},
			},
			"for_a_token": {
				func(w, l *store.Task) { w.Token, l.Token = "tok-1", "tok-1" },
				func(t *testing.T, err error, _ *store.Task) {
					if conveyor.ErrorCode(err) != conveyor.EConflict {
						t.Errorf("Commit = %v, want an EConflict error", err)
					}
				},
			},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				u := freshSchema(t)
				app := "loser_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
				db := openTest(t, withParam(t, u, "application_name", app), Options{})
				winner, loser := newTask("payment", ""), newTask("payment", "")
				tc.mutate(winner, loser)
				commitWinner := holdCommit(t, u, creation(winner))
				done := make(chan error, 1)
				go func() { done <- db.Commit(t.Context(), creation(loser)) }()
				waitForLock(t, u, app)
				commitWinner()
				select {
				case err := <-done:
					tc.want(t, err, winner)
				case <-time.After(30 * time.Second):
					t.Fatal("the losing Commit did not return")
				}
				mustCheck(t, db)
			})
		}
	})
	t.Run("does_not_deadlock_when_commits_change_the_same_tasks_in_opposite_orders", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		ctx := t.Context()
		a, b := newTask("payment", ""), newTask("payment", "")
		b.Node = "other"
		mustCommit(t, db, creation(a), creation(b))
		var wg sync.WaitGroup
		var won atomic.Int64
		for i := range 8 {
			wg.Go(func() {
				for range 10 {
					x, errX := db.Task(ctx, a.ID)
					y, errY := db.Task(ctx, b.ID)
					if errX != nil || errY != nil {
						t.Errorf("Task: %v, %v", errX, errY)
						return
					}
					cx, cy := step(x, func(*store.Task) {}), step(y, func(*store.Task) {})
					changes := []store.Change{cx, cy}
					if i%2 == 1 {
						changes = []store.Change{cy, cx}
					}
					switch err := db.Commit(ctx, changes...); {
					case err == nil:
						won.Add(1)
					case !errors.Is(err, store.ErrConflict):
						t.Errorf("Commit = %v, want nil or ErrConflict", err)
						return
					}
				}
			})
		}
		wg.Wait()
		if got := mustGet(t, db, a.ID).Rev; got != uint64(won.Load())+1 {
			t.Errorf("task at rev %d after %d successful commits, want %d", got, won.Load(), won.Load()+1)
		}
		mustCheck(t, db)
	})
}

// holdCommit applies changes as Commit does in a transaction of its own,
// which it leaves open, and returns the function that commits it.
func holdCommit(t *testing.T, u string, changes ...store.Change) (commit func()) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := loadSnapshot(ctx, tx, changes)
	if err != nil {
		t.Fatal(err)
	}
	p, err := planCommit(snap, time.Now(), changes)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.apply(ctx, tx, DefaultChannel); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForLock returns once a connection named app waits for a lock, and
// fails the test after 30s.
func waitForLock(t *testing.T, u, app string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting bool
		err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock')`, app).Scan(&waiting)
		switch {
		case err != nil:
			t.Fatal(err)
		case waiting:
			return
		case time.Now().After(deadline):
			t.Fatalf("no connection of %s waits for a lock after 30s", app)
		}
		time.Sleep(5 * time.Millisecond) // polling the server: it sends no signal
	}
}

// mustGet reads a task or fails the test.
func mustGet(t testing.TB, db *DB, id uuid.UUID) *store.Task {
	t.Helper()
	task, err := db.Task(t.Context(), id)
	if err != nil {
		t.Fatalf("Task(%s): %v", id, err)
	}
	return task
}

func TestDB_Check(t *testing.T) {
	t.Parallel()
	t.Run("reports_counters_history_and_indexes_that_disagree_with_the_tasks", func(t *testing.T) {
		t.Parallel()
		db, _, u := setup(t)
		task := newTask("payment", "order-1")
		mustCommit(t, db, creation(task))
		mustCheck(t, db)
		admin(t, u, `UPDATE counts SET n = 7`)
		admin(t, u, `DELETE FROM history`)
		admin(t, u, `DROP INDEX tasks_runnable`)
		err := db.Check()
		for _, want := range []string{"counts", "history", "tasks_runnable"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Check = %v, want it to report %s", err, want)
			}
		}
	})
	t.Run("fails_a_commit_that_would_take_a_counter_below_zero", func(t *testing.T) {
		t.Parallel()
		db, _, u := setup(t)
		task := newTask("payment", "")
		mustCommit(t, db, creation(task))
		admin(t, u, `DELETE FROM counts`)
		err := db.Commit(t.Context(), step(task.Clone(), func(t *store.Task) { t.Node = "charge" }))
		if conveyor.ErrorCode(err) != conveyor.EInternal || !strings.Contains(err.Error(), "counts") {
			t.Errorf("Commit = %v, want an EInternal error about the counts", err)
		}
	})
}

func TestDB_Close(t *testing.T) {
	t.Parallel()
	t.Run("fails_later_calls_with_ErrClosed", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		db.Close()
		ctx := t.Context()
		if _, err := db.Listen(ctx, "x"); !errors.Is(err, store.ErrClosed) {
			t.Errorf("Listen after Close = %v, want ErrClosed", err)
		}
		if _, err := db.ClaimRunnable(ctx, "node-a", time.Minute, 1); !errors.Is(err, store.ErrClosed) {
			t.Errorf("ClaimRunnable after Close = %v, want ErrClosed", err)
		}
		if err := db.Check(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("Check after Close = %v, want ErrClosed", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
	})
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/conveyor-dev/conveyor/client"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// pgEnv points the PostgreSQL tests at a database in which they may create
// and drop schemas (see docs/postgres.md).
const pgEnv = "CONVEYOR_TEST_POSTGRES"

// pgSchema returns the URL of a fresh schema of the test database, dropped
// when the test ends. Without a database the test skips, except under CI.
func pgSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv(pgEnv)
	switch {
	case base != "":
	case os.Getenv("CI") != "":
		t.Fatal(pgEnv + " is not set, and CI never skips the PostgreSQL tests: .ci/run starts PostgreSQL with scripts/postgres.sh")
	default:
		t.Skip(pgEnv + " is not set: run `eval \"$(bash scripts/postgres.sh)\"` to start a local PostgreSQL")
	}
	name := "cmd_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	pgExec(t, base, `CREATE SCHEMA `+name)
	t.Cleanup(func() { pgExec(t, base, `DROP SCHEMA `+name+` CASCADE`) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", pgEnv, err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

func pgExec(t *testing.T, u, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to %s: %v", pgEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// runCommand runs a subcommand in-process with stdin and returns its exit
// code, stdout and stderr.
func runCommand(t *testing.T, c command, stdin []byte, args ...string) (int, []byte, string) {
	t.Helper()
	var out bytes.Buffer
	errs := &syncBuffer{}
	switch c := c.(type) {
	case *exportCommand:
		c.stdout, c.stderr, c.environ = &out, errs, func() []string { return nil }
	case *importCommand:
		c.stdout, c.stderr, c.environ, c.stdin = &out, errs, func() []string { return nil }, bytes.NewReader(stdin)
	case *migrateCommand:
		c.stdout, c.stderr, c.environ = &out, errs, func() []string { return nil }
	}
	code := codeOf(c.Run(context.Background(), args), errs)
	return code, out.Bytes(), errs.String()
}

// contents is everything a dump moves, read from a store.
type contents struct {
	Tasks   map[uuid.UUID]*store.Task
	History map[uuid.UUID][]store.HistoryEntry
	Counts  []store.NodeCount
	Audit   []store.AuditEntry
	Jobs    []*store.Job
	Results map[uuid.UUID][]store.JobResult
}

func readContents(t *testing.T, st store.Store) contents {
	t.Helper()
	ctx := context.Background()
	c := contents{Tasks: map[uuid.UUID]*store.Task{}, History: map[uuid.UUID][]store.HistoryEntry{}, Results: map[uuid.UUID][]store.JobResult{}}
	f := store.Filter{Limit: 7} // several pages
	for {
		page, err := st.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range page.Tasks {
			c.Tasks[task.ID] = task
			if c.History[task.ID], err = st.History(ctx, task.ID); err != nil {
				t.Fatal(err)
			}
		}
		if f.Cursor = page.Next; f.Cursor == "" {
			break
		}
	}
	var err error
	if c.Counts, err = st.Counts(ctx, ""); err != nil {
		t.Fatal(err)
	}
	audit, err := st.Audit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	c.Audit = audit.Entries
	if c.Jobs, err = st.Jobs(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	for _, j := range c.Jobs {
		rs, _, err := st.JobResults(ctx, j.ID, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		c.Results[j.ID] = rs
	}
	return c
}

// sameContents fails unless two stores hold the same things; revisions are
// the stores' own.
func sameContents(t *testing.T, what string, want, got contents) {
	t.Helper()
	opts := cmp.Options{
		cmpopts.EquateEmpty(),
		cmpopts.IgnoreFields(store.Task{}, "Rev"),
		cmpopts.IgnoreFields(store.Job{}, "Rev"),
		cmpopts.SortSlices(func(a, b store.NodeCount) bool { return a.Process+"/"+a.Node < b.Process+"/"+b.Node }),
	}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// addOddTasks commits tasks in the states a running service leaves them in
// that the seed flow did not reach: runnable, waiting with a timer and
// early callbacks, escalated, with marks; and a bulk job with results.
func addOddTasks(t *testing.T, path string) {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	at := time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)
	base := store.Task{Process: "liqpay-hold", Version: "", Data: []byte(`{"card":"enc:v1:AAAA","amount":"1.00"}`),
		Created: at, Updated: at, Entered: at, HistoryLen: 1}
	v, err := st.List(ctx, store.Filter{Limit: 1})
	if err != nil || len(v.Tasks) == 0 {
		t.Fatalf("no task to copy the version of: %v", err)
	}
	base.Version = v.Tasks[0].Version
	var ids []uuid.UUID
	for i, mutate := range []func(*store.Task){
		func(k *store.Task) { k.Node, k.Status, k.Attempt = "calling_api", store.StatusActive, 2 },
		func(k *store.Task) {
			k.Node, k.Status, k.TimerAt, k.Timer = "receive_callback", store.StatusWaiting, at.Add(time.Hour), "timeout"
			k.Marks = []store.Mark{{Hash: "abc", Node: "receive_callback", At: at}}
		},
		func(k *store.Task) {
			k.Node, k.Status, k.Attempt, k.TimerAt, k.Timer = "calling_api", store.StatusActive, 3, at.Add(time.Second), "retry"
			k.Early = []store.Early{{ContentType: "application/x-www-form-urlencoded", Body: []byte("data=x&signature=y"), At: at}}
		},
		func(k *store.Task) {
			k.Node, k.Status, k.Error = "escalation", store.StatusEscalated, &store.TaskError{Code: "limit", Description: "no", Node: "calling_api"}
		},
	} {
		task := base
		task.ID, task.Ref, task.Token = uuid.Must(uuid.NewV7()), fmt.Sprint("odd-", i), fmt.Sprint("token-", i)
		mutate(&task)
		err := st.Commit(ctx, store.Change{Task: &task, History: []store.HistoryEntry{{At: at, To: task.Node, Event: "submit", Actor: "api", Detail: "ünïcode"}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}
	job := &store.Job{ID: uuid.Must(uuid.NewV7()), Action: store.JobCancel, Filter: store.JobFilter{Process: "liqpay-hold", Node: "escalation"},
		Actor: "token:ops", Rate: 10, Status: store.JobDone, Total: 2, Done: 2, Succeeded: 1, Failed: 1, Created: at, Updated: at, Started: at, Finished: at}
	if err := st.PutJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if err := st.PutJobResults(ctx, job.ID, []store.JobResult{{TaskID: ids[3], OK: true, At: at}, {TaskID: ids[0], Error: "not escalated", At: at}}); err != nil {
		t.Fatal(err)
	}
}

func TestExportImport_roundTrip(t *testing.T) {
	t.Parallel()
	pg := pgSchema(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "source.db")
	ctx := context.Background()

	// Real tasks first: holds through the simulator (sealed card, erased
	// CVV), a decline, an operator's cancel (an audit entry).
	s := startServe(t, nil, "--addr", "127.0.0.1:0", "--db", src, "--sandbox")
	c := client.New(s.url, "", nil)
	var held string
	for i, card := range []string{"4242424242424242", "4242424242424242", "4000000000000002"} {
		task, _, err := c.Submit(ctx, "liqpay-hold", fmt.Sprint("r", i), json.RawMessage(fmt.Sprintf(input, fmt.Sprint("o", i), card)))
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			awaitTask(t, c, task.ID, "escalated")
			if _, err := c.Cancel(ctx, task.ID, "declined, customer told"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		held = awaitTask(t, c, task.ID, "succeeded").ID
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, s.stderr)
	}
	addOddTasks(t, src)

	code, dump, errs := runCommand(t, &exportCommand{}, nil, "--db", src)
	if code != 0 {
		t.Fatalf("export --db: exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "7 tasks") || bytes.Contains(dump, []byte("4242424242424242")) {
		t.Errorf("export said %q; the dump holds a clear card number: %v", errs, bytes.Contains(dump, []byte("4242424242424242")))
	}
	if code, _, errs := runCommand(t, &importCommand{}, dump, "--store", pg); code != 0 {
		t.Fatalf("import --store: exit %d: %s", code, errs)
	}
	code, dump2, errs := runCommand(t, &exportCommand{}, nil, "--store", pg)
	if code != 0 {
		t.Fatalf("export --store: exit %d: %s", code, errs)
	}
	back := filepath.Join(dir, "back.db")
	if code, _, errs := runCommand(t, &importCommand{}, dump2, "--db", back); code != 0 {
		t.Fatalf("import --db: exit %d: %s", code, errs)
	}

	want := func() contents {
		st, err := bolt.Open(src, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		return readContents(t, st)
	}()
	if len(want.Tasks) != 7 || len(want.Audit) != 1 || len(want.Jobs) != 1 {
		t.Fatalf("the source holds %d tasks, %d audit entries, %d jobs; want 7, 1, 1", len(want.Tasks), len(want.Audit), len(want.Jobs))
	}
	pgStore, err := openStore(ctx, "", pg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameContents(t, "PostgreSQL after import", want, readContents(t, pgStore))
	pgStore.Close()
	bst, err := bolt.Open(back, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameContents(t, "bolt after the round trip", want, readContents(t, bst))
	if err := bst.Check(); err != nil {
		t.Errorf("bolt file after import: %v", err)
	}
	bst.Close()

	t.Run("the_copy_serves_with_the_same_key", func(t *testing.T) {
		s := startServe(t, nil, "--addr", "127.0.0.1:0", "--store", pg, "--key", src+".key", "--sandbox")
		got, err := client.New(s.url, "", nil).Task(ctx, held)
		if err != nil || got.Status != "succeeded" || got.Data["card"] != "424242******4242" || got.Data["card_cvv"] != nil {
			t.Errorf("task on PostgreSQL: %v %+v", err, got)
		}
		if code := s.stop(); code != 0 {
			t.Errorf("serve exited %d:\n%s", code, s.stderr)
		}
	})

	t.Run("serve_refuses_a_new_key_for_a_database_with_tasks", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "new.key")
		err := (&serveCommand{stdout: &bytes.Buffer{}, stderr: &syncBuffer{}, environ: func() []string { return nil }}).
			Run(ctx, []string{"--addr", "127.0.0.1:0", "--store", pg, "--key", key, "--sandbox"})
		if err == nil || !strings.Contains(err.Error(), "holds tasks but the key file") {
			t.Errorf("serve with a missing key: %v", err)
		}
		if _, err := os.Stat(key); err == nil {
			t.Error("serve created a key for a database with tasks")
		}
		code := codeOf((&serveCommand{stdout: &bytes.Buffer{}, stderr: &syncBuffer{}}).Run(ctx, []string{"--db", src, "--store", pg}), &syncBuffer{})
		if code != 2 {
			t.Errorf("serve --db --store: exit %d, want 2", code)
		}
	})

	t.Run("a_second_import_stops_at_the_first_task_held", func(t *testing.T) {
		code, _, errs := runCommand(t, &importCommand{}, dump, "--db", back)
		if code != 1 || !strings.Contains(errs, "already exists") {
			t.Errorf("exit %d: %s", code, errs)
		}
		code, _, errs = runCommand(t, &importCommand{}, dump, "--db", back, "--skip-existing")
		if code != 0 || !strings.Contains(errs, "skipped 8 held already") {
			t.Errorf("with --skip-existing: exit %d: %s", code, errs)
		}
	})

	t.Run("a_cut_short_dump_is_refused", func(t *testing.T) {
		lines := bytes.SplitAfter(dump, []byte("\n"))
		short := bytes.Join(lines[:len(lines)-2], nil)
		code, _, errs := runCommand(t, &importCommand{}, short, "--db", filepath.Join(t.TempDir(), "short.db"))
		if code != 1 || !strings.Contains(errs, "cut short") {
			t.Errorf("exit %d: %s", code, errs)
		}
		code, _, errs = runCommand(t, &importCommand{}, []byte(`{"task":{}}`+"\n"), "--db", filepath.Join(t.TempDir(), "x.db"))
		if code != 1 || !strings.Contains(errs, "not a conveyor dump") {
			t.Errorf("no header: exit %d: %s", code, errs)
		}
	})

	t.Run("usage", func(t *testing.T) {
		if code, _, _ := runCommand(t, &exportCommand{}, nil, "--db", src, "--store", pg); code != 2 {
			t.Errorf("--db and --store: exit %d, want 2", code)
		}
		if code, _, errs := runCommand(t, &exportCommand{}, nil, "--db", filepath.Join(dir, "missing.db")); code != 1 || !strings.Contains(errs, "no such file") {
			t.Errorf("export of a missing file: exit %d: %s", code, errs)
		}
	})
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	pg := pgSchema(t)
	code, out, errs := runCommand(t, &migrateCommand{}, nil, "--store", pg)
	if code != 0 || !strings.Contains(string(out), "applied 0001_init.sql") {
		t.Fatalf("first migrate: exit %d, %s %s", code, out, errs)
	}
	code, out, _ = runCommand(t, &migrateCommand{}, nil, "--store", pg)
	if code != 0 || strings.TrimSpace(string(out)) != "the schema is up to date" {
		t.Errorf("second migrate: exit %d, %s", code, out)
	}
	if code, _, _ := runCommand(t, &migrateCommand{}, nil); code != 2 {
		t.Errorf("without --store: exit %d, want 2", code)
	}
}

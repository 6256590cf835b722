package bolt

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// TestOpen_upgradesSchema1 opens a file as version 1 left it (no audit log,
// jobs or alarms) and expects the audit log filled from the history.
func TestOpen_upgradesSchema1(t *testing.T) {
	t.Parallel()
	ctx, path := t.Context(), tempPath(t)
	db := openTest(t, path, Options{})
	task := newTask("payment", "order-1")
	if err := db.Commit(ctx, creation(task)); err != nil {
		t.Fatal(err)
	}
	rev := task.Rev
	task.Node, task.HistoryLen = "done", 2
	move := store.HistoryEntry{Seq: 1, At: task.Created, From: "start", To: "done", Event: "operator_move", Actor: "token:alice", Reason: "stuck"}
	if err := db.Commit(ctx, store.Change{Task: task, Rev: rev, History: []store.HistoryEntry{move}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bbolt.Tx) error {
		if err := asSchema5(tx); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketAudit, bucketAuditByTask, bucketJobs, bucketJobResults, bucketAlarms, bucketAlarmLog} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(schemaKey, putUint32(1))
	})
	if cerr := raw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	db = openTest(t, path, Options{})
	page, err := db.Audit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.AuditEntry{store.NewAuditEntry(task, &move)}
	if diff := cmp.Diff(want, page.Entries); diff != "" {
		t.Errorf("Audit after the upgrade (-want +got):\n%s", diff)
	}
	mustCheck(t, db)
}

// TestOpen_upgradesSchema2 opens a file as version 2 left it, with its
// runnable index, and expects the index dropped and Runnable served from
// the "active" ranges of bystate, in id order.
func TestOpen_upgradesSchema2(t *testing.T) {
	t.Parallel()
	ctx, path := t.Context(), tempPath(t)
	db := openTest(t, path, Options{})
	active := []*store.Task{newTask("payment", "a"), newTask("payment", "b"), newTask("payment", "c")}
	done := newTask("payment", "d")
	for _, task := range append(active, done) {
		if err := db.Commit(ctx, creation(task)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Commit(ctx, finishing(done, store.StatusSucceeded)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rewrite(t, path, func(tx *bbolt.Tx) error {
		if err := asSchema5(tx); err != nil {
			return err
		}
		b, err := tx.CreateBucket(bucketRunnable)
		if err != nil {
			return err
		}
		for _, task := range active {
			if err := b.Put(task.ID[:], empty); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(schemaKey, putUint32(2))
	})

	db = openTest(t, path, Options{})
	mustCheck(t, db)
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketRunnable) != nil {
			t.Error("the runnable bucket is still there after the upgrade")
		}
		if v := getUint32(tx.Bucket(bucketMeta).Get(schemaKey)); v != schemaVersion {
			t.Errorf("schema version %d after the upgrade, want %d", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []uuid.UUID
	for _, task := range active {
		want = append(want, task.ID)
	}
	got, err := db.Runnable(ctx, uuid.Nil, 10)
	if err != nil || !cmp.Equal(want, got) {
		t.Errorf("Runnable = %v, %v; want the active tasks %v", got, err, want)
	}
	if got, _ := db.Runnable(ctx, active[0].ID, 1); !cmp.Equal(want[1:2], got) {
		t.Errorf("Runnable after the first, limit 1 = %v, want %v", got, want[1:2])
	}
}

// TestOpen_refusesANewerSchema keeps a file written by a newer build, whose
// format this one cannot know, untouched.
func TestOpen_refusesANewerSchema(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	db := openTest(t, path, Options{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rewrite(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(schemaKey, putUint32(schemaVersion+1))
	})
	if db, err := Open(path, Options{}); err == nil {
		db.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
}

// TestOpen_upgradesSchema3 opens a file as version 3 left it, one whole
// record per task and no bodies: reads serve the old records, a commit
// writes its task split and leaves the others alone, a timeout-like commit
// that keeps the body writes only the state, and purging an old record
// works.
func TestOpen_upgradesSchema3(t *testing.T) {
	t.Parallel()
	ctx, path := t.Context(), tempPath(t)
	db := openTest(t, path, Options{})
	tasks := []*store.Task{newTask("payment", "a"), newTask("payment", "b"), newTask("payment", "c")}
	for _, task := range tasks {
		task.Token = "tok-" + task.Ref
		if err := db.Commit(ctx, creation(task)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rewrite(t, path, func(tx *bbolt.Tx) error {
		for _, task := range tasks {
			if err := tx.Bucket(bucketTasks).Put(task.ID[:], encodeTaskV1(task)); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketBodies); err != nil {
			return err
		}
		if err := asSchema5(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(schemaKey, putUint32(3))
	})

	db = openTest(t, path, Options{})
	mustCheck(t, db)
	for _, task := range tasks {
		got, err := db.TaskByToken(ctx, task.Token)
		if err != nil || !cmp.Equal(task, got) {
			t.Fatalf("TaskByToken of a schema 3 record = %+v, %v; want %+v", got, err, task)
		}
	}
	page, err := db.List(ctx, store.Filter{})
	if err != nil || len(page.Tasks) != 3 {
		t.Fatalf("List over schema 3 records = %d tasks, %v; want 3", len(page.Tasks), err)
	}

	// a: a move that keeps the body; b: a move that changes the data.
	a, b := tasks[0].Clone(), tasks[1].Clone()
	a.Node, a.Entered = "wait", a.Entered.Add(time.Second)
	b.Node, b.Data = "wait", []byte(`{"amount":200}`)
	for _, task := range []*store.Task{a, b} {
		if err := db.Commit(ctx, store.Change{Task: task, Rev: task.Rev}); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, db)
	var bodyOfA []byte
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		if v := getUint32(tx.Bucket(bucketMeta).Get(schemaKey)); v != schemaVersion {
			t.Errorf("schema version %d after the upgrade, want %d", v, schemaVersion)
		}
		for _, task := range tasks {
			split := task.ID != tasks[2].ID
			v := tx.Bucket(bucketTasks).Get(task.ID[:])
			if got := v[0] == recordV2; got != split {
				t.Errorf("task %s stored split: %v, want %v", task.Ref, got, split)
			}
			if got := tx.Bucket(bucketBodies).Get(task.ID[:]) != nil; got != split {
				t.Errorf("task %s has a body: %v, want %v", task.Ref, got, split)
			}
		}
		bodyOfA = bytes.Clone(tx.Bucket(bucketBodies).Get(a.ID[:]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*store.Task{a, b, tasks[2]} {
		if got, err := db.Task(ctx, want.ID); err != nil || !cmp.Equal(want, got) {
			t.Errorf("Task %s = %+v, %v; want %+v", want.Ref, got, err, want)
		}
	}

	// A second move of a with the same body keeps its body record byte for byte.
	a.Node = "done"
	if err := db.Commit(ctx, store.Change{Task: a, Rev: a.Rev}); err != nil {
		t.Fatal(err)
	}
	_ = db.bolt.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketBodies).Get(a.ID[:]); !bytes.Equal(v, bodyOfA) {
			t.Errorf("the body of a move that kept it changed:\n%x\n%x", bodyOfA, v)
		}
		return nil
	})

	c := tasks[2]
	if err := db.Commit(ctx, finishing(c, store.StatusSucceeded)); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Purge(ctx, c.Finished.Add(time.Second), 10); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	if _, err := db.Task(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Task of a purged task: %v, want not found", err)
	}
	mustCheck(t, db)
}

// asSchema5 turns a file's bystate index back into the bynode and bystatus
// indexes of schema 5, and marks the file version 5.
func asSchema5(tx *bbolt.Tx) error {
	byNode, err := tx.CreateBucket(bucketByNode)
	if err != nil {
		return err
	}
	byStatus, err := tx.CreateBucket(bucketByStatus)
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketByState).ForEach(func(k, _ []byte) error {
		id := k[len(k)-16:]
		p := split(k[:len(k)-17])
		if err := byNode.Put(append(append(join(p[1], p[2]), 0), id...), empty); err != nil {
			return err
		}
		return byStatus.Put(append(append([]byte(p[0]), 0), id...), empty)
	})
	if err != nil {
		return err
	}
	if err := tx.DeleteBucket(bucketByState); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(schemaKey, putUint32(5))
}

// TestOpen_upgradesSchema5 opens a file as version 5 left it, with separate
// bynode and bystatus indexes, and expects them replaced by bystate, built
// one task per transaction, which then serves the lists by node and by
// status and Runnable, and follows the tasks' next moves.
func TestOpen_upgradesSchema5(t *testing.T) {
	t.Parallel()
	ctx, path := t.Context(), tempPath(t)
	db := openTest(t, path, Options{})
	start, wait, done, refund := newTask("payment", "a"), newTask("payment", "b"), newTask("payment", "c"), newTask("refund", "d")
	for _, task := range []*store.Task{start, wait, done, refund} {
		if err := db.Commit(ctx, creation(task)); err != nil {
			t.Fatal(err)
		}
	}
	mv := moving(wait, "wait")
	wait.Status = store.StatusWaiting
	if err := db.Commit(ctx, mv, finishing(done, store.StatusSucceeded)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rewrite(t, path, asSchema5)

	var logged bytes.Buffer
	// One task per transaction: the upgrade must carry on where each
	// transaction stopped.
	db = openTest(t, path, Options{Logger: slog.New(slog.NewTextHandler(&logged, nil)), upgradeChunk: 1})
	if l := logged.String(); !strings.Contains(l, "store upgraded") || !strings.Contains(l, "from_schema=5 to_schema=6") {
		t.Errorf("log of the upgrading Open = %q, want a line saying store upgraded from schema 5 to 6", l)
	}
	mustCheck(t, db)
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketByNode, bucketByStatus} {
			if tx.Bucket(name) != nil {
				t.Errorf("the %s bucket is still there after the upgrade", name)
			}
		}
		if v := getUint32(tx.Bucket(bucketMeta).Get(schemaKey)); v != schemaVersion {
			t.Errorf("schema version %d after the upgrade, want %d", v, schemaVersion)
		}
		if n := tx.Bucket(bucketByState).Stats().KeyN; n != 4 {
			t.Errorf("bystate holds %d entries after the upgrade, want 4", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	list := func(f store.Filter) []uuid.UUID {
		t.Helper()
		page, err := db.List(ctx, f)
		if err != nil {
			t.Fatalf("List %+v: %v", f, err)
		}
		var got []uuid.UUID
		for _, task := range page.Tasks {
			got = append(got, task.ID)
		}
		return got
	}
	for _, tc := range []struct {
		f    store.Filter
		want []uuid.UUID
	}{
		{store.Filter{Process: "payment", Node: "start"}, []uuid.UUID{start.ID}},
		{store.Filter{Process: "payment", Node: "wait"}, []uuid.UUID{wait.ID}},
		{store.Filter{Status: store.StatusActive}, []uuid.UUID{refund.ID, start.ID}},
		{store.Filter{Status: store.StatusSucceeded}, []uuid.UUID{done.ID}},
	} {
		if got := list(tc.f); !cmp.Equal(tc.want, got) {
			t.Errorf("List %+v after the upgrade = %v, want %v", tc.f, got, tc.want)
		}
	}
	if got, err := db.Runnable(ctx, uuid.Nil, 10); err != nil || !cmp.Equal([]uuid.UUID{start.ID, refund.ID}, got) {
		t.Errorf("Runnable after the upgrade = %v, %v; want %v", got, err, []uuid.UUID{start.ID, refund.ID})
	}

	// The next move of an upgraded task updates bystate.
	if err := db.Commit(ctx, finishing(start, store.StatusFailed)); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, db)
	if got := list(store.Filter{Status: store.StatusFailed}); !cmp.Equal([]uuid.UUID{start.ID}, got) {
		t.Errorf("List of failed tasks after a move = %v, want %v", got, []uuid.UUID{start.ID})
	}
	if got := list(store.Filter{Process: "payment", Node: "start"}); len(got) != 0 {
		t.Errorf("List of node start after the move = %v, want none", got)
	}
}

// TestOpen_redoesAnUpgradeCutShort opens a version 5 file holding a bystate
// index that an upgrade cut short left behind (an older build may have
// moved its tasks since): the upgrade starts again from an empty index.
func TestOpen_redoesAnUpgradeCutShort(t *testing.T) {
	t.Parallel()
	ctx, path := t.Context(), tempPath(t)
	db := openTest(t, path, Options{})
	a, b := newTask("payment", "a"), newTask("payment", "b")
	if err := db.Commit(ctx, creation(a), creation(b)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rewrite(t, path, func(tx *bbolt.Tx) error {
		if err := asSchema5(tx); err != nil {
			return err
		}
		// What the cut upgrade had indexed: a in a status it has left.
		stale, err := tx.CreateBucket(bucketByState)
		if err != nil {
			return err
		}
		return stale.Put(withID(statePrefix(store.StatusWaiting, "payment", "wait"), a.ID), empty)
	})

	db = openTest(t, path, Options{upgradeChunk: 1})
	mustCheck(t, db)
	page, err := db.List(ctx, store.Filter{Status: store.StatusWaiting})
	if err != nil || len(page.Tasks) != 0 {
		t.Errorf("List of waiting tasks = %d tasks, %v; want none (the stale entry dropped)", len(page.Tasks), err)
	}
	if got, err := db.Runnable(ctx, uuid.Nil, 10); err != nil || !cmp.Equal([]uuid.UUID{a.ID, b.ID}, got) {
		t.Errorf("Runnable = %v, %v; want both tasks", got, err)
	}
}

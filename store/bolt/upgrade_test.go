package bolt

import (
	"bytes"
	"errors"
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
// bystatus's "active" range, in id order.
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

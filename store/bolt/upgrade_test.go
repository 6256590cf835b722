package bolt

import (
	"testing"

	"github.com/google/go-cmp/cmp"
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

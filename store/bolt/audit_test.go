package bolt

import (
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

func TestDB_Check_audit(t *testing.T) {
	t.Parallel()
	for name, damage := range map[string]func(tx *bbolt.Tx, key []byte) error{
		"a_missing_audit_entry": func(tx *bbolt.Tx, key []byte) error {
			if err := tx.Bucket(bucketAudit).Delete(key); err != nil {
				return err
			}
			return tx.Bucket(bucketAuditByTask).Delete(auditByTaskKey(key))
		},
		"a_missing_auditbytask_entry": func(tx *bbolt.Tx, key []byte) error {
			return tx.Bucket(bucketAuditByTask).Delete(auditByTaskKey(key))
		},
		"an_entry_that_differs_from_the_history": func(tx *bbolt.Tx, key []byte) error {
			return tx.Bucket(bucketAudit).Put(key, []byte(`{"actor":"mallory"}`))
		},
	} {
		t.Run("reports_"+name, func(t *testing.T) {
			t.Parallel()
			db := openTest(t, tempPath(t), Options{})
			task := newTask("payment", "")
			if err := db.Commit(t.Context(), creation(task)); err != nil {
				t.Fatal(err)
			}
			rev := task.Rev
			task.HistoryLen = 2
			move := store.HistoryEntry{Seq: 1, At: task.Created, From: "start", To: "done", Event: "operator_move", Actor: "token:alice"}
			if err := db.Commit(t.Context(), store.Change{Task: task, Rev: rev, History: []store.HistoryEntry{move}}); err != nil {
				t.Fatal(err)
			}
			mustCheck(t, db)
			if err := db.bolt.Update(func(tx *bbolt.Tx) error { return damage(tx, auditKey(move.At, task.ID, 1)) }); err != nil {
				t.Fatal(err)
			}
			if err := db.Check(); err == nil || !strings.Contains(err.Error(), "audit") {
				t.Errorf("Check = %v, want it to report the audit log", err)
			}
		})
	}
}

package postgres

import (
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/store"
)

func TestDB_Check_audit(t *testing.T) {
	t.Parallel()
	for name, damage := range map[string]string{
		"a_missing_audit_entry":                  `DELETE FROM audit`,
		"an_entry_that_differs_from_the_history": `UPDATE audit SET actor = 'mallory'`,
		"an_entry_the_history_lacks":             `UPDATE audit SET seq = 7`,
	} {
		t.Run("reports_"+name, func(t *testing.T) {
			t.Parallel()
			db, _, u := setup(t)
			task := newTask("payment", "")
			mustCommit(t, db, creation(task))
			c := step(task, func(t *store.Task) { t.Node = "done" })
			c.History[0].Event, c.History[0].Actor = "operator_move", "token:alice"
			mustCommit(t, db, c)
			mustCheck(t, db)
			admin(t, u, damage)
			if err := db.Check(); err == nil || !strings.Contains(err.Error(), "audit") {
				t.Errorf("Check = %v, want it to report the audit log", err)
			}
		})
	}
}

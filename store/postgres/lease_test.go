package postgres

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/store"
)

// createActive commits n new active tasks and returns their ids in order.
func createActive(t *testing.T, db *DB, n int) []uuid.UUID {
	t.Helper()
	changes := make([]store.Change, n)
	ids := make([]uuid.UUID, n)
	for i := range changes {
		task := newTask("payment", "")
		changes[i], ids[i] = creation(task), task.ID
	}
	mustCommit(t, db, changes...)
	sortIDs(ids)
	return ids
}

// claim claims runnable tasks for owner, failing the test on error.
func claim(t *testing.T, db *DB, owner string, lease time.Duration, limit int) []uuid.UUID {
	t.Helper()
	ids, err := db.ClaimRunnable(t.Context(), owner, lease, limit)
	if err != nil {
		t.Fatalf("ClaimRunnable(%s): %v", owner, err)
	}
	return ids
}

// wantClaimed fails the test unless got equals want.
func wantClaimed(t *testing.T, what string, got, want []uuid.UUID) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func TestDB_ClaimRunnable(t *testing.T) {
	t.Parallel()
	t.Run("never_gives_two_owners_the_same_task", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		ids := createActive(t, db, 10)
		waiting := newTask("payment", "")
		waiting.Status, waiting.Node = store.StatusWaiting, "wait"
		mustCommit(t, db, creation(waiting))

		wantClaimed(t, "owner a's claim", claim(t, db, "node-a", time.Minute, 4), ids[:4])
		wantClaimed(t, "owner b's claim", claim(t, db, "node-b", time.Minute, 100), ids[4:])
		wantClaimed(t, "owner a's second claim", claim(t, db, "node-a", time.Minute, 100), nil)
		mustCheck(t, db)
	})
	t.Run("shares_the_tasks_among_concurrent_claims_without_duplicates", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		ids := createActive(t, db, 200)
		var mu sync.Mutex
		seen := map[uuid.UUID]string{}
		var wg sync.WaitGroup
		for i := range 8 {
			owner := "node-" + string(rune('a'+i))
			wg.Go(func() {
				for {
					got, err := db.ClaimRunnable(t.Context(), owner, time.Minute, 7)
					if err != nil {
						t.Errorf("ClaimRunnable(%s): %v", owner, err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, id := range got {
						if other, dup := seen[id]; dup {
							t.Errorf("task %s claimed by %s and %s", id, other, owner)
						}
						seen[id] = owner
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != len(ids) {
			t.Errorf("%d of %d tasks claimed", len(seen), len(ids))
		}
	})
	t.Run("takes_a_task_whose_lease_expired", func(t *testing.T) {
		t.Parallel()
		db, clk, _ := setup(t)
		ids := createActive(t, db, 1)
		claim(t, db, "node-a", time.Minute, 10)
		clk.advance(59 * time.Second)
		wantClaimed(t, "claim before the lease expires", claim(t, db, "node-b", time.Minute, 10), nil)
		clk.advance(time.Second)
		wantClaimed(t, "claim once the lease expired", claim(t, db, "node-b", time.Minute, 10), ids)
	})
	t.Run("is_not_disturbed_by_commits", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		task := newTask("payment", "")
		mustCommit(t, db, creation(task))
		claim(t, db, "node-a", time.Minute, 10)
		mustCommit(t, db, step(task, func(t *store.Task) { t.Node = "charge" }))
		wantClaimed(t, "claim of a leased task after a commit", claim(t, db, "node-b", time.Minute, 10), nil)
	})
	t.Run("rejects_an_empty_owner_or_lease", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		if _, err := db.ClaimRunnable(t.Context(), "", time.Minute, 1); conveyor.ErrorCode(err) != conveyor.EInvalid {
			t.Errorf("ClaimRunnable without an owner = %v, want EInvalid", err)
		}
		if _, err := db.ClaimRunnable(t.Context(), "node-a", 0, 1); conveyor.ErrorCode(err) != conveyor.EInvalid {
			t.Errorf("ClaimRunnable without a lease = %v, want EInvalid", err)
		}
	})
}

func TestDB_RescueExpired(t *testing.T) {
	t.Parallel()
	t.Run("frees_the_leases_of_a_dead_node_once_they_expire", func(t *testing.T) {
		t.Parallel()
		db, clk, _ := setup(t)
		ctx := t.Context()
		ids := createActive(t, db, 3)
		claim(t, db, "dead-node", time.Minute, 2)
		claim(t, db, "live-node", 2*time.Minute, 1)
		if n, err := db.RescueExpired(ctx, clk.now().Add(59*time.Second)); n != 0 || err != nil {
			t.Errorf("RescueExpired before expiry = %d, %v; want 0", n, err)
		}
		if n, err := db.RescueExpired(ctx, clk.now().Add(time.Minute)); n != 2 || err != nil {
			t.Errorf("RescueExpired at expiry = %d, %v; want the dead node's 2", n, err)
		}
		// The clock has not moved: only rescued tasks are free.
		wantClaimed(t, "claim after the rescue", claim(t, db, "new-node", time.Minute, 10), ids[:2])
		mustCheck(t, db)
	})
}

func TestDB_RenewLease(t *testing.T) {
	t.Parallel()
	t.Run("keeps_a_lease_past_its_first_expiry_until_it_is_lost", func(t *testing.T) {
		t.Parallel()
		db, clk, _ := setup(t)
		ctx := t.Context()
		ids := createActive(t, db, 2)
		claim(t, db, "node-a", time.Minute, 10)
		clk.advance(50 * time.Second)
		renewed, err := db.RenewLease(ctx, "node-a", ids, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantClaimed(t, "renewed", renewed, ids)
		clk.advance(30 * time.Second) // past the first lease, within the renewed one
		wantClaimed(t, "claim of renewed leases", claim(t, db, "node-b", time.Minute, 10), nil)

		clk.advance(time.Minute) // node-a stalled: its leases expire and node-b takes them
		wantClaimed(t, "claim of expired leases", claim(t, db, "node-b", time.Minute, 10), ids)
		renewed, err = db.RenewLease(ctx, "node-a", ids, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantClaimed(t, "renewed after losing the leases", renewed, nil)
	})
}

func TestDB_ReleaseLease(t *testing.T) {
	t.Parallel()
	t.Run("frees_only_the_owner's_leases", func(t *testing.T) {
		t.Parallel()
		db, _, _ := setup(t)
		ctx := t.Context()
		ids := createActive(t, db, 2)
		claim(t, db, "node-a", time.Minute, 1)
		claim(t, db, "node-b", time.Minute, 1)
		if err := db.ReleaseLease(ctx, "node-b", ids); err != nil {
			t.Fatal(err)
		}
		wantClaimed(t, "claim after node-b released", claim(t, db, "node-c", time.Minute, 10), ids[1:])
	})
}

func TestDB_ClaimDue(t *testing.T) {
	t.Parallel()
	t.Run("leases_due_timers_earliest_first_to_one_owner_at_a_time", func(t *testing.T) {
		t.Parallel()
		db, clk, _ := setup(t)
		ctx := t.Context()
		now := clk.now()
		late, early, future := newTask("payment", ""), newTask("payment", ""), newTask("payment", "")
		for task, at := range map[*store.Task]time.Duration{late: -time.Second, early: -time.Minute, future: time.Hour} {
			task.Status, task.Node, task.TimerAt = store.StatusWaiting, "wait", now.Add(at)
		}
		mustCommit(t, db, creation(late), creation(early), creation(future))

		got, err := db.ClaimDue(ctx, "node-a", now, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.Timer{{TaskID: early.ID, At: early.TimerAt}, {TaskID: late.ID, At: late.TimerAt}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ClaimDue (-want +got):\n%s", diff)
		}
		if got, err := db.ClaimDue(ctx, "node-b", now, time.Minute, 10); err != nil || len(got) != 0 {
			t.Errorf("ClaimDue of leased timers = %v, %v; want none", got, err)
		}
		if got, err := db.ClaimDue(ctx, "node-b", now.Add(2*time.Hour), time.Minute, 10); err != nil || len(got) != 3 {
			t.Errorf("ClaimDue after the leases expired and the last timer fell due = %v, %v; want all 3", got, err)
		}
	})
}

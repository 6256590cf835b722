package postgres

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/store"
)

func TestDB_TryLease(t *testing.T) {
	t.Parallel()
	db, c, _ := setup(t)
	ctx := t.Context()
	id := createActive(t, db, 1)[0]
	try := func(owner string, now time.Time) bool {
		t.Helper()
		ok, err := db.TryLease(ctx, owner, id, now, time.Minute)
		if err != nil {
			t.Fatalf("TryLease(%s): %v", owner, err)
		}
		return ok
	}
	now := c.now()
	if !try("node-a", now) {
		t.Fatal("a free task was not leased")
	}
	if !try("node-a", now.Add(time.Second)) {
		t.Error("the holder could not lease its own task again")
	}
	if try("node-b", now.Add(30*time.Second)) {
		t.Error("node-b took a live lease of node-a")
	}
	if !try("node-b", now.Add(2*time.Minute)) {
		t.Error("node-b could not take node-a's expired lease")
	}
	if ok, err := db.TryLease(ctx, "node-a", uuid.Must(uuid.NewV7()), now, time.Minute); ok || err != nil {
		t.Errorf("TryLease of a missing task = %v, %v; want false, nil", ok, err)
	}
	if _, err := db.TryLease(ctx, "", id, now, time.Minute); err == nil {
		t.Error("TryLease without an owner succeeded")
	}
	mustCheck(t, db)
}

func TestDB_ClaimIdle(t *testing.T) {
	t.Parallel()
	db, c, _ := setup(t)
	ctx := t.Context()
	now := c.now()
	// Tasks committed an hour ago, one a minute ago, one waiting for a retry
	// (a timer), one waiting for a callback, one leased to node-a.
	old := make([]*store.Task, 3)
	var changes []store.Change
	for i := range old {
		old[i] = newTask("payment", "")
		old[i].Updated = now.Add(-time.Hour)
		changes = append(changes, creation(old[i]))
	}
	fresh := newTask("payment", "")
	fresh.Updated = now.Add(-time.Minute)
	retry := newTask("payment", "")
	retry.Updated, retry.TimerAt, retry.Timer = now.Add(-time.Hour), now.Add(time.Hour), "retry"
	waiting := newTask("payment", "")
	waiting.Updated, waiting.Status, waiting.Node = now.Add(-time.Hour), store.StatusWaiting, "wait"
	mustCommit(t, db, append(changes, creation(fresh), creation(retry), creation(waiting))...)
	if ok, err := db.TryLease(ctx, "node-a", old[2].ID, now, time.Minute); !ok || err != nil {
		t.Fatalf("TryLease = %v, %v", ok, err)
	}

	ids, err := db.ClaimIdle(ctx, "node-b", now, 5*time.Minute, 10*time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []uuid.UUID{old[0].ID, old[1].ID}
	sortIDs(want)
	wantClaimed(t, "idle for 5 minutes", ids, want)

	ids, err = db.ClaimIdle(ctx, "node-c", now.Add(2*time.Minute), 30*time.Second, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	want = []uuid.UUID{old[2].ID, fresh.ID} // node-a's lease expired; b's has not
	sortIDs(want)
	wantClaimed(t, "two minutes later, idle for 30 seconds", ids, want)
	mustCheck(t, db)
}

func TestDB_ReleaseOwner(t *testing.T) {
	t.Parallel()
	db, c, _ := setup(t)
	ctx := t.Context()
	ids := createActive(t, db, 3)
	wantClaimed(t, "node-a's claim", claim(t, db, "node-a", time.Minute, 2), ids[:2])
	wantClaimed(t, "node-b's claim", claim(t, db, "node-b", time.Minute, 1), ids[2:])
	wake, err := db.Listen(ctx, db.Channel())
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.ReleaseOwner(ctx, "node-a")
	if err != nil || n != 2 {
		t.Fatalf("ReleaseOwner = %d, %v; want 2", n, err)
	}
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Error("releasing active tasks woke no listener")
	}
	ok, err := db.TryLease(ctx, "node-c", ids[0], c.now(), time.Minute)
	if !ok || err != nil {
		t.Errorf("a released task could not be leased: %v, %v", ok, err)
	}
	if ok, _ := db.TryLease(ctx, "node-c", ids[2], c.now(), time.Minute); ok {
		t.Error("ReleaseOwner(node-a) freed node-b's lease")
	}
	mustCheck(t, db)
}

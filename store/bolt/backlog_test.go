package bolt

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// moving is the change that moves t, still active, to node.
func moving(t *store.Task, node string) store.Change {
	rev, from := t.Rev, t.Node
	t.Node = node
	t.HistoryLen++
	return store.Change{Task: t, Rev: rev, History: []store.HistoryEntry{{Seq: t.HistoryLen - 1, From: from, To: node, Event: "next"}}}
}

// keys counts the keys of bucket name.
func keys(t *testing.T, db *DB, name []byte) int {
	t.Helper()
	n := 0
	if err := db.bolt.View(func(tx *bbolt.Tx) error { n = tx.Bucket(name).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// seqs is the sequence numbers of the task's history, in the order History
// returns them.
func seqs(t *testing.T, db *DB, id uuid.UUID) []uint32 {
	t.Helper()
	hs, err := db.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for _, h := range hs {
		out = append(out, h.Seq)
	}
	return out
}

// TestDB_historyBacklog: a group commit of at least backlogFrom changes puts
// the history it appends to existing tasks in the backlog, where History,
// Check and Purge see it as history; a task with entries there gets its
// next ones there too, whatever the size of their commit; and an idle
// writer moves the backlog into history, also after a restart.
func TestDB_historyBacklog(t *testing.T) {
	t.Parallel()
	ctx, path := context.Background(), tempPath(t)
	db, err := Open(path, Options{backlogIdle: time.Hour}) // moves nothing
	if err != nil {
		t.Fatal(err)
	}
	const n = backlogFrom + 88
	tasks := make([]*store.Task, n)
	var changes []store.Change
	for i := range tasks {
		tasks[i] = newTask("p", "")
		changes = append(changes, creation(tasks[i]))
	}
	if err := db.Commit(ctx, changes...); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, db, bucketBacklog); got != 0 {
		t.Fatalf("creating %d tasks put %d entries in the backlog, want none: a new task's history goes to history", n, got)
	}

	// One large group: half the tasks finish, half move on.
	changes = changes[:0]
	for i, task := range tasks {
		if i%2 == 0 {
			changes = append(changes, finishing(task, store.StatusSucceeded))
		} else {
			changes = append(changes, moving(task, "second"))
		}
	}
	if err := db.Commit(ctx, changes...); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, db, bucketBacklog); got != n {
		t.Fatalf("the backlog holds %d entries after a group of %d moves, want %d", got, n, n)
	}
	for _, task := range tasks[:3] {
		if got := seqs(t, db, task.ID); !slices.Equal(got, []uint32{0, 1}) {
			t.Errorf("task %s: history %v, want [0 1]", task.ID, got)
		}
	}
	mustCheck(t, db)

	// A small commit of a task with entries in the backlog appends there;
	// one of a task with none (a new one) appends to history.
	if err := db.Commit(ctx, moving(tasks[1], "third")); err != nil {
		t.Fatal(err)
	}
	fresh := newTask("p", "")
	if err := db.Commit(ctx, creation(fresh)); err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(ctx, moving(fresh, "second")); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, db, bucketBacklog); got != n+1 {
		t.Errorf("the backlog holds %d entries, want %d: only tasks[1]'s third entry joins it", got, n+1)
	}
	if got := seqs(t, db, tasks[1].ID); !slices.Equal(got, []uint32{0, 1, 2}) {
		t.Errorf("tasks[1]: history %v, want [0 1 2]", got)
	}
	mustCheck(t, db)

	// Purging the finished tasks deletes their entries from the backlog too.
	purged, err := db.Purge(ctx, time.Now().Add(time.Hour), 10*n)
	if err != nil {
		t.Fatal(err)
	}
	if purged != n/2 {
		t.Fatalf("purged %d tasks, want %d", purged, n/2)
	}
	if got := keys(t, db, bucketBacklog); got != n/2+1 {
		t.Errorf("the backlog holds %d entries after the purge, want %d", got, n/2+1)
	}
	if _, err := db.History(ctx, tasks[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("History of a purged task: %v, want ErrNotFound", err)
	}
	mustCheck(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened with the default pause, the idle writer moves the backlog,
	// and tells the observer.
	var mu sync.Mutex
	var seen []GroupCommit
	db = openTest(t, path, Options{Metrics: func(g GroupCommit) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, g)
	}})
	deadline := time.Now().Add(10 * time.Second)
	moves := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	// The observer hears of a move once its transaction has committed.
	for keys(t, db, bucketBacklog) > 0 || moves() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the backlog still holds %d entries after 10 s of an idle writer", keys(t, db, bucketBacklog))
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if len(seen) != 1 || seen[0].Requests != 0 || seen[0].Moved != n/2+1 || seen[0].Backlog != 0 || seen[0].Pages == 0 {
		t.Errorf("the observer saw %+v, want one move of %d entries that left none", seen, n/2+1)
	}
	mu.Unlock()
	if got := seqs(t, db, tasks[1].ID); !slices.Equal(got, []uint32{0, 1, 2}) {
		t.Errorf("tasks[1] after the move: history %v, want [0 1 2]", got)
	}
	if got := seqs(t, db, tasks[3].ID); !slices.Equal(got, []uint32{0, 1}) {
		t.Errorf("tasks[3] after the move: history %v, want [0 1]", got)
	}
	mustCheck(t, db)
}

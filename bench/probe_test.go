package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/store/bolt"
)

// The writer's note sums the group commits that ended inside the window
// only, and splits a transaction's time into the writer's work in memory
// and writing its pages.
func TestProbe_groupsBetween(t *testing.T) {
	p := newProbe()
	from := time.Now()
	p.storeCommit(bolt.GroupCommit{Requests: 10, Took: 4 * time.Millisecond, Write: 3 * time.Millisecond, Pages: 40})
	p.storeCommit(bolt.GroupCommit{Requests: 30, Took: 6 * time.Millisecond, Write: 1 * time.Millisecond, Pages: 60})
	to := from.Add(100 * time.Millisecond)
	p.groups = append(p.groups, groupCommit{end: to.Add(time.Millisecond), GroupCommit: bolt.GroupCommit{Requests: 1000, Took: time.Second}})

	g, ok := p.groupsBetween(from, to)
	if !ok {
		t.Fatal("no group commits in the window")
	}
	if g.perSecond != 20 || g.requests != 20 || g.pages != 50 || g.took != 5*time.Millisecond || g.write != 2*time.Millisecond {
		t.Errorf("groups = %+v, want 20/s of 20 commits, 50 pages, 5 ms of which 2 ms writing", g)
	}
	want := "the store's writer ran 20 group commits/s of 20.0 commits each, 5.00 ms per transaction, " +
		"of which 2.00 ms writing 50 pages (2.5 per commit) and syncing them, in a transaction 10 % of the time"
	if got := g.String(); got != want {
		t.Errorf("note:\n got %s\nwant %s", got, want)
	}
	if _, ok := p.groupsBetween(to, to.Add(-time.Second)); ok {
		t.Error("an empty window has group commits")
	}

	// A move of the history backlog answers no request: it is no group
	// commit, but the writer was in a transaction.
	p.storeCommit(bolt.GroupCommit{Took: 10 * time.Millisecond, Pages: 300, Moved: 8192})
	if g, _ = p.groupsBetween(from, to); g.requests != 20 || g.pages != 50 || g.moves != 1 {
		t.Errorf("with a move: groups = %+v, want 20 commits and 50 pages per group and one move", g)
	}
	if got := g.String(); !strings.HasSuffix(got, " (history backlog moves: 1, 10.00 ms each)") {
		t.Errorf("note with a move: %s", got)
	}

	// With the write-ahead log a group commit is one record appended and
	// synced; the writer's applies answer nobody and are told apart.
	p = newProbe()
	p.storeCommit(bolt.GroupCommit{Requests: 40, Took: 2 * time.Millisecond, Write: time.Millisecond, Logged: true})
	p.storeCommit(bolt.GroupCommit{Requests: 20, Took: 2 * time.Millisecond, Write: time.Millisecond, Logged: true})
	p.storeCommit(bolt.GroupCommit{Applied: 60, Took: 30 * time.Millisecond, Pages: 70})
	g, _ = p.groupsBetween(from, to)
	want = "the store's logger ran 20 group commits/s of 30.0 commits each, 2.00 ms per group, of which 1.00 ms appending its record " +
		"to the write-ahead log and syncing it, busy 4 % of the time; the writer applied 60 logged writes to the file in 1 transactions (30 ms in all)"
	if got := g.String(); got != want {
		t.Errorf("note with the log:\n got %s\nwant %s", got, want)
	}
}

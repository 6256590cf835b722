package store

import (
	"fmt"

	conveyor "github.com/conveyor-dev/conveyor"
)

// CheckRev checks a change's revision against the stored task (old, nil when
// there is none): the rules every backend's Commit applies, with the
// sentinel errors ErrExists, ErrNotFound and ErrConflict.
func CheckRev(old *Task, c Change) error {
	id := c.Task.ID
	switch {
	case c.Rev == 0 && old != nil:
		return fmt.Errorf("task %s: %w", id, ErrExists)
	case c.Rev > 0 && old == nil:
		return fmt.Errorf("task %s: %w", id, ErrNotFound)
	case c.Rev > 0 && old.Rev != c.Rev:
		return fmt.Errorf("task %s is at rev %d, the change expects %d: %w", id, old.Rev, c.Rev, ErrConflict)
	}
	return nil
}

// CheckHistory checks that a change's history entries continue the stored
// task's (Seq from old.HistoryLen) and that the new record counts them. A
// breach is an "invalid" error.
func CheckHistory(old, n *Task, entries []HistoryEntry) error {
	var base uint32
	if old != nil {
		base = old.HistoryLen
	}
	for i, h := range entries {
		if want := base + uint32(i); h.Seq != want {
			return conveyor.Errorf(conveyor.EInvalid, "store: task %s: history entry %d has seq %d, want %d", n.ID, i, h.Seq, want)
		}
	}
	if want := base + uint32(len(entries)); n.HistoryLen != want {
		return conveyor.Errorf(conveyor.EInvalid, "store: task %s: HistoryLen is %d, want %d (%d stored + %d appended)",
			n.ID, n.HistoryLen, want, base, len(entries))
	}
	return nil
}

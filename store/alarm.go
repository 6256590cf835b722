package store

import (
	"time"

	"github.com/google/uuid"
)

// AlarmCrossing records a node's queue alarm going on (the tasks in the node
// reached the threshold) or off (they fell below it). The latest crossing of
// a node is its alarm's state, kept so a restart does not fire it again.
type AlarmCrossing struct {
	Process string `json:"process"`
	Node    string `json:"node"`
	// Seq numbers the crossings of one node from 1.
	Seq uint64 `json:"seq"`
	// On is true when the count reached the threshold, false when it fell
	// below.
	On bool `json:"on"`
	// Count is the number of tasks in the node when the crossing was seen.
	Count     int64 `json:"count"`
	Threshold int   `json:"threshold"`
	// Signal is the process a signal task was started in, TaskID that task;
	// empty and uuid.Nil when the alarm has no signal.
	Signal string    `json:"signal,omitempty"`
	TaskID uuid.UUID `json:"task_id,omitzero"`
	At     time.Time `json:"at"`
}

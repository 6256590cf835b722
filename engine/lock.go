package engine

import (
	"sync"

	"github.com/google/uuid"
)

// taskLocks holds one mutex per task that has an event in progress, so the
// events of one task run one at a time while those of different tasks never
// wait for each other. A task's lock is held until its commit is on disk
// (milliseconds), so a fixed set of striped mutexes would make unrelated
// tasks queue behind each other's fsyncs as soon as a few hundred events are
// in flight: a burst of timeouts, or hundreds of concurrent flows.
type taskLocks struct {
	shards [64]lockShard
}

type lockShard struct {
	mu sync.Mutex
	m  map[uuid.UUID]*taskLock
}

// taskLock is one task's mutex and how many events hold or wait for it; the
// last one out removes it.
type taskLock struct {
	mu    sync.Mutex
	users int
}

// lock takes id's lock and returns the function that gives it back.
func (l *taskLocks) lock(id uuid.UUID) (unlock func()) {
	s := &l.shards[int(id[15])%len(l.shards)] // UUIDv7's last byte is random
	s.mu.Lock()
	if s.m == nil {
		s.m = map[uuid.UUID]*taskLock{}
	}
	tl := s.m[id]
	if tl == nil {
		tl = &taskLock{}
		s.m[id] = tl
	}
	tl.users++
	s.mu.Unlock()
	tl.mu.Lock()
	return func() {
		tl.mu.Unlock()
		s.mu.Lock()
		if tl.users--; tl.users == 0 {
			delete(s.m, id)
		}
		s.mu.Unlock()
	}
}

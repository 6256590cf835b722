package bolt

import (
	"bytes"
	"container/heap"
	"sync"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/store"
)

// overlay holds, for each task with a logged write that bbolt has not applied
// yet, the task's latest records, and the lookups the logger and the readers
// need of them: refs, tokens and timers.
//
// Locking, which keeps every read consistent with what was acknowledged:
//   - The logger inserts (after the log's fdatasync, before it answers) and
//     the applier prunes (after bbolt's commit) under mu.Lock, and neither
//     holds a bbolt transaction meanwhile.
//   - A reader takes mu.RLock, looks the task up, and on a miss opens its
//     bbolt transaction before it releases the lock. A task missing from the
//     overlay was then never in it, or was pruned, which happens only after
//     bbolt committed it: the transaction sees it either way.
//   - Nobody takes mu.RLock twice in one goroutine (a pending Lock would
//     deadlock it).
type overlay struct {
	mu     sync.RWMutex
	tasks  map[uuid.UUID]*ovTask
	refs   map[string]uuid.UUID // ref key -> the task holding it
	tokens map[string]uuid.UUID // callback token -> the task holding it
	// timers counts the entries of tasks with a timer.
	timers int

	// pruned counts prunes. floor, valid while floorAt == pruned, is a
	// timers-index key below which every entry belongs to a task in the
	// overlay: a burst of timeouts leaves thousands of such entries at the
	// front of the index until bbolt applies it, and Due seeks past them
	// instead of stepping over them on every read. Between two prunes
	// entries are only added, and bbolt's index only changes for tasks
	// still in the overlay, so the floor stays true. floorMu guards both,
	// for readers that hold mu.RLock only.
	pruned  uint64
	floorMu sync.Mutex
	floor   []byte
	floorAt uint64

	// due orders the overlay's timers for Due and NextDue, which would
	// otherwise sort every logged timer on each read (a million parked tasks
	// each have one). Entries are not removed when a timer moves or its task
	// is pruned: an entry whose task's timer (timers) is no longer its time
	// is stale, and dropped when it reaches the top. dueMu guards it, for
	// readers that hold mu.RLock only.
	dueMu sync.Mutex
	due   timerHeap
}

// timerHeap is a min-heap of timers by time, then task id.
type timerHeap []heapTimer

type heapTimer struct {
	at uint64 // nanos
	id uuid.UUID
}

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return bytes.Compare(h[i].id[:], h[j].id[:]) < 0
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(heapTimer)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// dueTimers returns up to limit timers of the overlay due at or before
// until, earliest first. The caller holds mu.RLock (or mu.Lock).
func (o *overlay) dueTimers(until uint64, limit int) []heapTimer {
	o.dueMu.Lock()
	defer o.dueMu.Unlock()
	var out []heapTimer
	for len(o.due) > 0 && len(out) < limit && o.due[0].at <= until {
		t := heap.Pop(&o.due).(heapTimer)
		if e := o.tasks[t.id]; e == nil || e.timer != t.at {
			continue // stale
		}
		out = append(out, t)
	}
	for _, t := range out {
		heap.Push(&o.due, t)
	}
	return out
}

// dueFloor returns the key to start Due's scan of the timers index from
// (nil: the first).
func (o *overlay) dueFloor() []byte {
	o.floorMu.Lock()
	defer o.floorMu.Unlock()
	if o.floorAt != o.pruned {
		return nil
	}
	return o.floor
}

// raiseFloor records that every timers-index entry below k belongs to a task
// in the overlay. The caller holds mu.RLock.
func (o *overlay) raiseFloor(k []byte) {
	o.floorMu.Lock()
	defer o.floorMu.Unlock()
	if o.floorAt != o.pruned || bytes.Compare(k, o.floor) > 0 {
		o.floor, o.floorAt = bytes.Clone(k), o.pruned
	}
}

// ovTask is a task's latest logged write.
type ovTask struct {
	// seq is the log record that wrote it; the applier prunes the entry once
	// bbolt has applied that record.
	seq         uint64
	state, body []byte
	ref, token  string // ref key, callback token
	timer       uint64 // the timer's time in Unix nanoseconds, 0 for none
}

func newOverlay() *overlay {
	return &overlay{tasks: map[uuid.UUID]*ovTask{}, refs: map[string]uuid.UUID{}, tokens: map[string]uuid.UUID{}}
}

// put records w, logged in record seq, whose state and body records are
// kept as the slices given (of the record's payload). The caller holds
// mu.Lock. It returns the entry.
func (o *overlay) put(seq uint64, w *write, state, body []byte) *ovTask {
	n := w.new
	e := &ovTask{seq: seq, state: state, body: body, ref: string(refKey(n)), token: n.Token}
	if !n.TimerAt.IsZero() {
		e.timer = nanos(n.TimerAt)
	}
	old := o.tasks[n.ID]
	if old != nil && old.token != e.token && o.tokens[old.token] == n.ID {
		delete(o.tokens, old.token)
	}
	if old != nil && old.timer != 0 {
		o.timers--
	}
	o.tasks[n.ID] = e
	if e.ref != "" {
		o.refs[e.ref] = n.ID
	}
	if e.token != "" {
		o.tokens[e.token] = n.ID
	}
	if e.timer != 0 {
		o.timers++
		o.dueMu.Lock()
		heap.Push(&o.due, heapTimer{at: e.timer, id: n.ID})
		if len(o.due) > 2*o.timers+1024 {
			o.rebuildDue()
		}
		o.dueMu.Unlock()
	}
	return e
}

// rebuildDue drops the stale entries of due. The caller holds mu.Lock and
// dueMu.
func (o *overlay) rebuildDue() {
	o.due = o.due[:0]
	for id, e := range o.tasks {
		if e.timer != 0 {
			o.due = append(o.due, heapTimer{at: e.timer, id: id})
		}
	}
	heap.Init(&o.due)
}

// prune drops the entries of ids that bbolt has applied (logged at or
// before seq). The caller holds mu.Lock.
func (o *overlay) prune(ids []uuid.UUID, seq uint64) {
	o.pruned++
	for _, id := range ids {
		e := o.tasks[id]
		if e == nil || e.seq > seq {
			continue
		}
		delete(o.tasks, id)
		if e.timer != 0 {
			o.timers--
		}
		if e.ref != "" && o.refs[e.ref] == id {
			delete(o.refs, e.ref)
		}
		if e.token != "" && o.tokens[e.token] == id {
			delete(o.tokens, e.token)
		}
	}
	o.dueMu.Lock()
	defer o.dueMu.Unlock()
	switch {
	case len(o.tasks) == 0:
		// Go's maps keep their size: after a burst, start small again.
		o.tasks, o.refs, o.tokens = map[uuid.UUID]*ovTask{}, map[string]uuid.UUID{}, map[string]uuid.UUID{}
		o.due = nil
	case len(o.due) > 2*o.timers+1024:
		o.rebuildDue()
	}
}

// task decodes an entry into the whole task.
func (e *ovTask) task(id uuid.UUID) (*store.Task, error) {
	t, err := decodeState(id, e.state)
	if err == nil {
		err = decodeBody(t, e.body, true)
	}
	if err != nil {
		return nil, internal("store: task %s: decode logged record: %v", id, err)
	}
	return t, nil
}

// staged is the overlay as one batch of the logger sees it: the overlay
// under the batch's writes that are validated but not logged yet, so that a
// later request of the batch sees what an earlier one changed. Only the
// logger uses it, holding the overlay's mu.RLock.
type staged struct {
	ov     *overlay
	tasks  map[uuid.UUID]*ovTask
	refs   map[string]uuid.UUID
	tokens map[string]uuid.UUID // uuid.Nil: released by a write of the batch
	writes []*write
}

func newStaged(ov *overlay) *staged {
	return &staged{ov: ov, tasks: map[uuid.UUID]*ovTask{}, refs: map[string]uuid.UUID{}, tokens: map[string]uuid.UUID{}}
}

// reset empties s for the next batch.
func (s *staged) reset() {
	clear(s.tasks)
	clear(s.refs)
	clear(s.tokens)
	s.writes = s.writes[:0]
}

// add stages the writes of a validated request.
func (s *staged) add(p *plan) {
	for i := range p.writes {
		w := &p.writes[i]
		n := w.new
		if old := s.task(n.ID); old != nil && old.token != n.Token && old.token != "" {
			s.tokens[old.token] = uuid.Nil
		}
		e := &ovTask{state: w.state, body: w.body, ref: string(refKey(n)), token: n.Token}
		s.tasks[n.ID] = e
		if e.ref != "" {
			s.refs[e.ref] = n.ID
		}
		if e.token != "" {
			s.tokens[e.token] = n.ID
		}
		s.writes = append(s.writes, w)
	}
}

// task returns the latest logged or staged write of id, nil for none.
func (s *staged) task(id uuid.UUID) *ovTask {
	if e := s.tasks[id]; e != nil {
		return e
	}
	return s.ov.tasks[id]
}

// ref returns the task holding a ref key in the batch or the overlay.
func (s *staged) ref(k string) (uuid.UUID, bool) {
	if id, ok := s.refs[k]; ok {
		return id, true
	}
	id, ok := s.ov.refs[k]
	return id, ok
}

// token returns the task holding a token in the batch or the overlay
// (uuid.Nil, true when a write of the batch released it).
func (s *staged) token(tok string) (uuid.UUID, bool) {
	if id, ok := s.tokens[tok]; ok {
		return id, true
	}
	id, ok := s.ov.tokens[tok]
	return id, ok
}

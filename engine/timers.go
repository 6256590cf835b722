package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// timerFirers bounds how many timers fire at once; concurrent fires share
// group commits, so a burst of due timers costs few fsyncs.
const timerFirers = 4096

// timers is the timer service: it fires due timers earliest first, keeping up
// to timerFirers of them in flight, and sleeps until the next one is due (or
// TimerPoll, or a kick from a commit that set a nearer timer). It reads the
// next due timers while the ones it started still commit, so the store's
// writer always has the next group to take: a burst of timeouts due in the
// same second (or the backlog after downtime) fires at the rate the store
// commits, not in stop-and-go rounds. Workers keep serving new work
// meanwhile.
func (e *Engine) timers() {
	ctx := context.Background()
	f := newFirer(e)
	defer f.close()
	for {
		started, full, err := f.round(ctx)
		if err != nil {
			e.log.Error("timer service: read due timers", "err", err)
		}
		if full && started > 0 {
			select {
			case <-e.stop:
				return
			default:
				continue // a burst or a catch-up: read on at once
			}
		}
		var ended <-chan struct{}
		wait := e.cfg.TimerPoll
		if f.busy() {
			// The earliest timers are the ones in flight: look again when one
			// of them ends (it may free the next due ones) or a kick comes.
			ended = f.ended
		} else if at, ok, err := e.st.NextDue(ctx); err == nil && ok {
			wait = min(wait, max(at.Sub(e.clock.Now()), 0))
		}
		var next <-chan time.Time
		switch {
		case wait > 0:
			next = e.clock.After(wait)
		case e.cl != nil && started == 0:
			next = e.clock.After(e.cfg.TimerPoll) // due, but another engine holds it
		default:
			// Due now: look again at once, after a pause on the wall clock
			// (not the engine's, which a test may hold still) so that a
			// timer that will not fire cannot make this loop spin.
			next = time.After(time.Millisecond)
		}
		select {
		case <-e.stop:
			return
		case <-e.wake:
		case <-ended:
		case <-next:
		}
	}
}

// firer starts fires of due timers, at most timerFirers at once, and never
// two of one task: the timer index still holds a timer while its fire
// commits, so the next read returns it again.
//
// Fires run on workers that outlive one fire: a worker that ends a fire
// takes the next one handed over, and exits after fireWorkerIdle without
// work. A fire's stack grows to tens of KiB (load, decide, encode), and a
// fresh goroutine per fire paid that growth every time: a tenth of the CPU
// of a burst of timeouts went to copying stacks.
type firer struct {
	e     *Engine
	slots chan struct{}
	// work hands a timer to an idle worker; unbuffered, so a send succeeds
	// only when one waits.
	work     chan fireJob
	ended    chan struct{} // signalled (coalesced) when a fire ends
	workers  sync.WaitGroup
	fires    sync.WaitGroup // fires started and not ended
	quit     chan struct{}  // closed by close: idle workers exit
	mu       sync.Mutex
	inflight map[uuid.UUID]struct{}
}

// fireWorkerIdle is how long a fire worker waits for the next fire before it
// exits.
const fireWorkerIdle = 2 * time.Second

func newFirer(e *Engine) *firer {
	return &firer{e: e, slots: make(chan struct{}, timerFirers), work: make(chan fireJob), ended: make(chan struct{}, 1),
		quit: make(chan struct{}), inflight: map[uuid.UUID]struct{}{}}
}

// busy reports whether fires are in flight.
func (f *firer) busy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inflight) > 0
}

// fireJob is a timer to fire: its task, and the task as the round read it
// ahead of the fire (nil when the store cannot read in batches).
type fireJob struct {
	id   uuid.UUID
	task *store.Task
}

// prefetchChunk is how many due tasks a round reads at once from a store
// that reads in batches (store.BatchReader), before it hands them to fires.
const prefetchChunk = 256

// round reads the due timers and starts a fire for each one not in flight,
// waiting for a free slot when all are taken. It reports how many it
// started and whether the read was full (more may be due).
//
// From a store.BatchReader it reads the tasks themselves too, a chunk at a
// time, in one pass over the store in id order, and hands each fire its
// task: thousands of fires each loading one task from the store cost twice
// the CPU, most of it in memory stalls, since each fire finds the pages
// cold. A task may move between that read and its fire, which then fails
// its commit on the revision and loads the task again (fire).
func (f *firer) round(ctx context.Context) (started int, full bool, err error) {
	e := f.e
	limit := e.cfg.TimerBatch
	if e.cl == nil {
		// Due returns the timers in flight too (in a cluster their leases
		// keep ClaimDue from returning them): read past them.
		f.mu.Lock()
		limit += len(f.inflight)
		f.mu.Unlock()
	}
	due, err := e.due(ctx, limit)
	full = len(due) == limit
	batch, _ := e.st.(store.BatchReader)
	for len(due) > 0 {
		chunk := due[:min(len(due), prefetchChunk)]
		due = due[len(chunk):]
		jobs := make([]fireJob, 0, len(chunk))
		f.mu.Lock()
		for _, t := range chunk {
			if _, dup := f.inflight[t.TaskID]; !dup {
				jobs = append(jobs, fireJob{id: t.TaskID})
			}
		}
		f.mu.Unlock()
		if batch != nil && len(jobs) > 0 {
			f.prefetch(ctx, batch, jobs)
		}
		for _, job := range jobs {
			select {
			case f.slots <- struct{}{}:
			case <-e.stop:
				e.cl.release(job.id)
				continue // leave it to the next run; release what ClaimDue took
			}
			f.mu.Lock()
			f.inflight[job.id] = struct{}{}
			f.mu.Unlock()
			started++
			f.fires.Add(1)
			select {
			case f.work <- job:
			default:
				f.workers.Go(func() { f.worker(ctx, job) })
			}
		}
	}
	return started, full, err
}

// prefetch reads the tasks of jobs in one batch and sets each job's task.
// A failed read leaves them unset: each fire then loads its own.
func (f *firer) prefetch(ctx context.Context, batch store.BatchReader, jobs []fireJob) {
	ids := make([]uuid.UUID, len(jobs))
	for i, j := range jobs {
		ids[i] = j.id
	}
	tasks, err := batch.Tasks(ctx, ids)
	if err != nil {
		f.e.log.Warn("timer service: read due tasks", "tasks", len(ids), "err", err)
		return
	}
	for i, t := range tasks {
		jobs[i].task = t
	}
}

// worker fires job, then every timer handed to it, until it has waited
// fireWorkerIdle for one or the engine stops.
func (f *firer) worker(ctx context.Context, job fireJob) {
	idle := time.NewTimer(fireWorkerIdle)
	defer idle.Stop()
	for {
		f.fire(ctx, job)
		idle.Reset(fireWorkerIdle)
		select {
		case job = <-f.work:
		case <-idle.C:
			return
		case <-f.quit:
			return
		case <-f.e.stop:
			return
		}
	}
}

// fire runs one fire and ends it: frees its slot and tells the service.
func (f *firer) fire(ctx context.Context, job fireJob) {
	defer f.fires.Done()
	defer func() {
		f.mu.Lock()
		delete(f.inflight, job.id)
		f.mu.Unlock()
		<-f.slots
		signal(f.ended)
	}()
	defer f.e.cl.release(job.id) // the lease ClaimDue took, in a cluster
	f.e.fire(ctx, job.id, job.task)
}

// close waits for the fires in flight and lets the idle workers go.
func (f *firer) close() {
	f.fires.Wait()
	close(f.quit)
	f.workers.Wait()
}

// FireDue fires every timer due now, round after round, each round to its
// end, and returns how many fired. Tests call it after advancing a fake
// clock instead of waiting for the timer service.
func (e *Engine) FireDue(ctx context.Context) (int, error) {
	f := newFirer(e)
	defer f.close()
	total := 0
	for {
		n, full, err := f.round(ctx)
		f.fires.Wait()
		total += n
		if err != nil || !full {
			return total, err
		}
	}
}

// fire applies a task's timer: a retry of an outbound call, or the time
// limit of the node it waits in. read is the task as the timer service read
// it ahead (nil: load it now); if the task has moved since, the commit
// fails on its revision and the fire loads the task and decides again.
func (e *Engine) fire(ctx context.Context, id uuid.UUID, read *store.Task) {
	unlock := e.lock(id)
	s := e.expire(ctx, id, read)
	var err error
	if s != nil {
		err = e.commit(ctx, s)
		if read != nil && errors.Is(err, store.ErrConflict) {
			// Decided on the task as read ahead, which moved since: decide
			// again on the task as it is.
			if s = e.expire(ctx, id, nil); s != nil {
				err = e.commit(ctx, s)
			}
		}
		if s != nil {
			e.logCommit(s, err)
		}
	}
	unlock()
	if s != nil && err == nil {
		e.after(s)
	}
}

// expire loads a task whose timer is due and applies the timer, leaving the
// commit to the caller; nil when there is nothing to commit.
//
// Thousands of fires are in flight in a burst, but only as many compute at
// once as there are Go processors (fireCPU); the others wait parked, not
// runnable, and the commit, which mostly waits for the store's writer, is
// outside. Otherwise each group commit would wake a herd of fires that
// fills the scheduler's run queues, and the writer, whose turn comes after
// them, would sit runnable while they compute: the writer is what a burst
// waits on, so every millisecond it waits is added to every timer's lag.
func (e *Engine) expire(ctx context.Context, id uuid.UUID, read *store.Task) *state {
	e.fireCPU <- struct{}{}
	defer func() { <-e.fireCPU }()
	var s *state
	var err error
	if read != nil {
		s, err = e.lazyStateOf(ctx, read)
	} else {
		s, err = e.load(ctx, id)
	}
	if err != nil {
		e.log.Error("load task for timer", "task_id", id, "err", err)
		return nil
	}
	if s.t.TimerAt.IsZero() || s.t.TimerAt.After(s.now) {
		return nil // moved or re-armed since Due read it
	}
	e.m.TimerLag(s.now.Sub(s.t.TimerAt))
	n := s.def.Node(s.t.Node)
	switch {
	case s.t.Timer == timerRetry:
		s.t.TimerAt, s.t.Timer = time.Time{}, ""
		s.record(n.Name, n.Name, "retry", actorTimer, "", fmt.Sprintf("attempt %d", s.t.Attempt))
		s.call = true
	default:
		w, ok := n.Spec.(nodes.Waiter)
		if !ok {
			s.t.TimerAt, s.t.Timer = time.Time{}, ""
			break
		}
		res := w.Expire()
		var failure *nodes.Failure
		if to, err := s.def.Fire(n.Name, res.Outcome); err == nil && n.Kind == "callback" && s.def.Node(to).Kind == "escalation" {
			failure = &nodes.Failure{Code: "callback_timeout", Description: fmt.Sprintf("no callback within %s in node %s", timeoutOf(n), n.Name)}
		}
		e.move(s, res.Outcome, actorTimer, "", failure)
		e.advance(s)
	}
	return s
}

func timeoutOf(n *processes.Node) time.Duration {
	if t, ok := n.Spec.(processes.Timed); ok {
		return t.Timeout()
	}
	return 0
}

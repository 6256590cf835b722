package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

// timerFirers bounds how many timers fire at once; concurrent fires share
// group commits, so a burst of due timers costs few fsyncs.
const timerFirers = 256

// timers is the timer service: it fires due timers in rounds of TimerBatch,
// earliest first, and sleeps until the next one is due (or TimerPoll, or a
// kick from a commit that set a nearer timer). After downtime, overdue timers
// catch up round by round while workers keep serving new work.
func (e *Engine) timers() {
	ctx := context.Background()
	for {
		n, err := e.fireDue(ctx)
		if err != nil {
			e.log.Error("timer service: read due timers", "err", err)
		}
		if n == e.cfg.TimerBatch {
			select {
			case <-e.stop:
				return
			default:
				continue // catch-up: another round at once
			}
		}
		wait := e.cfg.TimerPoll
		if at, ok, err := e.st.NextDue(ctx); err == nil && ok {
			wait = min(wait, max(at.Sub(e.clock.Now()), 0))
		}
		if wait == 0 {
			wait = time.Millisecond
			if e.cl != nil && n == 0 {
				wait = e.cfg.TimerPoll // due, but another engine holds it
			}
		}
		select {
		case <-e.stop:
			return
		case <-e.wake:
		case <-e.clock.After(wait):
		}
	}
}

// fireDue fires one round of due timers and returns how many it read.
func (e *Engine) fireDue(ctx context.Context) (int, error) {
	due, err := e.due(ctx)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	sem := make(chan struct{}, timerFirers)
	var wg sync.WaitGroup
	for _, t := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			defer e.cl.release(t.TaskID) // the lease ClaimDue took, in a cluster
			e.fire(ctx, t.TaskID)
		})
	}
	wg.Wait()
	return len(due), nil
}

// FireDue fires every timer due now, round after round, and returns how many
// fired. Tests call it after advancing a fake clock instead of waiting for
// the timer service.
func (e *Engine) FireDue(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := e.fireDue(ctx)
		total += n
		if err != nil || n < e.cfg.TimerBatch {
			return total, err
		}
	}
}

// fire applies a task's timer: a retry of an outbound call, or the time
// limit of the node it waits in.
func (e *Engine) fire(ctx context.Context, id uuid.UUID) {
	unlock := e.lock(id)
	s, err := e.load(ctx, id)
	if err != nil {
		unlock()
		e.log.Error("load task for timer", "task_id", id, "err", err)
		return
	}
	if s.t.TimerAt.IsZero() || s.t.TimerAt.After(s.now) {
		unlock() // moved or re-armed since Due read it
		return
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
		in, err := e.input(s, n)
		if err != nil {
			e.escalateHere(s, "data_error", err.Error())
			break
		}
		res := w.Expire(in)
		var failure *nodes.Failure
		if to, err := s.def.Fire(n.Name, res.Outcome); err == nil && n.Kind == "callback" && s.def.Node(to).Kind == "escalation" {
			failure = &nodes.Failure{Code: "callback_timeout", Description: fmt.Sprintf("no callback within %s in node %s", timeoutOf(n), n.Name)}
		}
		e.move(s, res.Outcome, actorTimer, "", failure)
		e.advance(s)
	}
	err = e.commitOrLog(ctx, s)
	unlock()
	if err == nil {
		e.after(s)
	}
}

func timeoutOf(n *processes.Node) time.Duration {
	if t, ok := n.Spec.(processes.Timed); ok {
		return t.Timeout()
	}
	return 0
}

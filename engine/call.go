package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// maxReply caps how much of a reply body is read; a bigger reply is a
// failure, not a memory problem.
const maxReply = 1 << 20

// startCall sends the outbound call a task owes, in its own goroutine, and
// applies the reply as an event. The call was decided and committed before
// this runs; after a crash the same call (same idempotency key) is sent again.
//
// In a cluster the engine sends only while it holds the task's lease, from
// before the send until the reply's commit: joined when it holds it already,
// taken otherwise.
func (e *Engine) startCall(id uuid.UUID) {
	held := e.cl.join(id)
	e.wg.Go(func() {
		if !held && !e.cl.acquire(id) {
			return // another engine holds the task; it sees the call owed
		}
		defer e.cl.release(id)
		select {
		case e.calls <- struct{}{}:
		case <-e.stop:
			return
		}
		defer func() { <-e.calls }()
		e.call(id)
	})
}

func (e *Engine) call(id uuid.UUID) {
	ctx := context.Background()
	s, err := e.load(ctx, id)
	if err != nil {
		e.log.Error("load task for call", "task_id", id, "err", err)
		return
	}
	n := s.def.Node(s.t.Node)
	api, ok := n.Spec.(*nodes.API)
	if s.t.Status != store.StatusActive || !ok || s.t.Attempt == 0 || s.t.Timer == timerRetry {
		return // not owed, or owed after a retry delay the timer service keeps
	}
	attempt, visit := s.t.Attempt, s.t.Entered
	in, err := e.input(s, n)
	var req *nodes.Request
	if err == nil {
		req, err = api.Build(in)
	}
	if err != nil {
		e.afterReply(id, s, attempt, visit, func(s *state) {
			e.move(s, nodes.OutError, actorEngine, "", &nodes.Failure{Code: "request_error", Description: fmt.Sprintf("node %s: cannot build the request: %v", n.Name, err)})
		})
		return
	}
	rep, d := e.send(req, api.Timeout(), idempotencyKey(s.t))
	outcome := "ok"
	if rep.Err != nil {
		outcome = "network"
		if isTimeout(rep.Err) {
			outcome = "timeout"
		}
	} else if rep.Status >= 300 {
		outcome = fmt.Sprintf("%dxx", rep.Status/100)
	}
	e.m.Call(s.t.Process, n.Name, outcome, d)
	detail := fmt.Sprintf("%s %s -> %s in %s (attempt %d)", req.Method, req.URL, replyText(rep), d.Round(time.Millisecond), attempt)
	e.afterReply(id, s, attempt, visit, func(s *state) {
		in, err := e.input(s, n)
		if err != nil {
			e.escalateHere(s, "data_error", err.Error())
			return
		}
		v := api.Judge(in, attempt, rep, jitter)
		if v.Retry {
			s.t.Attempt = attempt + 1
			s.t.TimerAt, s.t.Timer = s.now.Add(v.Delay), timerRetry
			s.record(n.Name, n.Name, "retry_scheduled", actorProvider, "", fmt.Sprintf("%s; attempt %d in %s", detail, attempt+1, v.Delay.Round(time.Millisecond)))
			return
		}
		s.applyWrites(v.Result.Writes)
		if v.Result.Outcome != nodes.OutError {
			e.eraseSecrets(s, n.Sensitive) // used; an operator retry after an error still needs them
		}
		e.move(s, v.Result.Outcome, actorProvider, detail, v.Result.Failure)
	})
}

// replyTries bounds how often a reply is applied again after losing a race
// with a commit of another engine.
const replyTries = 5

// afterReply applies a call's result to the task if it is still the same call
// (same visit and attempt): an operator may have moved the task meanwhile, and
// then the reply is only recorded. When another engine commits first (a
// callback that came early), the reply is applied again to what it committed
// rather than lost. sent is the state the call was built from, whose decoded
// data the first try takes over when nothing was committed since (reload).
func (e *Engine) afterReply(id uuid.UUID, sent *state, attempt int, visit time.Time, apply func(s *state)) {
	ctx := context.Background()
	for try := 1; ; try++ {
		unlock := e.lock(id)
		s, err := e.reload(ctx, id, sent)
		sent = nil // a try that lost a race changed the data it took over
		if err != nil {
			unlock()
			e.log.Error("load task after call", "task_id", id, "err", err)
			return
		}
		if s.t.Status != store.StatusActive || s.t.Attempt != attempt || !s.t.Entered.Equal(visit) {
			unlock()
			e.log.Info("reply for a task that moved on; ignored", "task_id", id, "node", s.t.Node)
			return
		}
		apply(s)
		e.advance(s)
		if try < replyTries {
			err = e.commit(ctx, s)
		} else {
			err = e.commitOrLog(ctx, s)
		}
		unlock()
		switch {
		case err == nil:
			e.after(s)
		case errors.Is(err, store.ErrConflict) && try < replyTries:
			continue
		case try < replyTries:
			e.log.Error("commit task", "task_id", id, "node", s.t.Node, "err", err)
		}
		return
	}
}

// eraseSecrets removes the named fields that are secret input fields: a CVV
// is needed for its call and the call's retries (also an operator's retry
// after a failure), and never after the call succeeded or the task ended.
func (e *Engine) eraseSecrets(s *state, names []string) {
	for _, name := range names {
		if f := s.def.Input.Field(name); f != nil && f.Sensitive == processes.SensitiveSecret {
			s.deleteField(name)
		}
	}
}

// eraseAllSecrets removes every secret input field, when a task ends.
func (e *Engine) eraseAllSecrets(s *state) {
	for _, f := range s.def.Input.Sensitive() {
		if f.Sensitive == processes.SensitiveSecret {
			s.deleteField(f.Name)
		}
	}
}

// send makes one attempt with the node's timeout.
func (e *Engine) send(req *nodes.Request, timeout time.Duration, key string) (nodes.Reply, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	hr, err := http.NewRequestWithContext(ctx, req.Method, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return nodes.Reply{Err: err}, 0
	}
	hr.Header = req.Header.Clone()
	hr.Header.Set("Idempotency-Key", key)
	hr.Header.Set("User-Agent", "conveyor")
	resp, err := e.client.Do(hr)
	if err != nil {
		return nodes.Reply{Err: err}, time.Since(start)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return nodes.Reply{Err: err}, time.Since(start)
	}
	if len(body) > maxReply {
		return nodes.Reply{Status: resp.StatusCode, Header: resp.Header, Err: fmt.Errorf("reply is over %d bytes", maxReply)}, time.Since(start)
	}
	return nodes.Reply{Status: resp.StatusCode, Header: resp.Header, Body: body}, time.Since(start)
}

func isTimeout(err error) bool {
	type timeout interface{ Timeout() bool }
	t, ok := err.(timeout)
	return (ok && t.Timeout()) || err == context.DeadlineExceeded
}

func replyText(r nodes.Reply) string {
	if r.Err != nil {
		return "error: " + r.Err.Error()
	}
	return fmt.Sprintf("HTTP %d", r.Status)
}

package bolt

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor/store"
)

// request is one write waiting for the writer.
type request struct {
	ctx context.Context
	// size counts the request's changes against Options.MaxBatch.
	size    int
	prepare prepareFunc
	// state decides, once, whether the writer takes the request or its
	// caller abandons it (its ctx ended first).
	state atomic.Int32
	done  chan error // buffered: the writer never blocks on an answer
	// changes and ws are a Commit's, for the logger (Options.Log); prepare
	// is nil then.
	changes []store.Change
	ws      []write
}

// prepareFunc validates a request against tx, which already holds the
// requests before it in the batch, and writes nothing. It returns what writes
// the request (nil when there is nothing to write), or the error that fails
// this request alone.
//
// A prepareFunc may run more than once for one request: when another request
// of the batch fails to write, the batch is rolled back and run again without
// it.
type prepareFunc func(tx *bbolt.Tx) (apply func() error, err error)

const (
	pending int32 = iota
	taken
	abandoned
)

// errRetry rolls back a batch that must run again; errNoWrites rolls back a
// batch in which every request failed or had nothing to write.
var (
	errRetry    = errors.New("retry the batch")
	errNoWrites = errors.New("nothing to write")
)

// submit queues a write and waits for its answer. Once the writer has taken
// the request, submit waits for it even when ctx ends, so the caller always
// learns whether it was applied.
func (db *DB) submit(ctx context.Context, size int, prepare prepareFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &request{ctx: ctx, size: size, prepare: prepare, done: make(chan error, 1)}
	if err := db.enqueueTo(db.reqs, req); err != nil {
		return err
	}
	return db.await(ctx, req)
}

// await waits for the answer to a queued request; see submit.
func (db *DB) await(ctx context.Context, req *request) error {
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		if req.state.CompareAndSwap(pending, abandoned) {
			return ctx.Err()
		}
		return <-req.done
	}
}

// enqueueTo hands req to the writer (or the logger) unless the DB is closed.
func (db *DB) enqueueTo(reqs chan *request, req *request) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed.Load() {
		return store.ErrClosed
	}
	select {
	case reqs <- req:
		return nil
	case <-req.ctx.Done():
		return req.ctx.Err()
	}
}

// write is the writer goroutine. After Close it commits what is queued,
// applies what the write-ahead log holds, and exits.
//
// While the history backlog holds entries, a writer that has had no request
// for backlogIdle moves a chunk of them into history (backlog.go); a request
// that arrives meanwhile waits for at most that one chunk.
//
// With the write-ahead log (Options.Log), the writer also applies logged
// records to bbolt, when logState.applyWait says so.
func (db *DB) write() {
	defer close(db.exited)
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	applyTimer := time.NewTimer(time.Hour)
	applyTimer.Stop()
	var kick chan struct{}
	if db.lg != nil {
		kick = db.lg.kick
	}
	pause := db.backlogIdle
	for {
		var applyAfter <-chan time.Time
		if db.lg != nil {
			if wait, ok := db.lg.applyWait(false); ok {
				if wait <= 0 {
					db.applyLogged()
					continue
				}
				applyTimer.Reset(wait)
				applyAfter = applyTimer.C
			}
		}
		var moveAfter <-chan time.Time
		if db.backlog > 0 {
			idle.Reset(pause)
			moveAfter = idle.C
		}
		select {
		case req := <-db.reqs:
			idle.Stop()
			db.commit(db.collect(req))
		case <-kick:
		case <-applyAfter:
		case <-moveAfter:
			pause = db.move(pause)
		case <-db.quit:
			for {
				select {
				case req := <-db.reqs:
					db.commit(db.collect(req))
					continue
				default:
				}
				if db.lg == nil {
					return
				}
				wait, ok := db.lg.applyWait(true)
				if !ok || wait > 0 {
					return // nothing left, or the disk refuses: Open replays the log
				}
				db.applyLogged()
			}
		}
		applyTimer.Stop()
	}
}

// move moves a chunk of the history backlog and returns the pause before
// the next move.
func (db *DB) move(pause time.Duration) time.Duration {
	start := time.Now()
	moved, stats, err := db.moveBacklog()
	if err != nil {
		// The disk refuses (full, read-only): the entries stay where readers
		// find them; try again later, less and less often.
		db.log.Error("history backlog: move failed", "entries", db.backlog, "err", err)
		return min(2*pause, time.Minute)
	}
	if moved < backlogChunk {
		db.backlog = 0
	} else {
		db.backlog = max(db.backlog-moved, 1)
	}
	if moved > 0 && db.observe != nil {
		g := observed(start, stats)
		g.Moved, g.Backlog = moved, db.backlog
		db.observe(g)
	}
	return db.backlogIdle
}

// observed is what the observer hears of a writer transaction that began at
// start and committed with stats: its time, its writes' time and its pages
// (bbolt counts the meta page among the writes; Pages does not).
func observed(start time.Time, stats bbolt.TxStats) GroupCommit {
	return GroupCommit{Took: time.Since(start), Write: stats.GetWriteTime(), Pages: max(int(stats.GetWrite())-1, 0)}
}

// collect returns first and the requests already queued behind it, until the
// batch holds MaxBatch changes. It never waits.
func (db *DB) collect(first *request) []*request { return db.collectFrom(db.reqs, first) }

// collectFrom is collect on the queue reqs.
func (db *DB) collectFrom(reqs chan *request, first *request) []*request {
	batch := []*request{first}
	for n := first.size; n < db.max; {
		select {
		case req := <-reqs:
			batch = append(batch, req)
			n += req.size
		default:
			return batch
		}
	}
	return batch
}

// commit writes a batch in one transaction and answers its callers.
func (db *DB) commit(batch []*request) {
	batch = take(batch)
	if len(batch) == 0 {
		return
	}
	start := time.Now()
	errs, stats, err := db.run(batch)
	if errors.Is(err, errNoWrites) {
		err = nil
	} else if err == nil && db.observe != nil {
		g := observed(start, stats)
		g.Requests, g.Backlog = len(batch), db.backlog
		db.observe(g)
	}
	if err != nil {
		db.log.Error("group commit failed", "requests", len(batch), "err", err)
		err = fmt.Errorf("store: commit: %w", err)
	}
	for i, req := range batch {
		if err != nil {
			req.done <- err
		} else {
			req.done <- errs[i]
		}
	}
}

// take keeps the requests whose callers still wait, and answers those whose
// ctx ended before the writer reached them.
func take(batch []*request) []*request {
	live := batch[:0]
	for _, req := range batch {
		if !req.state.CompareAndSwap(pending, taken) {
			continue
		}
		if err := req.ctx.Err(); err != nil {
			req.done <- err
			continue
		}
		live = append(live, req)
	}
	return live
}

// run applies batch in one transaction. errs holds each request's own
// failure; err is the transaction's, and when it is set nothing was written.
// stats are the statistics of the transaction that committed.
func (db *DB) run(batch []*request) (errs []error, stats bbolt.TxStats, err error) {
	errs = make([]error, len(batch))
	size := 0
	for _, req := range batch {
		size += req.size
	}
	// broken holds the requests whose writes failed after they passed
	// validation (a bug in a prepareFunc); they are left out of the next try.
	broken := make([]error, len(batch))
	for {
		retry := false
		var last *bbolt.Tx
		err = db.update(func(tx *bbolt.Tx) error {
			last = tx
			db.later.reset(tx, size >= db.backlogFrom && db.backlog < backlogMax, db.backlog > 0)
			wrote := false
			for i, req := range batch {
				errs[i] = broken[i]
				if errs[i] != nil {
					continue
				}
				apply, err := req.prepare(tx)
				if errs[i] = err; err != nil || apply == nil {
					continue
				}
				if err := apply(); err != nil {
					broken[i], retry = fmt.Errorf("store: write: %w", err), true
					return errRetry
				}
				wrote = true
			}
			if !wrote {
				return errNoWrites
			}
			return db.later.flush()
		})
		if !retry {
			if err == nil {
				// A committed transaction keeps its statistics.
				stats = last.Stats()
				db.backlog += db.later.backlogged
			}
			return errs, stats, err
		}
	}
}

// update runs fn in a read-write transaction and turns a panic into an
// error, so that a bug fails one batch instead of hanging every caller.
func (db *DB) update(fn func(*bbolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			db.log.Error("panic in group commit", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return db.bolt.Update(fn)
}

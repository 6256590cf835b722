package bolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/store"
)

// The write-ahead log (Options.Log) takes bbolt's B-tree work off the path of
// an acknowledgement:
//
//   - The logger goroutine takes the queued Commits, validates them against
//     the overlay (logged writes bbolt has not applied yet) over a bbolt read
//     transaction, appends them to the log as one record, fdatasyncs it,
//     puts them in the overlay and answers. A record is a sequential append
//     of the encoded records, where bbolt writes every page the group
//     dirties.
//   - The writer goroutine applies logged records to bbolt in large
//     transactions, when the log has been idle for applyIdle, when they hold
//     half of the log's buffer (Options.LogBuffer), or when a reader needs
//     them (lists, counts, the history of a logged task and purges read
//     bbolt alone and wait for it). A burst is acknowledged at the log's
//     pace, and bbolt catches up after it, in transactions that share each
//     page among many more writes; on two CPUs, applying during the burst
//     would take the CPU the burst's own work needs. A full buffer makes
//     commits wait: under a sustained overload the store runs at bbolt's
//     pace, and under a steady load the buffer stays about half full.
//   - Reads of one task (by id, ref or token), the due timers and the
//     validation of new commits look at the overlay first (overlay.go).
//   - Each apply records the last record it applied in bbolt's meta bucket,
//     in the same transaction. Open replays the records after it, and cuts
//     the log once bbolt holds everything.

// logSeqKey holds, in the meta bucket, the last log record applied to the file.
var logSeqKey = []byte("logseq")

const (
	// defaultLogBuffer is Options.LogBuffer's default.
	defaultLogBuffer = 256 << 20
	// applyIdle is how long the log must have been idle before the writer
	// applies what it holds while the buffer is less than half full. A
	// shorter pause is no sign of a burst's end: under CPU saturation the
	// logger itself waits that long for a CPU.
	applyIdle = 500 * time.Millisecond
	// applyChunk bounds the writes of one apply transaction, and so the dirty
	// pages bbolt holds in memory.
	applyChunk = 32768
	// walCutAt is the size beyond which the logger empties the log, or
	// rewrites it with what bbolt lacks (logState.cut).
	walCutAt = 64 << 20
	// walOverhead is what a logged write costs in memory beyond its record
	// in the payload and the ref and token strings the overlay's maps keep:
	// its overlay entry, its slots in the overlay's maps (at their load
	// factor) and in its timer heap. TestLog_bufferCountsWhatItHolds
	// measures it.
	walOverhead = 448
)

// logState is the write-ahead log's side of a DB.
type logState struct {
	wal *walFile
	ov  *overlay
	// reqs queues Commits for the logger.
	reqs         chan *request
	quit, exited chan struct{}
	// kick wakes the writer to look at what it should apply.
	kick chan struct{}
	// gate is held shared by the logger for each batch, and exclusively by a
	// Purge, which must not race a commit it would invalidate.
	gate sync.RWMutex

	// The logger goroutine's own: its staged batch, cursors, the offsets of
	// the records in the payload it builds, and its last sequence number.
	st    *staged
	later deferred
	at    []int
	seq   uint64

	// cutAt is walCutAt (or Options.logCut, for tests); rewrites counts the
	// log's rewrites (logState.cut).
	cutAt    int
	rewrites atomic.Int64

	// logged and applied are the last record logged and the last one bbolt
	// applied.
	logged, applied atomic.Uint64

	// max bounds the bytes pending (Options.LogBuffer); the writer applies
	// from high on even while the log is busy.
	max, high int
	// idle is how long the log must have been idle before the writer
	// applies it below high (applyIdle).
	idle time.Duration

	mu           sync.Mutex
	pending      []loggedGroup // logged, not applied; in order
	pendingBytes int
	lastLog      time.Time
	flushes      int           // readers waiting for the writer
	applyErr     error         // the last apply's failure, nil once one succeeds
	retryAt      time.Time     // when the writer tries a failed apply again
	backoff      time.Duration // the pause after the next failure
	waitc        chan struct{} // closed (and replaced) after every apply
}

// loggedGroup is one log record waiting for the writer: its payload, which
// the overlay's entries point into, decoded only when it is applied.
type loggedGroup struct {
	seq     uint64
	payload []byte
	writes  int
	// bytes is what the group holds in memory, counted against the buffer:
	// its payload's allocation and, for each write, walOverhead and the
	// overlay's copies of its ref and token.
	bytes int
}

// decodedGroup is a logged group decoded for applying.
type decodedGroup struct {
	seq    uint64
	writes []write
}

// logCommit queues a Commit for the logger and waits for its answer.
func (db *DB) logCommit(ctx context.Context, changes []store.Change, ws []write) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &request{ctx: ctx, size: len(changes), changes: changes, ws: ws, done: make(chan error, 1)}
	if err := db.enqueueTo(db.lg.reqs, req); err != nil {
		return err
	}
	return db.await(ctx, req)
}

// logLoop is the logger goroutine. After Close it logs what is queued and
// exits.
func (db *DB) logLoop() {
	lg := db.lg
	defer close(lg.exited)
	for {
		select {
		case req := <-lg.reqs:
			db.logBatch(db.collectFrom(lg.reqs, req))
		case <-lg.quit:
			for {
				select {
				case req := <-lg.reqs:
					db.logBatch(db.collectFrom(lg.reqs, req))
				default:
					return
				}
			}
		}
	}
}

// logBatch validates a batch of Commits, logs the valid ones in one record
// and answers every caller.
func (db *DB) logBatch(batch []*request) {
	batch = take(batch)
	if len(batch) == 0 {
		return
	}
	lg := db.lg
	lg.gate.RLock()
	defer lg.gate.RUnlock()
	errs, err := db.logRecord(batch)
	if err != nil {
		db.log.Error("write-ahead log: append failed", "requests", len(batch), "err", err)
		err = fmt.Errorf("store: commit: %w", err)
	}
	for i, req := range batch {
		if err != nil && errs[i] == nil {
			req.done <- err
		} else {
			req.done <- errs[i]
		}
	}
}

// logRecord validates batch and logs its valid requests. errs holds each
// request's own failure; err fails those without one.
func (db *DB) logRecord(batch []*request) (errs []error, err error) {
	lg := db.lg
	start := time.Now()
	errs = make([]error, len(batch))
	if err := lg.room(); err != nil {
		return errs, err
	}
	if err := lg.cut(); err != nil {
		// The log stays as it was, one record longer each time: commit.
		db.log.Warn("write-ahead log: cutting it failed; it grows until a cut succeeds", "bytes", lg.wal.size, "err", err)
	}
	st := lg.st
	st.reset()
	lg.ov.mu.RLock()
	tx, err := db.bolt.Begin(false)
	if err != nil {
		lg.ov.mu.RUnlock()
		return errs, err
	}
	lg.later.reset(tx, false, false)
	for i, req := range batch {
		p, err := planCommit(tx, req.changes, req.ws, &lg.later, st)
		if errs[i] = err; err == nil {
			st.add(p)
		}
	}
	lg.later.tx = nil
	tx.Rollback()
	lg.ov.mu.RUnlock()
	if len(st.writes) == 0 {
		return errs, nil
	}

	// A fresh buffer for each record: the overlay keeps the records in it
	// until bbolt has applied them, and nothing else of the writes.
	size := binary.MaxVarintLen32
	for _, w := range st.writes {
		size += loggedSize(w)
	}
	payload := binary.AppendUvarint(make([]byte, 0, size), uint64(len(st.writes)))
	at := lg.at[:0]
	for _, w := range st.writes {
		var stateAt, bodyAt int
		payload, stateAt, bodyAt = appendLogged(payload, w)
		at = append(at, stateAt, bodyAt)
	}
	lg.at = at
	seq := lg.seq + 1
	appending := time.Now()
	if err := lg.wal.append(seq, payload); err != nil {
		return errs, fmt.Errorf("write-ahead log: %w", err)
	}
	lg.seq = seq
	if db.observe != nil {
		requests := 0
		for _, err := range errs {
			if err == nil {
				requests++
			}
		}
		db.observe(GroupCommit{Requests: requests, Took: time.Since(start), Write: time.Since(appending), Logged: true})
	}

	g := loggedGroup{seq: seq, payload: payload, writes: len(st.writes), bytes: cap(payload)}
	lg.ov.mu.Lock()
	for i, w := range st.writes {
		stateAt, bodyAt := at[2*i], at[2*i+1]
		e := lg.ov.put(seq, w, payload[stateAt:stateAt+len(w.state):stateAt+len(w.state)], payload[bodyAt:bodyAt+len(w.body):bodyAt+len(w.body)])
		g.bytes += walOverhead + len(e.ref) + len(e.token)
	}
	lg.ov.mu.Unlock()
	lg.logged.Store(seq)
	lg.mu.Lock()
	lg.pending = append(lg.pending, g)
	lg.pendingBytes += g.bytes
	lg.lastLog = time.Now()
	lg.mu.Unlock()
	signal(lg.kick)
	return errs, nil
}

// cut keeps the log's file small: once it passes cutAt it is emptied when
// bbolt holds everything in it, and otherwise rewritten with only the
// records bbolt lacks, once those are less than half of it (so that each
// byte is rewritten at most once on average). Only the logger calls it. On
// failure the log in use is whole (see rewrite), and the next batch tries
// again.
func (lg *logState) cut() error {
	if lg.wal.size <= int64(lg.cutAt) {
		return nil
	}
	if lg.applied.Load() == lg.seq {
		if err := lg.wal.truncate(0); err != nil {
			return fmt.Errorf("write-ahead log: cut: %w", err)
		}
		return nil
	}
	lg.mu.Lock()
	var recs []walRecord
	var size int64
	for _, g := range lg.pending {
		recs = append(recs, walRecord{seq: g.seq, payload: g.payload})
		size += walHeader + int64(len(g.payload))
	}
	lg.mu.Unlock()
	if 2*size > lg.wal.size {
		return nil
	}
	if err := lg.wal.rewrite(recs); err != nil {
		return fmt.Errorf("write-ahead log: rewrite with the %d records the file lacks: %w", len(recs), err)
	}
	lg.rewrites.Add(1)
	return nil
}

// pendingHistory returns the history entries of task id in the writes
// waiting for the writer, in order.
func (lg *logState) pendingHistory(id uuid.UUID) [][]byte {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	var hs [][]byte
	for _, g := range lg.pending {
		// The payload was built by the logger: it decodes.
		_ = eachLogged(g.payload, func(wid uuid.UUID, _, _ []byte, history [][]byte) error {
			if wid == id {
				hs = append(hs, history...)
			}
			return nil
		})
	}
	return hs
}

// room waits while the writes waiting for the writer fill the buffer. It
// fails when the writer's last apply failed: the disk refuses, and commits
// must not pile up in memory meanwhile.
func (lg *logState) room() error {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for lg.pendingBytes >= lg.max {
		if lg.applyErr != nil {
			return fmt.Errorf("the write-ahead log's buffer is full (%d MiB) and applying it to the file fails: %w",
				lg.pendingBytes>>20, lg.applyErr)
		}
		c := lg.waitc
		lg.mu.Unlock()
		signal(lg.kick)
		select {
		case <-c:
		case <-lg.exited:
		}
		lg.mu.Lock()
	}
	return nil
}

// flushLog waits until bbolt holds every write logged before the call, for
// the reads that look at bbolt alone (lists, counts, history).
func (db *DB) flushLog(ctx context.Context) error {
	lg := db.lg
	if lg == nil {
		return nil
	}
	target := lg.logged.Load()
	if lg.applied.Load() >= target {
		return nil
	}
	lg.mu.Lock()
	lg.flushes++
	lg.mu.Unlock()
	defer func() {
		lg.mu.Lock()
		lg.flushes--
		lg.mu.Unlock()
	}()
	for {
		lg.mu.Lock()
		c, err := lg.waitc, lg.applyErr
		lg.mu.Unlock()
		if lg.applied.Load() >= target {
			return nil
		}
		if err != nil {
			return &conveyor.Error{Code: conveyor.EUnavailable, Err: err,
				Message: "store: the database file cannot take the write-ahead log's writes now (" + err.Error() + "), and lists, counts and purges read the file"}
		}
		signal(lg.kick)
		select {
		case <-c:
		case <-ctx.Done():
			return ctx.Err()
		case <-db.exited:
			return store.ErrClosed
		}
	}
}

// applyWait tells the writer whether to apply now (0), in a while, or
// never (false: nothing is pending, or closing is false and ...).
func (lg *logState) applyWait(closing bool) (time.Duration, bool) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if len(lg.pending) == 0 {
		return 0, false
	}
	now := time.Now()
	if lg.applyErr != nil && now.Before(lg.retryAt) {
		return lg.retryAt.Sub(now), true
	}
	if closing || lg.flushes > 0 || lg.pendingBytes >= lg.high {
		return 0, true
	}
	return max(lg.idle-now.Sub(lg.lastLog), 0), true
}

// applyLogged applies the oldest pending records (up to applyChunk writes)
// to bbolt in one transaction, then prunes them from the overlay.
func (db *DB) applyLogged() {
	lg := db.lg
	lg.mu.Lock()
	n, writes := 0, 0
	for n < len(lg.pending) && (n == 0 || writes+lg.pending[n].writes <= applyChunk) {
		writes += lg.pending[n].writes
		n++
	}
	pending := slices.Clone(lg.pending[:n]) // they stay pending (for readers) until applied
	lg.mu.Unlock()

	groups := make([]decodedGroup, len(pending))
	var err error
	for i, g := range pending {
		groups[i].seq = g.seq
		if groups[i].writes, err = decodeLogged(g.payload); err != nil {
			err = internal("store: log record %d: decode: %v", g.seq, err)
			break
		}
	}

	start := time.Now()
	var last *bbolt.Tx
	if err == nil {
		err = db.update(func(tx *bbolt.Tx) error {
			last = tx
			db.later.reset(tx, writes >= db.backlogFrom && db.backlog < backlogMax, db.backlog > 0)
			return db.applyGroups(tx, groups)
		})
	}
	seq := pending[len(pending)-1].seq
	if err == nil {
		db.backlog += db.later.backlogged
		if db.observe != nil {
			g := observed(start, last.Stats())
			g.Applied, g.Backlog = writes, db.backlog
			db.observe(g)
		}
	}

	lg.mu.Lock()
	if err != nil {
		lg.applyErr = err
		lg.backoff = min(max(2*lg.backoff, 10*time.Millisecond), 5*time.Second)
		lg.retryAt = time.Now().Add(lg.backoff)
		db.log.Error("write-ahead log: applying to the file failed; retrying", "writes", writes, "retry_in", lg.backoff, "err", err)
	} else {
		lg.applyErr, lg.backoff = nil, 0
		clear(lg.pending[:n]) // the backing array would keep them alive
		lg.pending = lg.pending[n:]
		for _, g := range pending {
			lg.pendingBytes -= g.bytes
		}
		lg.applied.Store(seq)
	}
	close(lg.waitc)
	lg.waitc = make(chan struct{})
	lg.mu.Unlock()
	if err != nil {
		return
	}
	ids := make([]uuid.UUID, 0, writes)
	for _, g := range groups {
		for i := range g.writes {
			ids = append(ids, g.writes[i].new.ID)
		}
	}
	lg.ov.mu.Lock()
	lg.ov.prune(ids, seq)
	lg.ov.mu.Unlock()
}

// applyGroups writes logged groups into tx, in order, and records the last
// one's sequence number. Each write was validated when it was logged against
// what tx holds now, so a revision that does not follow the stored one means
// the file and its log disagree.
func (db *DB) applyGroups(tx *bbolt.Tx, groups []decodedGroup) error {
	pl := &planner{tx: tx, later: &db.later}
	for _, g := range groups {
		for _, w := range g.writes {
			old, same, err := pl.stored(w.new, w.body)
			if err != nil {
				return err
			}
			if old == nil && w.new.Rev != 1 || old != nil && old.Rev+1 != w.new.Rev {
				var stored uint64
				if old != nil {
					stored = old.Rev
				}
				return internal("store: log record %d: task %s at revision %d follows revision %d in the file: the file and its log disagree",
					g.seq, w.new.ID, w.new.Rev, stored)
			}
			w.old, w.sameBody = old, same
			p := plan{}
			p.add(w)
			if err := p.apply(&db.later); err != nil {
				return err
			}
		}
	}
	if err := tx.Bucket(bucketMeta).Put(logSeqKey, binary.BigEndian.AppendUint64(nil, groups[len(groups)-1].seq)); err != nil {
		return err
	}
	return db.later.flush()
}

// replayLog applies the log's records that the file does not hold yet, and
// empties the log. It runs in Open, before the goroutines start.
func (db *DB) replayLog(recs []walRecord) (replayed int, last uint64, err error) {
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(logSeqKey); len(v) == 8 {
			last = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	var batch []decodedGroup
	writes := 0
	apply := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := db.bolt.Update(func(tx *bbolt.Tx) error {
			db.later.reset(tx, false, db.backlog > 0)
			return db.applyGroups(tx, batch)
		})
		if err == nil {
			db.backlog += db.later.backlogged
		}
		batch, writes = batch[:0], 0
		return err
	}
	for _, r := range recs {
		if r.seq <= last {
			continue
		}
		if r.seq != last+1 {
			return replayed, last, fmt.Errorf("write-ahead log: record %d follows %d: records are missing", r.seq, last)
		}
		ws, err := decodeLogged(r.payload)
		if err != nil {
			return replayed, last, fmt.Errorf("write-ahead log: record %d: %w", r.seq, err)
		}
		batch = append(batch, decodedGroup{seq: r.seq, writes: ws})
		writes += len(ws)
		replayed++
		last = r.seq
		if writes >= applyChunk {
			if err := apply(); err != nil {
				return replayed, last, err
			}
		}
	}
	if err := apply(); err != nil {
		return replayed, last, err
	}
	return replayed, last, db.lg.wal.truncate(0)
}

// signal wakes whoever waits on c (a channel of capacity 1) without
// blocking; signals coalesce.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Package bolt is the bbolt backend of store.Store: everything in one file on
// local disk.
//
// One writer goroutine owns every write. Commit, Purge and PutVersion queue a
// request; the writer takes the first, then whatever else is already queued
// (no timer, so an idle store commits at once), applies them all in one bbolt
// transaction and one fsync, and answers every caller. Each request is
// validated against the transaction, including the requests before it in the
// same batch, before it writes anything, so a bad request fails alone. Reads
// run in their own read-only transactions and never wait for the writer.
//
// Every index (refs, tokens, timers, bystate, counts, totals,
// finished) and the audit log (audit, auditbytask) are derived from
// the difference between the stored task and the new one inside the writing
// transaction; Check verifies that they agree. The audit log outlives purged
// tasks. Bulk jobs (jobs, jobresults) and queue alarm crossings (alarms,
// alarmlog) are records of their own, written through the same writer.
//
// Caveats: the file is locked while open, so a second Open, even from another
// process, fails after Options.Timeout; the file never shrinks (purged pages
// are reused, and an offline compaction returns them to the disk); the file
// format is endian-specific.
package bolt

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/conveyor-dev/conveyor/store"
)

var _ store.Store = (*DB)(nil)

// Options tunes Open. The zero value gives the documented defaults.
type Options struct {
	// Timeout is how long Open waits for the file lock when another DB (in
	// this or another process) holds the file. Default 1s.
	Timeout time.Duration
	// InitialMmapSize is the size in bytes of the first memory map. Keep it
	// above the expected file size: growing the map waits for every read
	// transaction to end and holds new ones back meanwhile. On Linux it
	// reserves address space, not disk. Default 1 GiB.
	InitialMmapSize int
	// NoSync skips the fsyncs of every commit. UNSAFE: a crash can lose
	// acknowledged commits or corrupt the file. For tests and benchmarks only.
	// Default false.
	NoSync bool
	// MaxBatch is how many changes one group commit takes: the writer stops
	// taking queued requests once it holds this many (a single larger Commit
	// still commits whole). Bigger groups share more pages and fsyncs: 100,000
	// timeouts due at once over a million-task file fire 15 % faster at 4096
	// than at 1000 (BENCHMARKS.md). Default 4096.
	MaxBatch int
	// Logger receives failed commits and open and close events. Default:
	// discard.
	Logger *slog.Logger
	// Clock gives the time of a Commit call, which becomes Task.Finished
	// when a task reaches a final status without one. Default time.Now.
	Clock func() time.Time
	// Metrics, when set, is called after each group commit that reached the
	// disk. Default nil.
	Metrics CommitObserver
	// Log puts a write-ahead log in front of bbolt (logger.go), in the file
	// at the store's path plus ".wal": a commit is acknowledged once it is
	// appended to the log and synced, and bbolt applies it behind. A burst
	// of commits is acknowledged at the pace of one sequential append per
	// group instead of bbolt's B-tree work and scattered page writes. Lists,
	// counts, Runnable, the audit log, Check and purges wait for bbolt to
	// catch up. Open replays a log it finds whether Log is set or not.
	// Default false.
	Log bool
	// LogBuffer bounds the memory of the writes logged and not yet applied
	// to bbolt, in bytes: once full, commits wait for bbolt. Default 256 MiB.
	LogBuffer int

	// bolt, when set, adjusts bbolt's options; tests use it to provoke disk
	// errors.
	bolt func(*bbolt.Options)
	// backlogIdle and backlogFrom, when set, replace the constants of the
	// history backlog (backlog.go); tests hold the backlog still, or send
	// every commit's history through it.
	backlogIdle time.Duration
	backlogFrom int
	// upgradeChunk, when set, replaces byStateChunk; tests make the
	// upgrade to schema 6 take many transactions.
	upgradeChunk int
	// logIdle, when set, replaces applyIdle; tests hold logged writes back
	// from bbolt so that reads must find them in the overlay.
	logIdle time.Duration
	// logCut, when set, replaces walCutAt; tests make the log rewrite itself
	// often.
	logCut int
}

// CommitObserver is told of each group commit that reached the disk. It runs
// on the writer goroutine (and, with the write-ahead log, on the logger's:
// it must be safe for concurrent use then), so it must return quickly and
// must not call the DB.
type CommitObserver func(GroupCommit)

// GroupCommit describes one transaction of the store's writer: a group
// commit, which wrote every request queued while the one before it
// committed, or a move of the history backlog (backlog.go), which answers no
// request.
//
// Took minus Write is the writer's work in memory: checking the requests,
// updating the B-trees and laying out the dirty pages, so the two tell a
// writer that waits for its disk from one that waits for a CPU.
type GroupCommit struct {
	// Requests is how many requests (Commit, Purge, PutVersion and the
	// like) it answered.
	Requests int
	// Took is the whole transaction, from its start until its meta page was
	// synced.
	Took time.Duration
	// Write is the part of Took spent writing the dirty pages and the meta
	// page and syncing each (bbolt's two fdatasyncs).
	Write time.Duration
	// Pages is how many writes of dirty pages it made: one per page, or per
	// run of a value's overflow pages; the meta page is not counted.
	Pages int
	// Moved is how many history entries a move of the backlog took into
	// history; 0 for a group commit, whose Requests is then at least 1.
	Moved int
	// Applied is how many logged writes an apply of the write-ahead log
	// (Options.Log) wrote; 0 for the others.
	Applied int
	// Logged marks a group commit of the write-ahead log: Requests were
	// answered once one record was appended and synced (Write, which is
	// then no page writes: Pages is 0).
	Logged bool
	// Backlog is how many history entries wait in the backlog after the
	// transaction: an estimate that runs high after a purge until the next
	// move finds out.
	Backlog int
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.InitialMmapSize <= 0 {
		o.InitialMmapSize = 1 << 30
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.LogBuffer <= 0 {
		o.LogBuffer = defaultLogBuffer
	}
	if o.backlogIdle <= 0 {
		o.backlogIdle = backlogIdle
	}
	if o.backlogFrom <= 0 {
		o.backlogFrom = backlogFrom
	}
	return o
}

// DB is a store.Store kept in one bbolt file. Open it with Open; all methods
// are safe for concurrent use.
type DB struct {
	bolt    *bbolt.DB
	log     *slog.Logger
	clock   func() time.Time
	observe CommitObserver
	max     int

	// mu orders Commit's send against Close, so no request is queued after
	// the writer has drained the queue.
	mu     sync.RWMutex
	closed atomic.Bool
	reqs   chan *request
	quit   chan struct{} // closed by Close: drain the queue and stop
	exited chan struct{} // closed by the writer when it stops

	// later holds what the writer's transaction leaves for its end (see
	// deferred).
	later deferred
	// lg is the write-ahead log's state, nil without Options.Log.
	lg *logState
	// backlog is how many history entries wait in the backlog (backlog.go),
	// counted at Open and kept by the writer goroutine, which alone uses it.
	// Purges make it run high until the next move finds out.
	backlog     int
	backlogIdle time.Duration
	backlogFrom int

	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the store at path and starts its writer. It fails
// after opts.Timeout when another DB holds the file.
func Open(path string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	bo := &bbolt.Options{
		Timeout:         opts.Timeout,
		InitialMmapSize: opts.InitialMmapSize,
		NoSync:          opts.NoSync,
		// Purges fragment the file; the array freelist slows down badly then.
		FreelistType: bbolt.FreelistMapType,
	}
	if opts.bolt != nil {
		opts.bolt(bo)
	}
	b, err := bbolt.Open(path, 0o600, bo)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: locked by another process or DB (waited %s): %w", path, opts.Timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	var backlog int
	var from uint32
	opening := time.Now()
	err = b.Update(func(tx *bbolt.Tx) error {
		var err error
		from, err = initSchema(tx)
		return err
	})
	if err == nil && from != 0 && from < 6 {
		err = upgradeByState(b, cmp.Or(opts.upgradeChunk, byStateChunk))
	}
	if err == nil {
		err = b.View(func(tx *bbolt.Tx) error {
			backlog = countBacklog(tx)
			return nil
		})
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{
		bolt:        b,
		log:         opts.Logger.With("path", path),
		clock:       opts.Clock,
		observe:     opts.Metrics,
		max:         opts.MaxBatch,
		backlog:     backlog,
		backlogIdle: opts.backlogIdle,
		backlogFrom: opts.backlogFrom,
		reqs:        make(chan *request, opts.MaxBatch),
		quit:        make(chan struct{}),
		exited:      make(chan struct{}),
	}
	if err := db.openLog(path, opts); err != nil {
		b.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if db.lg != nil {
		go db.logLoop()
	}
	go db.write()
	if from != 0 && from != schemaVersion {
		db.log.Info("store upgraded", "from_schema", from, "to_schema", schemaVersion, "took", time.Since(opening))
	}
	db.log.Debug("store opened", "no_sync", opts.NoSync)
	return db, nil
}

// initSchema creates the buckets, checks the schema version and upgrades an
// older file up to version 5; Open then takes a file of version 5 or older
// to 6 (upgradeByState). It returns the version the file had (0 for a new
// file, which it marks as the current version).
func initSchema(tx *bbolt.Tx) (uint32, error) {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return 0, err
		}
	}
	meta := tx.Bucket(bucketMeta)
	v := meta.Get(schemaKey)
	if v == nil {
		return 0, meta.Put(schemaKey, putUint32(schemaVersion))
	}
	got := getUint32(v)
	if got == 0 || got > schemaVersion {
		return got, fmt.Errorf("schema version %d, this build reads %d", got, schemaVersion)
	}
	if got == 1 {
		if err := fillAudit(tx); err != nil {
			return got, fmt.Errorf("upgrade schema 1 to 2: %w", err)
		}
	}
	if got <= 2 && tx.Bucket(bucketRunnable) != nil {
		if err := tx.DeleteBucket(bucketRunnable); err != nil {
			return got, fmt.Errorf("upgrade schema 2 to 3: %w", err)
		}
	}
	if got < 5 {
		// The upgrades to 4 and 5 need nothing more: their buckets exist now.
		return got, meta.Put(schemaKey, putUint32(5))
	}
	return got, nil
}

// byStateChunk is how many tasks one transaction of the upgrade to schema
// 6 indexes: the transaction holds their keys and bbolt's dirty pages in
// memory, so a file of tens of millions of tasks upgrades in bounded memory.
const byStateChunk = 100_000

// upgradeByState takes a file of schema 5 to 6: it builds the bystate index
// from the tasks' headers, chunk tasks per transaction, then drops the
// bynode and bystatus indexes it replaces and marks the file version 6 in
// one last transaction. Until then the file stays a valid version 5 file
// (which an older build still opens, ignoring bystate), and an upgrade cut
// short starts again from an empty bystate.
func upgradeByState(b *bbolt.DB, chunk int) error {
	err := b.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketByState); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketByState)
		return err
	})
	var after []byte
	for err == nil {
		var n int
		err = b.Update(func(tx *bbolt.Tx) error {
			var err error
			n, after, err = fillByState(tx, after, chunk)
			return err
		})
		if n < chunk {
			break
		}
	}
	if err == nil {
		err = b.Update(func(tx *bbolt.Tx) error {
			for _, name := range [][]byte{bucketByNode, bucketByStatus} {
				if tx.Bucket(name) != nil {
					if err := tx.DeleteBucket(name); err != nil {
						return err
					}
				}
			}
			return tx.Bucket(bucketMeta).Put(schemaKey, putUint32(6))
		})
	}
	if err != nil {
		return fmt.Errorf("upgrade schema 5 to 6: %w", err)
	}
	return nil
}

// fillByState indexes in bystate up to chunk tasks after the task id after
// (from the first when nil), reading each task's header, not its data, and
// writing the entries in key order. It returns how many it indexed and the
// last one's id.
func fillByState(tx *bbolt.Tx, after []byte, chunk int) (int, []byte, error) {
	var keys [][]byte
	c := tx.Bucket(bucketTasks).Cursor()
	k, v := c.First()
	if after != nil {
		if k, v = c.Seek(after); bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	var last []byte
	for ; k != nil && len(keys) < chunk; k, v = c.Next() {
		if len(k) != len(uuid.UUID{}) {
			return 0, nil, fmt.Errorf("tasks: key %x is not a task id", k)
		}
		t, err := decodeHeader(tx, uuid.UUID(k), v)
		if err != nil {
			return 0, nil, fmt.Errorf("task %x: decode: %w", k, err)
		}
		keys = append(keys, byStateKey(t))
		last = bytes.Clone(k)
	}
	slices.SortFunc(keys, bytes.Compare)
	b := writable(tx, bucketByState)
	for _, k := range keys {
		if err := b.Put(k, empty); err != nil {
			return 0, nil, err
		}
	}
	return len(keys), last, nil
}

// fillAudit writes the audit entries of every operator action in the
// history, for a file from before the audit log.
func fillAudit(tx *bbolt.Tx) error {
	var entries []kv
	err := tx.Bucket(bucketHistory).ForEach(func(k, v []byte) error {
		h, err := decodeHistory(v)
		if err != nil || !h.Audited() || len(k) != 20 {
			return err
		}
		t, err := loadTask(tx, uuid.UUID(k[:16]))
		if err != nil || t == nil {
			return err
		}
		a := store.NewAuditEntry(t, &h)
		b, err := encodeAudit(&a)
		if err != nil {
			return err
		}
		entries = append(entries, kv{auditKey(h.At, t.ID, h.Seq), b})
		return nil
	})
	if err != nil {
		return err
	}
	return putAudit(writable(tx, bucketAudit), writable(tx, bucketAuditByTask), entries)
}

// Close commits the requests already queued, stops the writer and closes the
// file. Later calls (and Commit after Close) return store.ErrClosed; a second
// Close returns what the first did.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed.Store(true)
		db.mu.Unlock()
		if db.lg != nil {
			close(db.lg.quit)
			<-db.lg.exited
		}
		close(db.quit)
		<-db.exited
		db.closeErr = db.closeLog()
		if err := db.bolt.Close(); db.closeErr == nil {
			db.closeErr = err
		}
		db.log.Debug("store closed")
	})
	return db.closeErr
}

// openLog replays the write-ahead log at path+".wal" if there is one, and
// keeps it open for the logger when opts.Log is set.
func (db *DB) openLog(path string, opts Options) error {
	walPath := path + ".wal"
	if !opts.Log {
		if _, err := os.Stat(walPath); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	w, recs, cut, err := openWAL(walPath)
	if err != nil {
		return fmt.Errorf("write-ahead log: %w", err)
	}
	if cut > 0 {
		db.log.Warn("write-ahead log: cut off a torn record at its end (never acknowledged)", "bytes", cut)
	}
	lg := &logState{wal: w, ov: newOverlay(), reqs: make(chan *request, opts.MaxBatch), quit: make(chan struct{}),
		exited: make(chan struct{}), kick: make(chan struct{}, 1), max: opts.LogBuffer, high: opts.LogBuffer / 2, idle: cmp.Or(opts.logIdle, applyIdle), cutAt: cmp.Or(opts.logCut, walCutAt),
		waitc: make(chan struct{})}
	lg.st = newStaged(lg.ov)
	db.lg = lg
	replayed, last, err := db.replayLog(recs)
	if err != nil {
		w.close()
		db.lg = nil
		return err
	}
	if replayed > 0 {
		db.log.Info("write-ahead log replayed", "records", replayed, "last", last)
	}
	lg.seq = last
	lg.logged.Store(last)
	lg.applied.Store(last)
	if !opts.Log {
		db.lg = nil
		if err := w.close(); err != nil {
			return err
		}
		return os.Remove(walPath)
	}
	return nil
}

// closeLog empties the log once bbolt holds all of it, and closes it; a log
// with writes bbolt could not apply stays for the next Open to replay.
func (db *DB) closeLog() error {
	lg := db.lg
	if lg == nil {
		return nil
	}
	var err error
	if lg.applied.Load() == lg.seq {
		err = lg.wal.truncate(0)
	} else {
		db.log.Error("write-ahead log: closing with records the file does not hold; the next Open replays them",
			"logged", lg.seq, "applied", lg.applied.Load())
	}
	if cerr := lg.wal.close(); err == nil {
		err = cerr
	}
	return err
}

// Stats is a snapshot of the file for metrics.
type Stats struct {
	// Tasks is the number of stored tasks, retained finished ones included.
	Tasks int
	// FileSize is the size of the data file on disk, in bytes.
	FileSize int64
	// FreePages is how many pages are free for reuse without growing the file.
	FreePages int
	// FreeBytes is the size of those free pages.
	FreeBytes int
}

// Stats returns a snapshot of the file. Counting the tasks walks the pages of
// the tasks bucket, so call it every few seconds, not per request. With the
// write-ahead log, new tasks the file has not applied yet are not counted.
func (db *DB) Stats() (Stats, error) {
	if db.closed.Load() {
		return Stats{}, store.ErrClosed
	}
	var s Stats
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		s.Tasks = tx.Bucket(bucketTasks).Stats().KeyN
		return nil
	})
	if err != nil {
		return Stats{}, viewErr(err)
	}
	fi, err := os.Stat(db.bolt.Path())
	if err != nil {
		return Stats{}, fmt.Errorf("store: stats: %w", err)
	}
	s.FileSize = fi.Size()
	bs := db.bolt.Stats()
	s.FreePages, s.FreeBytes = bs.FreePageN, bs.FreeAlloc
	return s, nil
}

// viewErr maps bbolt's "not open" to store.ErrClosed for reads racing Close.
func viewErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return store.ErrClosed
	}
	return err
}

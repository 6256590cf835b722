package bolt

import (
	"time"

	"go.etcd.io/bbolt"
)

// warmChunk is how much of the map one warm step populates. Each step runs
// inside a read transaction, which holds back a remap of the file (a writer
// that grows it) until it ends, so a step must stay short: 64 MiB of a file
// in the page cache takes a few milliseconds.
const warmChunk = 64 << 20

// warm populates the page tables of the file's memory map, chunk by chunk,
// in the background after Open.
//
// A freshly opened map has no page-table entries, so every page a request
// touches for the first time costs a page fault even when the file is in
// the page cache. After a restart that is exactly when work piles up: the
// timeouts that fell due while the service was down all fire at once, and
// each touches several pages of a cold map. In the 100,000-timeout burst of
// BENCHMARKS.md the faults were 13 % of the CPU. Warming moves that cost to
// a goroutine that runs while the service is otherwise idle; on a file not
// in the page cache it also reads the file in, sequentially, which is far
// cheaper than the random reads requests would make.
//
// It stops early when the DB closes and gives up silently where the kernel
// cannot populate a map (see populate).
func (db *DB) warm(limit int64) {
	defer close(db.warmed)
	began := time.Now()
	var size int64
	if err := db.bolt.View(func(tx *bbolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		return
	}
	if size > limit {
		db.log.Debug("store map not warmed: file larger than the limit", "size", size, "limit", limit)
		return
	}
	for off := int64(0); off < size; off += warmChunk {
		if db.closed.Load() {
			return
		}
		var err error
		viewErr := db.bolt.View(func(tx *bbolt.Tx) error {
			// The map's address is stable while this transaction is open.
			n := min(warmChunk, tx.Size()-off)
			if n > 0 {
				err = populate(db.bolt.Info().Data+uintptr(off), uintptr(n))
			}
			return nil
		})
		if viewErr != nil {
			return
		}
		if err != nil {
			db.log.Debug("store map not warmed", "err", err)
			return
		}
	}
	db.log.Debug("store map warmed", "size", size, "took", time.Since(began))
}

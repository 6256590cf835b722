package bolt

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"
)

// TestWriter_appliesABatchInTaskOrder: the requests queued while the writer
// was busy run in the order of their task ids (requests about no task
// first), and two requests about one task keep the order they arrived in.
func TestWriter_appliesABatchInTaskOrder(t *testing.T) {
	t.Parallel()
	db := openTest(t, tempPath(t), Options{})
	ids := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	low, mid, high := ids[0], ids[1], ids[2]

	type req struct {
		name  string
		order uuid.UUID
	}
	arrival := []req{{"high", high}, {"low first", low}, {"no task", uuid.Nil}, {"mid", mid}, {"low second", low}}
	want := []string{"no task", "low first", "low second", "mid", "high"}

	var mu sync.Mutex
	var ran []string
	release := blockWriter(db)
	var wg sync.WaitGroup
	for i, r := range arrival {
		wg.Go(func() {
			err := db.submitOrdered(context.Background(), 1, r.order, func(*bbolt.Tx) (func() error, error) {
				mu.Lock()
				ran = append(ran, r.name)
				mu.Unlock()
				return nil, nil
			})
			if err != nil {
				t.Errorf("%s: %v", r.name, err)
			}
		})
		waitQueued(db, i+1) // one at a time, so the queue holds them in arrival order
	}
	release()
	wg.Wait()
	if !slices.Equal(ran, want) {
		t.Errorf("the batch ran %q, want %q", ran, want)
	}
}

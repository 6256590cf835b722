package engine

import (
	"context"
	"time"
)

// purger is the retention service: every PurgeInterval it deletes finished
// tasks older than Retention, in bounded batches.
func (e *Engine) purger() {
	for {
		select {
		case <-e.stop:
			return
		case <-e.clock.After(e.cfg.PurgeInterval):
		}
		if _, err := e.Purge(context.Background()); err != nil {
			e.log.Error("purge finished tasks", "err", err)
		}
	}
}

// Purge deletes every finished task that finished more than Retention ago,
// with its history; their refs become free. It returns how many it deleted.
func (e *Engine) Purge(ctx context.Context) (int, error) {
	before := e.clock.Now().Add(-e.cfg.Retention)
	total := 0
	for {
		n, err := e.st.Purge(ctx, before, 1000)
		total += n
		if err != nil || n < 1000 {
			if total > 0 {
				e.log.Info("purged finished tasks", "count", total, "finished_before", before.Format(time.RFC3339))
			}
			return total, err
		}
		select {
		case <-e.stop:
			return total, nil
		default:
		}
	}
}

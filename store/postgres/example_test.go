package postgres_test

import (
	"context"
	"log"
	"time"

	"github.com/conveyor-dev/conveyor/store/postgres"
)

// A node's work loop: claim what is runnable, work on it under the lease, give
// the lease back, and sleep until a commit somewhere makes more work. (A
// real node also renews long leases, claims due timers, and runs
// RescueExpired now and then.)
func Example() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, "postgres://conveyor@127.0.0.1:5432/conveyor", postgres.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	wake, err := db.Listen(ctx, postgres.DefaultChannel)
	if err != nil {
		log.Fatal(err)
	}
	const node, lease = "node-1", 30 * time.Second
	for {
		ids, err := db.ClaimRunnable(ctx, node, lease, 10)
		if err != nil {
			log.Fatal(err)
		}
		for _, id := range ids {
			task, err := db.Task(ctx, id)
			if err != nil {
				continue
			}
			_ = task // run a step: decide the change and db.Commit it
		}
		if err := db.ReleaseLease(ctx, node, ids); err != nil {
			log.Fatal(err)
		}
		if len(ids) == 0 {
			select {
			case <-wake:
			case <-time.After(time.Minute): // a safety net for a lost notification
			}
		}
	}
}

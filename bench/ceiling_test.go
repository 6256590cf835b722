package bench

import (
	"errors"
	"sync/atomic"
	"testing"
)

// A bare flow ends once it has its reply and its callback, in either order,
// and a callback delivered twice (sent again after an attempt that reached
// the server) neither ends it early nor twice.
func TestBare_flowEndsOnReplyAndCallbackOnce(t *testing.T) {
	b := &bare{waiters: waiters{m: map[string]chan event{}}}
	ch := b.waiters.expect("f")
	b.flows.Store("f", &atomic.Int32{})

	b.event("f", calledBack)
	b.event("f", calledBack)
	if len(ch) != 0 {
		t.Fatal("the flow ended before its reply")
	}
	b.event("f", replied)
	b.event("f", calledBack)
	if len(ch) != 1 {
		t.Fatalf("the flow ended %d times, want once", len(ch))
	}
}

// The bare program sends a failed call or callback again, as the service's
// simulators and engine do, and gives up after as many attempts as they do.
func TestBare_retrySendsAgainAfterAFailure(t *testing.T) {
	b := &bare{}
	tries := 0
	err := b.retry(func() error {
		if tries++; tries < 3 {
			return errors.New("connection reset")
		}
		return nil
	})
	if err != nil || tries != 3 || b.retries.Load() != 2 {
		t.Errorf("retry: err %v after %d tries, %d counted retries; want success on the 3rd, 2 retries", err, tries, b.retries.Load())
	}
	if got := b.firstFailure.Load(); got != "connection reset" {
		t.Errorf("first failure %v, want the first error", got)
	}
}

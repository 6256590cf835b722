package bench

import (
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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

// Against the LiqPay simulator the bare program sends the seed's hold as
// LiqPay wants it (signed form, the flow's fields): the simulator holds the
// funds and calls back, and the flow ends after its three commits.
func TestBare_sandboxProviderHoldsAndCallsBack(t *testing.T) {
	b, err := startBare(filepath.Join(t.TempDir(), "bare.db"), 3, http.DefaultTransport, true)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			b.close()
		}
	}()
	ch := b.waiters.expect("order-1")
	req, err := http.NewRequest(http.MethodPost, b.url+"/submit/order-1", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(http.DefaultClient, req, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	if _, ok := await(ch, 10*time.Second, event.settled); !ok {
		t.Fatal("the bare flow did not end")
	}
	// The flow ends when the callback is committed, before the simulator
	// has read the answer; closing waits for its deliveries.
	b.close()
	closed = true
	calls := b.lp.Calls()
	if len(calls) != 1 || calls[0].Action != "hold" || calls[0].OrderID != "order-1" || calls[0].Result != "ok" || calls[0].Status != "hold_wait" {
		t.Errorf("simulator calls = %+v, want one hold of order-1 answered ok, hold_wait", calls)
	}
	cbs := b.lp.Callbacks()
	if len(cbs) != 1 || !cbs[0].Delivered || cbs[0].URL != b.url+"/callbacks/order-1" {
		t.Errorf("simulator callbacks = %+v, want one delivered to the flow's callback URL", cbs)
	}
	if got := b.w.puts.Load(); got != 3 {
		t.Errorf("the flow committed %d records, want 3 (submit, reply, callback)", got)
	}
}

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/conveyor-dev/conveyor/client"
	"github.com/conveyor-dev/conveyor/sandbox/via"
	"github.com/conveyor-dev/conveyor/store"
)

// lifecycleFlow is one shipped hold lifecycle driven to a capture.
type lifecycleFlow struct {
	name    string // short name for the table
	process string
	data    func(ref string) map[string]any
}

var lifecycleFlows = []lifecycleFlow{
	{"LiqPay", "liqpay-hold-lifecycle", holdData},
	{"VIA", "via-hold-lifecycle", func(ref string) map[string]any {
		return map[string]any{
			"merchantId": via.DefaultMerchantID, "cardToken": via.CardSuccess, "amount": json.Number("10000"),
			"currency": "UZS", "note": "Conveyor bench", "accounts": map[string]any{"account": "123123"},
		}
	}},
}

// captureCommand is the merchant's command, sent by ref over HTTP.
var captureCommand = []byte(`{"command":"capture"}`)

// lifecycle runs each lifecycle with a capture: submit over HTTP, the hold
// call, the task waits in HELD for the merchant; the client then sends the
// capture command (a callback by ref over HTTP), the capture call, final.
// A flow ends when the task is captured.
func (r *runner) lifecycle(ctx context.Context) error {
	for _, f := range lifecycleFlows {
		if err := r.lifecycleOf(ctx, f); err != nil {
			return fmt.Errorf("%s: %w", f.process, err)
		}
	}
	return nil
}

func (r *runner) lifecycleOf(ctx context.Context, f lifecycleFlow) error {
	conc := r.o.Size.LifecycleConcurrency
	dir, cleanup, err := r.tempDir("lifecycle")
	if err != nil {
		return err
	}
	defer cleanup()
	p := newProbe()
	svc, err := r.o.Start(ctx, ServiceOptions{DB: filepath.Join(dir, "conveyor.db"), Engine: p.configure, SandboxTransport: r.callbacks})
	if err != nil {
		return err
	}
	defer svc.Shutdown()
	hc := newHTTPClient(conc)
	defer hc.CloseIdleConnections()
	cl := client.New(svc.URL(), "", hc)
	run := func(ctx context.Context, ref string) (time.Time, time.Time, error) {
		ch := p.waiters.expect(ref)
		defer p.waiters.forget(ref)
		start := time.Now()
		if _, _, err := cl.Submit(ctx, f.process, ref, f.data(ref)); err != nil {
			return start, time.Now(), err
		}
		held := func(ev event) bool {
			return ev.Node == "wait_command" && ev.Status == store.StatusWaiting || ev.settled()
		}
		if ev, ok := await(ch, flowLimit, held); !ok || ev.settled() {
			return start, time.Now(), fmt.Errorf("task %s never waited for the merchant (last %s in %s)", ref, ev.Status, ev.Node)
		}
		res, err := cl.CallbackByRef(ctx, f.process, ref, "application/json", captureCommand)
		if err != nil {
			return start, time.Now(), fmt.Errorf("capture %s: %w", ref, err)
		}
		if res.Result != "accepted" {
			return start, time.Now(), fmt.Errorf("capture %s: answered %s", ref, res.Result)
		}
		ev, ok := await(ch, flowLimit, event.settled)
		switch {
		case !ok:
			return start, time.Now(), fmt.Errorf("task %s was not captured within %s", ref, flowLimit)
		case ev.Node != "captured":
			return start, ev.At, fmt.Errorf("task %s ended %s in %s, want captured", ref, ev.Status, ev.Node)
		}
		return start, ev.At, nil
	}
	// One flow alone first: a flow that waits on a timer (VIA's first
	// poll) needs a warm-up and a window longer than itself, or the window
	// would see no flow end.
	start, end, err := run(ctx, "life-first")
	if err != nil {
		return err
	}
	alone := end.Sub(start)
	d := max(r.o.Size.Duration, alone)
	warm := max(warmUp(d), alone)
	commits := p.commits.Load()
	r.acks.reset()
	res := drive(ctx, conc, warm, d, nil, func(ctx context.Context, w, n int) (time.Time, time.Time, error) {
		return run(ctx, fmt.Sprintf("life-%d-%d", w, n))
	})
	if err := failed(res); err != nil {
		return err
	}
	at := fmt.Sprintf(" @ %d clients", conc)
	r.cpuNote("lifecycle "+f.name, res)
	r.add(Row{Scenario: Lifecycle, Metric: f.name + " hold+capture flows/s" + at, Value: res.rate, Unit: "/s"})
	r.add(Row{Scenario: Lifecycle, Metric: f.name + " end-to-end p99" + at, Value: ms(quantile(res.latencies, 0.99)), Unit: "ms"})
	r.note("lifecycle %s: one flow alone takes %s, so %d clients in a closed loop cannot pass %.0f flows/s; %.1f store commits per flow; simulator callbacks per flow: %.1f answered 2xx, %.1f not",
		f.name, alone.Round(time.Millisecond), conc, float64(conc)/alone.Seconds(), float64(p.commits.Load()-commits)/float64(res.total),
		float64(len(r.acks.between(time.Time{}, time.Now())))/float64(res.total), float64(r.acks.refused.Load())/float64(res.total))
	return nil
}

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/conveyor-dev/conveyor/client"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/store"
)

// internalRounds makes each bench-internal task move 2*4+2 = 10 times
// within its one commit.
const internalRounds = 4

// internalConcurrency is how many submitters the internal scenario runs.
const internalConcurrency = 64

// internal measures durable transitions/s on a flow of set and condition
// nodes only. The rated run submits in-process (engine.Submit, what the
// HTTP handler calls): a task here is one commit and ten moves, so over
// HTTP the request decoding and the answer's encoding would take most of
// the CPU and the row would measure net/http. The same flow over HTTP is
// reported beside it.
func (r *runner) internal(ctx context.Context) error {
	dir, cleanup, err := r.tempDir("internal")
	if err != nil {
		return err
	}
	defer cleanup()
	flowDir, err := writeFlow(dir, "internal.yaml")
	if err != nil {
		return err
	}
	p := newProbe()
	svc, err := r.o.Start(ctx, ServiceOptions{DB: filepath.Join(dir, "conveyor.db"), Flows: flowDir, Engine: p.configure, SandboxTransport: r.callbacks})
	if err != nil {
		return err
	}
	defer svc.Shutdown()
	moves := 2*internalRounds + 2
	data := func() map[string]any { return map[string]any{"rounds": json.Number(fmt.Sprint(internalRounds))} }

	eng := svc.Engine()
	in := drive(ctx, internalConcurrency, warmUp(r.o.Size.Duration), r.o.Size.Duration, p.transitions.Load, func(ctx context.Context, _, _ int) (time.Time, time.Time, error) {
		start := time.Now()
		v, _, err := eng.Submit(ctx, engine.SubmitRequest{Process: "bench-internal", Data: data()})
		if err == nil && v.Status != store.StatusSucceeded {
			err = fmt.Errorf("task %s ended %s in %s", v.ID, v.Status, v.Node)
		}
		return start, time.Now(), err
	})
	if err := failed(in); err != nil {
		return err
	}
	r.cpuNote("internal in-process", in)
	r.add(Row{Scenario: Internal, Metric: fmt.Sprintf("durable transitions/s (in-process submit, %d moves per commit)", moves),
		Value: in.perSecond(), Unit: "/s", Target: atLeast(30_000)})
	r.add(Row{Scenario: Internal, Metric: "tasks committed/s (in-process submit)", Value: in.rate, Unit: "/s"})

	cl := client.New(svc.URL(), "", newHTTPClient(internalConcurrency))
	over := drive(ctx, internalConcurrency, warmUp(r.o.Size.Duration), r.o.Size.Duration, p.transitions.Load, func(ctx context.Context, _, _ int) (time.Time, time.Time, error) {
		start := time.Now()
		t, _, err := cl.Submit(ctx, "bench-internal", "", data())
		if err == nil && t.Status != string(store.StatusSucceeded) {
			err = fmt.Errorf("task %s ended %s in %s", t.ID, t.Status, t.Node)
		}
		return start, time.Now(), err
	})
	if err := failed(over); err != nil {
		return err
	}
	r.cpuNote("internal over HTTP", over)
	r.add(Row{Scenario: Internal, Metric: "durable transitions/s (submit over HTTP)", Value: over.perSecond(), Unit: "/s"})
	r.add(Row{Scenario: Internal, Metric: "submit latency p99 over HTTP", Value: ms(quantile(over.latencies, 0.99)), Unit: "ms"})
	return nil
}

// failed turns a run in which flows failed into an error: a benchmark of a
// broken service measures nothing.
func failed(l *loadResult) error {
	if l.errors == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d flows failed; first: %w", l.errors, l.errors+l.total, l.firstErr)
}

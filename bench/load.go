package bench

import (
	"context"
	"sync"
	"time"
)

// flowLimit bounds how long one flow may take before it counts as failed.
const flowLimit = 60 * time.Second

// flowFunc runs one flow and returns when it started and when it reached
// its end (as the service committed it).
type flowFunc func(ctx context.Context, worker, n int) (start, end time.Time, err error)

// loadResult is what a closed-loop load run measured.
type loadResult struct {
	conc int
	// from and to bound the measured window (after the warm-up).
	from, to time.Time
	// flows counts the flows that ended inside the window; rate is per
	// second of window.
	flows int
	rate  float64
	// latencies are the end-to-end times of the flows that started inside
	// the window.
	latencies []time.Duration
	// total counts every flow that succeeded, warm-up and tail included.
	total    int
	errors   int
	firstErr error
	// counts holds counter's reading at from and at to.
	counts [2]int64
	// cpu is how busy the machine was during the window.
	cpu cpuUse
}

// perSecond is the counter's rate over the window.
func (l *loadResult) perSecond() float64 {
	return float64(l.counts[1]-l.counts[0]) / l.to.Sub(l.from).Seconds()
}

// warmUp is the part of a window's start that is not measured: connections
// open, caches fill, the group commit finds its rhythm.
func warmUp(d time.Duration) time.Duration { return min(time.Second, d/4) }

// drive runs conc callers in a closed loop — each starts its next flow as
// soon as the last one ended — then waits for the flows in flight. The
// measured window is d long and starts after warm, and never before the
// first flow has ended; it lasts at least twice that first flow (a slow
// machine, or -race, must not leave a window in which nothing could end:
// the first wave of a closed loop ends together, all of it just after the
// first flow). counter, when set, is read at the window's edges.
func drive(ctx context.Context, conc int, warm, d time.Duration, counter func() int64, flow flowFunc) *loadResult {
	type done struct {
		start, end time.Time
		err        error
	}
	res := &loadResult{conc: conc}
	begin := time.Now()
	// window is closed once from and to are known: at the first end.
	window := make(chan struct{})
	var first sync.Once
	// The window opens at the end of the first flow to return, as the
	// service committed it, not when its caller heard: the rest of the
	// first wave commits in between, and must count.
	opened := func(start, end time.Time) {
		first.Do(func() {
			res.from = begin.Add(warm)
			if end.After(res.from) {
				res.from = end
			}
			res.to = res.from.Add(max(d, 2*end.Sub(start)))
			close(window)
		})
	}
	over := func() bool {
		select {
		case <-window:
			return !time.Now().Before(res.to)
		default:
			return false
		}
	}
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		select {
		case <-window:
		case <-ctx.Done():
			return
		}
		var cpu [2]cpuSample
		for i, at := range []time.Time{res.from, res.to} {
			select {
			case <-time.After(time.Until(at)):
				cpu[i] = sampleCPU()
				if counter != nil {
					res.counts[i] = counter()
				}
			case <-ctx.Done():
				return
			}
		}
		res.cpu = cpuBetween(cpu[0], cpu[1])
	}()
	results := make([][]done, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for n := 0; !over() && ctx.Err() == nil; n++ {
				start, end, err := flow(ctx, w, n)
				opened(start, end)
				results[w] = append(results[w], done{start, end, err})
			}
		})
	}
	wg.Wait()
	<-counted
	for _, rs := range results {
		for _, r := range rs {
			if r.err != nil {
				res.errors++
				if res.firstErr == nil {
					res.firstErr = r.err
				}
				continue
			}
			res.total++
			if !r.end.Before(res.from) && r.end.Before(res.to) {
				res.flows++
			}
			if !r.start.Before(res.from) && r.start.Before(res.to) {
				res.latencies = append(res.latencies, r.end.Sub(r.start))
			}
		}
	}
	if w := res.to.Sub(res.from); w > 0 {
		res.rate = float64(res.flows) / w.Seconds()
	}
	return res
}

package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/store"
)

// scaleSubmitters is how many goroutines park the scale scenario's tasks.
const scaleSubmitters = 256

// scaleFireLimit bounds the wait for the due timeouts to fire.
const scaleFireLimit = 15 * time.Minute

// offsetClock is the system clock plus an offset the harness moves: after
// the restart it jumps an hour ahead, so that the timeouts set an hour after
// the tasks were parked come due together without waiting an hour.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time                         { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// set makes Now read t from now on.
func (c *offsetClock) set(t time.Time) { c.off.Store(int64(time.Until(t))) }

// scale parks Size.Waiting tasks in a callback node (bench-wait), measures
// memory, file size and a restart, then lets Size.Due of them time out in
// the same second and measures how fast the timer service fires them.
//
// The tasks are submitted in-process (engine.Submit from many goroutines,
// each a normal one-task commit, grouped by the store), because a million
// HTTP submits would make this scenario about the HTTP layer, which seed
// already measures. Each task's deadline is in its data (the callback
// node's until): Due of them an hour after the run began, to the second,
// the others two days later. The engine's clock then jumps forward so the
// hour has passed.
//
// The burst runs in Size.Rounds waves, like the seed's rounds, because one
// burst on this VM says little: the same build fired all in 3.6 s and in
// 5.0 s minutes apart. Wave k's tasks are every tenth task (Waiting/Due-th)
// at offset k, due k+1 hours after the start, so every wave has the same
// density over the file; each wave starts right after a restart, as the
// first does. The table shows the median wave (by p99 lag), and a note
// lists them all.
func (r *runner) scale(ctx context.Context) error {
	dir, cleanup, err := r.tempDir("scale")
	if err != nil {
		return err
	}
	defer cleanup()
	flowDir, err := writeFlow(dir, "wait.yaml")
	if err != nil {
		return err
	}
	db := filepath.Join(dir, "conveyor.db")
	clock := &offsetClock{}
	start := func(p *probe) (Service, error) {
		return r.o.Start(ctx, ServiceOptions{DB: db, Flows: flowDir, StoreCommits: p.storeCommit, Engine: func(c *engine.Config) {
			p.configure(c)
			c.Clock = clock
		}})
	}
	svc, err := start(newProbe())
	if err != nil {
		return err
	}
	defer func() {
		if svc != nil {
			svc.Shutdown()
		}
	}()

	n, due := r.o.Size.Waiting, r.o.Size.Due
	every := max(1, n/due)
	waves := min(r.o.Size.Rounds, every)
	base := time.Now().Truncate(time.Second)
	dueAt := func(wave int) time.Time { return base.Add(time.Duration(wave+1) * time.Hour) }
	later := base.Add(48 * time.Hour)
	deadline := func(i int) time.Time {
		if wave := i % every; wave < waves && i/every < due {
			return dueAt(wave)
		}
		return later
	}
	began, written := time.Now(), diskWritten()
	probeID, err := r.park(ctx, svc.Engine(), n, deadline)
	if err != nil {
		return err
	}
	parked := time.Since(began)
	if w := diskWritten(); written >= 0 && w >= 0 {
		r.note("scale: parking wrote %.0f MiB to disk (%.1f KiB per task)", mib(w-written), float64(w-written)/1024/float64(n))
	}
	r.add(Row{Scenario: Scale, Metric: "tasks parked/s (in-process submit)", Value: float64(n) / parked.Seconds(), Unit: "/s"})

	mem := settledMemory()
	r.add(Row{Scenario: Scale, Metric: fmt.Sprintf("RSS with %s tasks waiting", thousands(int64(n))), Value: mib(mem.RSS), Unit: "MiB", Target: atMost(1024)})
	r.add(Row{Scenario: Scale, Metric: "  of which anonymous (Go heap, stacks)", Value: mib(mem.Anon), Unit: "MiB"})
	r.note("scale: RSS after parking %s tasks: %.0f MiB = %.0f MiB anonymous (Go heap %.0f MiB) + %.0f MiB of the mapped database file; peak %.0f MiB",
		thousands(int64(n)), mib(mem.RSS), mib(mem.Anon), mib(mem.heap), mib(mem.File), mib(mem.HWM))
	fi, err := os.Stat(db)
	if err != nil {
		return err
	}
	r.add(Row{Scenario: Scale, Metric: "database size", Value: mib(fi.Size()), Unit: "MiB"})
	r.add(Row{Scenario: Scale, Metric: "database bytes per waiting task", Value: float64(fi.Size()) / float64(n), Unit: "B"})

	closing := time.Now()
	svc.Shutdown()
	svc = nil
	closed := time.Since(closing)
	reopening := time.Now()
	p := newProbe()
	if svc, err = start(p); err != nil {
		return err
	}
	if err := firstRead(ctx, svc.URL(), probeID); err != nil {
		return err
	}
	ready := time.Since(reopening)
	r.add(Row{Scenario: Scale, Metric: "restart to ready (reopen, first task read served)", Value: ready.Seconds(), Unit: "s", Target: atMost(10)})
	r.note("scale: closing the service took %s; ready = startService on the same file until GET /api/v1/tasks/{id} answers 200", closed.Round(time.Millisecond))
	mem = settledMemory()
	r.add(Row{Scenario: Scale, Metric: "RSS after restart, ready", Value: mib(mem.RSS), Unit: "MiB", Target: atMost(1024)})

	var results []burstResult
	for wave := range waves {
		if wave > 0 {
			svc.Shutdown()
			svc = nil
			p = newProbe()
			if svc, err = start(p); err != nil {
				return err
			}
			if err := firstRead(ctx, svc.URL(), probeID); err != nil {
				return err
			}
		}
		res, err := r.burst(ctx, p, clock, dueAt(wave), due, wave == 0)
		if err != nil {
			return fmt.Errorf("wave %d: %w", wave+1, err)
		}
		r.logf("scale: wave %d of %d: %s", wave+1, waves, res)
		results = append(results, res)
		if err := r.checkExpired(ctx, svc.Engine(), (wave+1)*due); err != nil {
			return err
		}
	}
	med := medianBurst(results)
	r.add(Row{Scenario: Scale, Metric: fmt.Sprintf("time to fire %s timeouts due in one second", thousands(int64(due))), Value: med.fired.Seconds(), Unit: "s"})
	r.add(Row{Scenario: Scale, Metric: "timer lag p50", Value: med.p50.Seconds(), Unit: "s"})
	r.add(Row{Scenario: Scale, Metric: "timer lag p99", Value: med.p99.Seconds(), Unit: "s", Target: atMost(2)})
	if med.cpu > 0 {
		r.add(Row{Scenario: Scale, Metric: "CPU per timeout fired (this process)", Value: float64(med.cpu) / float64(time.Microsecond), Unit: "µs"})
	}
	for _, note := range med.notes {
		r.note("scale: %s", note)
	}
	if len(results) > 1 {
		r.note("scale: %s", wavesText(results))
	}
	return nil
}

// burstResult is one wave of the timer burst: the time from the due second
// until the last of its timeouts fired, the lags, and what the store's
// writer, the disk and the CPUs did meanwhile.
type burstResult struct {
	fired, p50, p99 time.Duration
	// cpu is this process's CPU time per timeout over the burst (0 when
	// /proc cannot tell): with two CPUs, 100,000 timeouts cannot fire in
	// less than 100,000 × cpu / 2.
	cpu   time.Duration
	notes []string
}

func (b burstResult) String() string {
	return fmt.Sprintf("all fired in %.2f s, lag p50 %.2f s, p99 %.2f s", b.fired.Seconds(), b.p50.Seconds(), b.p99.Seconds())
}

// burst lets the due timeouts set at at fall due two seconds from now,
// together, and measures their firing by the service p watches. profile
// says whether this wave is the one Options.FireProfile records.
func (r *runner) burst(ctx context.Context, p *probe, clock *offsetClock, at time.Time, due int, profile bool) (burstResult, error) {
	clock.set(at.Add(-2 * time.Second))
	dueWall := time.Now().Add(2 * time.Second)
	atDue := make(chan cpuSample, 1)
	writtenAtDue := make(chan int64, 1)
	heapAtDue := make(chan heapSample, 1)
	go func() {
		time.Sleep(time.Until(dueWall))
		atDue <- sampleCPU()
		writtenAtDue <- diskWritten()
		heapAtDue <- sampleHeap()
	}()
	stopProfile := func() {}
	if profile {
		var err error
		if stopProfile, err = r.profileFrom(dueWall); err != nil {
			return burstResult{}, err
		}
	}
	fired, err := p.awaitFinished(ctx, int64(due), scaleFireLimit)
	stopProfile()
	if err != nil {
		return burstResult{}, err
	}
	var res burstResult
	if w0, w := <-writtenAtDue, diskWritten(); w0 >= 0 && w >= 0 {
		res.notes = append(res.notes, fmt.Sprintf("firing wrote %.0f MiB to disk (%.1f KiB per timeout)", mib(w-w0), float64(w-w0)/1024/float64(due)))
	}
	if g, ok := p.groupsBetween(dueWall, fired); ok {
		res.notes = append(res.notes, fmt.Sprintf("while the timeouts fired, %s", g))
	}
	if h0, h := <-heapAtDue, sampleHeap(); h.cycles >= h0.cycles {
		res.notes = append(res.notes, fmt.Sprintf("the process allocated %.1f KiB per timeout (%d GC cycles), and the Go heap's memory from the system grew by %.0f MiB (first touches are page faults)",
			float64(h.allocated-h0.allocated)/1024/float64(due), h.cycles-h0.cycles, mib(int64(h.mapped)-int64(h0.mapped))))
	}
	a, b := <-atDue, sampleCPU()
	if cpu := cpuBetween(a, b); cpu != (cpuUse{}) {
		res.cpu = (b.self - a.self) / time.Duration(due)
		res.notes = append(res.notes, fmt.Sprintf("CPUs busy while the timeouts fired: %s", cpu))
	}
	lags := p.timerLags()
	res.fired, res.p50, res.p99 = fired.Sub(dueWall), quantile(lags, 0.5), quantile(lags, 0.99)
	return res, nil
}

// heapSample is the Go heap's counters at one moment: bytes allocated since
// the start, GC cycles, and the heap's memory obtained from the system and
// not returned.
type heapSample struct {
	allocated, mapped uint64
	cycles            uint32
}

func sampleHeap() heapSample {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return heapSample{allocated: m.TotalAlloc, mapped: m.HeapSys - m.HeapReleased, cycles: m.NumGC}
}

// medianBurst is the wave with the median p99 lag (the later of the two
// middle ones for an even count).
func medianBurst(rs []burstResult) burstResult {
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(a, b burstResult) int { return cmp.Compare(a.p99, b.p99) })
	return sorted[len(sorted)/2]
}

// wavesText lists every wave for the notes.
func wavesText(rs []burstResult) string {
	parts := make([]string, len(rs))
	for i, b := range rs {
		parts[i] = fmt.Sprintf("%.2f / %.2f s", b.fired.Seconds(), b.p99.Seconds())
	}
	return fmt.Sprintf("%d waves, each right after a restart, time to fire all / p99 lag: %s; the rows above are the median wave's",
		len(rs), strings.Join(parts, ", "))
}

// profileFrom starts the burst's CPU profile (Options.FireProfile) at
// dueWall; the func it returns stops it. Without FireProfile both do nothing.
func (r *runner) profileFrom(dueWall time.Time) (stop func(), err error) {
	if r.o.FireProfile == nil {
		return func() {}, nil
	}
	time.Sleep(time.Until(dueWall))
	if err := pprof.StartCPUProfile(r.o.FireProfile); err != nil {
		return nil, fmt.Errorf("bench: burst profile: %w", err)
	}
	return pprof.StopCPUProfile, nil
}

// park submits n bench-wait tasks from many goroutines, task i waiting
// until deadline(i). It returns one task's id.
func (r *runner) park(ctx context.Context, eng *engine.Engine, n int, deadline func(i int) time.Time) (uuid.UUID, error) {
	var next, done atomic.Int64
	var first uuid.UUID
	var once sync.Once
	var wg sync.WaitGroup
	errc := make(chan error, scaleSubmitters)
	step := int64(max(n/10, 1))
	for range scaleSubmitters {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				ref := fmt.Sprintf("w-%07d", i)
				v, _, err := eng.Submit(ctx, engine.SubmitRequest{Process: "bench-wait", Ref: ref, Data: map[string]any{
					"due": json.Number(fmt.Sprint(deadline(i).Unix())), "order_id": ref, "amount": json.Number("12.34"), "currency": "UAH",
				}})
				if err == nil && v.Status != store.StatusWaiting {
					err = fmt.Errorf("task %s is %s in %s, want waiting", v.ID, v.Status, v.Node)
				}
				if err != nil {
					errc <- err
					return
				}
				once.Do(func() { first = v.ID })
				if d := done.Add(1); d%step == 0 {
					r.logf("scale: %s of %s tasks parked", thousands(d), thousands(int64(n)))
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return uuid.Nil, err
	}
	return first, ctx.Err()
}

// firstRead polls until the service answers a task read.
func firstRead(ctx context.Context, base string, id uuid.UUID) error {
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/tasks/"+id.String(), nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the restarted service did not serve task %s within a minute (last: %v)", id, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkExpired verifies that exactly the due tasks timed out.
func (r *runner) checkExpired(ctx context.Context, eng *engine.Engine, due int) error {
	counts, err := eng.Counts(ctx, "bench-wait")
	if err != nil {
		return err
	}
	for _, c := range counts {
		if c.Node == "expired" && c.Total != int64(due) {
			return fmt.Errorf("%d tasks timed out, want %d", c.Total, due)
		}
	}
	return nil
}

// settled is the process's memory with the Go heap in use.
type settled struct {
	memory
	heap int64
}

// settledMemory collects garbage and returns memory to the system before
// reading RSS, so that the number is what the service holds, not what the
// parking left behind.
func settledMemory() settled {
	runtime.GC()
	debug.FreeOSMemory()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return settled{memory: readMemory(), heap: int64(stats.HeapInuse)}
}

// awaitFinished waits until n tasks have reached a final status since the
// probe was installed, and returns when the last of them did.
func (p *probe) awaitFinished(ctx context.Context, n int64, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		if got := p.finished.Load(); got >= n {
			return time.Unix(0, p.lastFinish.Load()), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("only %d of %d timeouts fired within %s", p.finished.Load(), n, limit)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Package bench is the harness behind `conveyor bench`: it measures the real
// service — HTTP server, engine, bbolt store with fsync on, and the
// payment-provider simulators — on loopback, and prints one table.
//
// Scenarios (each in a fresh temporary directory, on a fresh service):
//
//   - internal: a flow of set and condition nodes only; durable transitions/s
//     (moves committed to the store), submitted in-process and over HTTP.
//   - seed: the shipped liqpay-hold flow (submit over HTTP, Calling API to
//     the LiqPay simulator, the simulator's callback over HTTP, final) at
//     concurrency 64 and 256: flows/s, end-to-end and callback latencies.
//   - ceiling: the same HTTP exchanges, with the same LiqPay simulator, and
//     as many fsync'd commits per flow, done by a bare program with no
//     engine: the limit of the machine for this flow, against which the seed
//     rows state the engine's share; and the same program against a bare
//     provider (no JSON, no signatures on either side), the machine's limit
//     for the exchange alone.
//   - scale: a million tasks waiting in a callback node (RSS, file size,
//     restart to ready), then a hundred thousand of their timeouts due in
//     the same second (time to fire them all, lag).
//   - lifecycle: the shipped LiqPay and VIA hold lifecycles with a capture.
//
// The harness knows the service only through StartFunc, so that
// cmd/conveyor can hand it the very service `conveyor serve --sandbox`
// runs.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// Scenario names, in the order they run.
const (
	Internal  = "internal"
	Seed      = "seed"
	Ceiling   = "ceiling"
	Scale     = "scale"
	Lifecycle = "lifecycle"
)

// Scenarios lists every scenario in run order.
var Scenarios = []string{Internal, Seed, Ceiling, Scale, Lifecycle}

// Size is how big a run is.
type Size struct {
	// Name is "full", "quick" or "smoke".
	Name string
	// Duration is the measured window of each throughput run.
	Duration time.Duration
	// Waiting is how many tasks the scale scenario parks; Due how many of
	// them come due in the same second.
	Waiting, Due int
	// SeedConcurrency lists the client concurrencies of the seed and
	// ceiling scenarios; LifecycleConcurrency is the lifecycles'.
	SeedConcurrency      []int
	LifecycleConcurrency int
	// Rounds is how many times the seed and the ceiling are measured back
	// to back at each concurrency; the table shows the round whose share is
	// the median, so that a neighbour who slows the machine during one
	// window cannot decide the share alone. The scale scenario fires as
	// many waves of Due timeouts (at most Waiting/Due), each after a
	// restart, and shows the median wave.
	Rounds int
}

// Sizes of a run.
var (
	// Full is the size BENCHMARKS.md reports.
	Full = Size{Name: "full", Duration: 10 * time.Second, Waiting: 1_000_000, Due: 100_000,
		SeedConcurrency: []int{64, 256}, LifecycleConcurrency: 64, Rounds: 3}
	// Quick runs every scenario small, in about a minute, for CI.
	Quick = Size{Name: "quick", Duration: 2 * time.Second, Waiting: 20_000, Due: 5_000,
		SeedConcurrency: []int{64, 256}, LifecycleConcurrency: 64, Rounds: 1}
	// Smoke only proves that every scenario still runs (tests, -race).
	Smoke = Size{Name: "smoke", Duration: 300 * time.Millisecond, Waiting: 2_000, Due: 500,
		SeedConcurrency: []int{64, 256}, LifecycleConcurrency: 16, Rounds: 1}
)

// Options configures Run.
type Options struct {
	// Start starts a service. Required.
	Start StartFunc
	// Size is the run's size; Duration, Waiting and Due, when set, override
	// its fields.
	Size         Size
	Duration     time.Duration
	Waiting, Due int
	// Rounds, when set, overrides Size.Rounds.
	Rounds int
	// Only lists the scenarios to run; empty runs them all.
	Only []string
	// Dir is where the temporary directories go; "" is os.TempDir().
	Dir string
	// Keep leaves the temporary directories in place.
	Keep bool
	// Store says which store Start opens, for the report ("" for the bolt
	// file with the service's defaults).
	Store string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// FireProfile, when set, receives a CPU profile of the scale scenario's
	// timer burst alone: from the moment its timeouts fall due until the
	// last has fired. Parking the tasks takes ten times as long, so a
	// profile of the whole run says little about the burst.
	FireProfile io.Writer
}

// Run runs the scenarios and returns the report. A scenario that fails
// stops the run: a partial table would read as a complete one.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Start == nil {
		return nil, errors.New("bench: Options.Start is required")
	}
	for _, s := range o.Only {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("bench: unknown scenario %q (want %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	if o.Duration > 0 {
		o.Size.Duration = o.Duration
	}
	if o.Waiting > 0 {
		o.Size.Waiting = o.Waiting
	}
	if o.Rounds > 0 {
		o.Size.Rounds = o.Rounds
	}
	o.Size.Rounds = max(1, o.Size.Rounds)
	if o.Due > 0 {
		o.Size.Due = o.Due
	}
	if o.Size.Due > o.Size.Waiting {
		return nil, fmt.Errorf("bench: %d due timeouts among %d waiting tasks", o.Size.Due, o.Size.Waiting)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	r := &runner{o: o, rep: &Report{Size: o.Size.Name, Duration: o.Size.Duration.String(), Store: cmp.Or(o.Store, "bolt"), Started: time.Now()}, ceiling: map[int]*ceilingResult{}}
	m, err := probeMachine(o.Dir)
	if err != nil {
		return nil, err
	}
	r.rep.Machine = m
	r.logf("machine: %d CPUs (%s), fsync p50 %.2f ms p99 %.2f ms, %d pages + fdatasync scattered %.2f ms contiguous %.2f ms, on %s",
		m.CPUs, m.Model, m.FsyncP50ms, m.FsyncP99ms, probePages, m.ScatteredMs, m.ContiguousMs, m.Dir)
	// The simulators' callbacks go out on a transport that times them.
	var closeIdle func()
	r.callbacks, closeIdle = newCallbackTransport(&r.acks)
	defer closeIdle()
	for _, s := range Scenarios {
		if !r.selected(s) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		r.logf("%s: start", s)
		if err := r.scenario(ctx, s); err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		r.logf("%s: done in %s", s, time.Since(start).Round(time.Millisecond))
	}
	r.rep.Elapsed = time.Since(r.rep.Started).Round(time.Millisecond).String()
	return r.rep, nil
}

// runner carries a run's state from scenario to scenario: the seed's
// measurements shape the ceiling, and the ceiling's give the seed its
// share.
type runner struct {
	o    Options
	rep  *Report
	acks ackRecorder
	// callbacks is the transport the simulators call back on (timed into
	// acks), handed to every service and to the ceiling.
	callbacks http.RoundTripper
	// seed and ceiling hold their measurements by concurrency.
	seed    map[int]*loadResult
	ceiling map[int]*ceilingResult
	// commitsPerFlow is what a seed flow costs the store, measured.
	commitsPerFlow float64
}

// selected reports whether the run includes scenario name.
func (r *runner) selected(name string) bool {
	return len(r.o.Only) == 0 || slices.Contains(r.o.Only, name)
}

func (r *runner) scenario(ctx context.Context, name string) error {
	switch name {
	case Internal:
		return r.internal(ctx)
	case Seed:
		return r.seedHold(ctx)
	case Ceiling:
		return r.ceilingRun(ctx)
	case Scale:
		return r.scale(ctx)
	case Lifecycle:
		return r.lifecycle(ctx)
	}
	return fmt.Errorf("unknown scenario")
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "%s bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// add appends a row to the report.
func (r *runner) add(row Row) {
	row.judge()
	r.rep.Rows = append(r.rep.Rows, row)
	r.logf("%s: %s = %s %s", row.Scenario, row.Metric, row.value(), row.Unit)
}

// capture runs fn and returns the rows and notes it added, taking them back
// out of the report: the caller decides which round's lines to keep.
func (r *runner) capture(fn func() error) (rows []Row, notes []string, err error) {
	savedRows, savedNotes := r.rep.Rows, r.rep.Notes
	r.rep.Rows, r.rep.Notes = nil, nil
	err = fn()
	rows, notes = r.rep.Rows, r.rep.Notes
	r.rep.Rows, r.rep.Notes = savedRows, savedNotes
	return rows, notes, err
}

// note adds a line under the table.
func (r *runner) note(format string, args ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, args...))
}

// cpuNote records how busy the CPUs were during a load run: this process
// (the service and its clients together) and everything else on the
// machine, which the numbers above suffer from.
func (r *runner) cpuNote(what string, l *loadResult) {
	if l.cpu == (cpuUse{}) {
		return
	}
	r.note("%s: CPUs busy during the window: %s", what, l.cpu)
}

// tempDir makes a fresh directory for one service; it is removed when the
// run ends unless Keep is set.
func (r *runner) tempDir(name string) (string, func(), error) {
	dir, err := os.MkdirTemp(r.o.Dir, "conveyor-bench-"+name+"-")
	if err != nil {
		return "", nil, err
	}
	if r.o.Keep {
		r.logf("%s: keeping %s", name, dir)
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// StartFunc starts a service the way `conveyor serve --sandbox` does, on a
// free loopback port, with the LiqPay and VIA simulators mounted.
type StartFunc func(ctx context.Context, o ServiceOptions) (Service, error)

// ServiceOptions is what the harness decides about a service.
type ServiceOptions struct {
	// DB is the bolt file; its key is kept beside it.
	DB string
	// Flows is a directory of flow files; "" loads the shipped flows.
	Flows string
	// Engine adjusts the engine's configuration before it is built (the
	// harness installs its probe: metrics, commit hook, clock).
	Engine func(*engine.Config)
	// SandboxTransport carries the simulators' callbacks (the harness
	// times them through it); nil for the service's default.
	SandboxTransport http.RoundTripper
	// StoreCommits, when set, is told of each group commit of the bolt
	// store: how many commits it wrote, how long it took, how much of that
	// went to writing pages, and how many.
	StoreCommits bolt.CommitObserver
}

// Service is a running service.
type Service interface {
	// URL is the service's base URL (http://127.0.0.1:port).
	URL() string
	// Engine is the service's engine, for in-process submits.
	Engine() *engine.Engine
	// Shutdown stops the HTTP server, the engine, the simulators and the
	// store, in that order.
	Shutdown()
}

// Report is the result of a run.
type Report struct {
	Size     string    `json:"size"`
	Duration string    `json:"duration"`
	Store    string    `json:"store"`
	Started  time.Time `json:"started"`
	Elapsed  string    `json:"elapsed"`
	Machine  Machine   `json:"machine"`
	Rows     []Row     `json:"rows"`
	Notes    []string  `json:"notes,omitempty"`
}

// Row is one line of the table.
type Row struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	// Target is the goal, when the metric has one.
	Target *Target `json:"target,omitempty"`
	// Verdict is "met" or "missed" against Target; "" without one.
	Verdict string `json:"verdict,omitempty"`
}

// Target is a goal: Value at least (">=") or at most ("<=") Bound.
type Target struct {
	Op    string  `json:"op"`
	Bound float64 `json:"bound"`
}

func atLeast(v float64) *Target { return &Target{Op: ">=", Bound: v} }
func atMost(v float64) *Target  { return &Target{Op: "<=", Bound: v} }

func (row *Row) judge() {
	if row.Target == nil {
		return
	}
	ok := row.Value >= row.Target.Bound
	if row.Target.Op == "<=" {
		ok = row.Value <= row.Target.Bound
	}
	row.Verdict = "missed"
	if ok {
		row.Verdict = "met"
	}
}

func (row Row) value() string { return formatNumber(row.Value, row.Unit) }

func (row Row) target() string {
	if row.Target == nil {
		return ""
	}
	op := "≥"
	if row.Target.Op == "<=" {
		op = "≤"
	}
	return op + " " + formatNumber(row.Target.Bound, row.Unit) + " " + row.Unit
}

// formatNumber prints rates and counts with thousands separators and
// small values with the precision they deserve.
func formatNumber(v float64, unit string) string {
	switch {
	case unit == "%":
		return fmt.Sprintf("%.0f", v)
	case v >= 1000 || v == float64(int64(v)) && v >= 10:
		return thousands(int64(v + 0.5))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v < 0.1 && v != 0:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// WriteTable prints the report for people.
func (rep *Report) WriteTable(w io.Writer) error {
	m := rep.Machine
	fmt.Fprintf(w, "conveyor bench (%s, window %s, store %s) on %d CPUs (GOMAXPROCS %d), %s, Go %s; fsync p50 %.2f ms, p99 %.2f ms; "+
		"%d pages + fdatasync: scattered %.2f ms, contiguous %.2f ms; load average before: %s\n\n",
		rep.Size, rep.Duration, rep.Store, m.CPUs, m.Procs, m.Model, m.GoVersion, m.FsyncP50ms, m.FsyncP99ms,
		probePages, m.ScatteredMs, m.ContiguousMs, m.LoadAverage)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMETRIC\tVALUE\tTARGET\tVERDICT")
	for _, row := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\n", row.Scenario, row.Metric, row.value(), row.Unit, row.target(), row.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range rep.Notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
	_, err := fmt.Fprintf(w, "\n(total %s)\n", rep.Elapsed)
	return err
}

// WriteJSON prints the report for scripts.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// newHTTPClient returns a client that keeps one idle connection per
// concurrent caller, as a service calling Conveyor would.
func newHTTPClient(conc int) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: conc + 16, IdleConnTimeout: 90 * time.Second}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

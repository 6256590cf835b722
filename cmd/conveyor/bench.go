package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/conveyor-dev/conveyor/bench"
	"github.com/conveyor-dev/conveyor/engine"
)

// benchCommand measures the service on this machine: the real server,
// store (fsync on) and simulators on loopback. The harness is package bench;
// this file gives it the service serve runs.
type benchCommand struct {
	stdout, stderr io.Writer
	// wal starts the services with the write-ahead log (--wal).
	wal bool
}

// Run implements command.
func (c *benchCommand) Run(ctx context.Context, args []string) error {
	fs := newFlags("bench", "", c.stderr)
	quick := fs.Bool("quick", false, "run every scenario small (about a minute): for CI")
	smoke := fs.Bool("smoke", false, "run every scenario tiny, only to prove it runs (tests)")
	only := fs.String("only", "", "comma-separated scenarios to run: "+strings.Join(bench.Scenarios, ","))
	duration := fs.Duration("duration", 0, "measured window of each throughput run (default 10s, --quick 2s)")
	waiting := fs.Int("waiting", 0, "tasks the scale scenario parks (default 1000000, --quick 20000)")
	rounds := fs.Int("rounds", 0, "times the seed and the ceiling are measured back to back at each concurrency, and waves of timeouts the scale scenario fires, each after a restart; the table shows the median round and wave (default 3, --quick 1)")
	due := fs.Int("due", 0, "how many of them time out in the same second (default 100000, --quick 5000)")
	dir := fs.String("dir", "", "where the temporary databases go (default $TMPDIR); measure the disk you deploy on")
	keep := fs.Bool("keep", false, "keep the temporary databases")
	wal := fs.Bool("wal", true, "run the service as serve does, with a write-ahead log in front of the bbolt file; --wal=false as serve --wal=false does, without")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE` (use with --only)")
	fireprofile := fs.String("fireprofile", "", "write a CPU profile of the scale scenario's timer burst alone to `FILE`")
	output := fs.String("o", "table", "output: table or json")
	quiet := fs.Bool("q", false, "do not print progress to stderr")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, `Usage: conveyor bench [flags]

Measures Conveyor on this machine: each scenario starts the real service
(HTTP API, engine, bbolt store with fsync on, LiqPay and VIA simulators, as
serve --sandbox) on 127.0.0.1 with a fresh temporary database, drives it
with real HTTP clients and prints a table: scenario, metric, value, target,
verdict. The full run takes several minutes (the scale scenario parks a
million tasks); see BENCHMARKS.md for the method and the latest numbers.

Scenarios: %s

Flags:
`, strings.Join(bench.Scenarios, ", "))
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	if *output != "table" && *output != "json" {
		return usageError(fs, "bad -o %q: want table or json", *output)
	}
	size := bench.Full
	switch {
	case *quick && *smoke:
		return usageError(fs, "give --quick or --smoke, not both")
	case *quick:
		size = bench.Quick
	case *smoke:
		size = bench.Smoke
	}
	var scenarios []string
	if *only != "" {
		scenarios = strings.Split(*only, ",")
		for _, s := range scenarios {
			if !slices.Contains(bench.Scenarios, s) {
				return usageError(fs, "unknown scenario %q in --only (want %s)", s, strings.Join(bench.Scenarios, ","))
			}
		}
	}
	progress := c.stderr
	if *quiet {
		progress = io.Discard
	}
	var fireProfile io.Writer
	if *fireprofile != "" {
		if *cpuprofile != "" {
			return usageError(fs, "give --cpuprofile or --fireprofile, not both: one CPU profile runs at a time")
		}
		f, err := os.Create(*fireprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		fireProfile = f
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	store := "bolt with write-ahead log"
	if c.wal = *wal; !c.wal {
		store = "bolt without write-ahead log (--wal=false)"
	}
	rep, err := bench.Run(ctx, bench.Options{Start: c.start, Size: size, Duration: *duration, Waiting: *waiting, Due: *due, Rounds: *rounds, Only: scenarios,
		Dir: *dir, Keep: *keep, Progress: progress, FireProfile: fireProfile, Store: store})
	if err != nil {
		return err
	}
	if *output == "json" {
		return rep.WriteJSON(c.stdout)
	}
	return rep.WriteTable(c.stdout)
}

// start runs the service as `serve --sandbox --addr 127.0.0.1:0` does. Its
// log is formatted at serve's default level (one access line per request,
// as in production) and then dropped, so the table pays for the logging
// but not for a terminal.
func (c *benchCommand) start(ctx context.Context, o bench.ServiceOptions) (bench.Service, error) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	svc, err := startService(ctx, serviceConfig{Addr: "127.0.0.1:0", DB: o.DB, WAL: c.wal, Dir: o.Flows, Sandbox: true,
		Log: log, Stderr: c.stderr, Engine: o.Engine, SandboxTransport: o.SandboxTransport, StoreCommits: o.StoreCommits})
	if err != nil {
		return nil, err
	}
	return benchService{svc}, nil
}

// benchService shows a running service to the harness.
type benchService struct{ s *service }

func (b benchService) URL() string            { return b.s.URL }
func (b benchService) Engine() *engine.Engine { return b.s.eng }
func (b benchService) Shutdown()              { b.s.shutdown() }

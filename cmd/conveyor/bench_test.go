package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/bench"
)

// TestBench_quick runs `conveyor bench --smoke` (every scenario, tiny) and
// checks that the table has every scenario with numbers, so the benchmark
// cannot rot unnoticed. It does not judge the numbers: CI machines vary.
// It is not parallel: the harness wraps http.DefaultTransport while it runs.
func TestBench_quick(t *testing.T) {
	if testing.Short() {
		t.Skip("the benchmark smoke run takes about half a minute")
	}
	rep := benchJSON(t)
	seen := map[string]int{}
	for _, row := range rep.Rows {
		seen[row.Scenario]++
		if math.IsNaN(row.Value) || math.IsInf(row.Value, 0) || row.Value < 0 {
			t.Errorf("%s %q = %v, want a number", row.Scenario, row.Metric, row.Value)
		}
		if row.Target != nil && row.Verdict != "met" && row.Verdict != "missed" {
			t.Errorf("%s %q has a target but verdict %q", row.Scenario, row.Metric, row.Verdict)
		}
	}
	for _, s := range bench.Scenarios {
		if seen[s] == 0 {
			t.Errorf("no row for scenario %s", s)
		}
	}
	// The rates must be positive: a scenario that completed nothing is broken.
	for _, row := range rep.Rows {
		if row.Unit == "/s" && row.Value == 0 {
			t.Errorf("%s %q is 0/s", row.Scenario, row.Metric)
		}
	}
	if !slices.ContainsFunc(rep.Rows, func(r bench.Row) bool { return r.Metric == "engine's share of the ceiling @ 64 clients" }) {
		t.Error("no share of the ceiling row")
	}
	// The machine's disk is measured: one page synced, and a commit's worth
	// of pages scattered and side by side.
	if m := rep.Machine; m.FsyncP50ms <= 0 || m.ScatteredMs <= 0 || m.ContiguousMs <= 0 {
		t.Errorf("machine: fsync p50 %v ms, pages scattered %v ms, contiguous %v ms; want each measured", m.FsyncP50ms, m.ScatteredMs, m.ContiguousMs)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !bytes.Contains(table.Bytes(), []byte("SCENARIO")) || !bytes.Contains(table.Bytes(), []byte("pages + fdatasync: scattered")) {
		t.Errorf("table: %v\n%s", err, table.String())
	}
}

// TestBench_rounds runs the seed and the ceiling in two rounds: the table
// keeps one round's rows (each metric once), and a note per concurrency
// lists both rounds.
func TestBench_rounds(t *testing.T) {
	if testing.Short() {
		t.Skip("two rounds of the smoke seed and ceiling take about ten seconds")
	}
	rep := benchJSON(t, "--only", "seed,ceiling", "--rounds", "2")
	rows := map[string]int{}
	for _, row := range rep.Rows {
		rows[row.Scenario+" "+row.Metric]++
	}
	for _, m := range []string{
		"seed completed flows/s @ 64 clients", "seed end-to-end p99 @ 256 clients",
		"ceiling completed flows/s @ 64 clients", "seed engine's share of the ceiling @ 256 clients",
		// The bare provider's run, the machine's limit for the exchange.
		"ceiling completed flows/s, bare provider @ 256 clients", "seed   of the bare-provider limit @ 64 clients",
	} {
		if rows[m] != 1 {
			t.Errorf("row %q appears %d times, want once", m, rows[m])
		}
	}
	for _, conc := range []string{"seed @ 64: 2 rounds", "seed @ 256: 2 rounds"} {
		n := 0
		for _, note := range rep.Notes {
			if strings.HasPrefix(note, conc) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d notes start %q, want one listing the rounds:\n%s", n, conc, strings.Join(rep.Notes, "\n"))
		}
	}
}

// benchJSON runs `conveyor bench --smoke -o json` with the extra flags and
// returns its report.
func benchJSON(t *testing.T, flags ...string) bench.Report {
	t.Helper()
	args := append([]string{"bench", "--smoke", "-q", "-o", "json", "--dir", t.TempDir()}, flags...)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("conveyor %s exited %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("the JSON report does not decode: %v\n%s", err, stdout.String())
	}
	return rep
}

// TestBench_scaleWaves: with --rounds 2 the scale scenario fires two waves
// of timeouts, each after a restart; the table keeps the median wave's rows
// (each once, the CPU per timeout among them) and a note lists both. --fireprofile writes a CPU profile
// (gzipped protobuf, as pprof reads it) of the burst, and refuses to run
// beside --cpuprofile, since one CPU profile runs at a time.
func TestBench_scaleWaves(t *testing.T) {
	if testing.Short() {
		t.Skip("two smoke bursts take a few seconds")
	}
	path := filepath.Join(t.TempDir(), "fire.prof")
	rep := benchJSON(t, "--only", "scale", "--rounds", "2", "--fireprofile", path)
	rows := map[string]int{}
	for _, row := range rep.Rows {
		rows[row.Metric]++
		// /proc tells the process's CPU time on Linux, where CI runs.
		if row.Metric == "CPU per timeout fired (this process)" && (row.Value <= 0 || row.Unit != "µs") {
			t.Errorf("row %q = %v %s, want a positive number of µs", row.Metric, row.Value, row.Unit)
		}
	}
	for _, m := range []string{"time to fire 500 timeouts due in one second", "timer lag p99", "CPU per timeout fired (this process)", "restart to ready (reopen, first task read served)"} {
		if rows[m] != 1 {
			t.Errorf("row %q appears %d times, want once", m, rows[m])
		}
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.HasPrefix(n, "scale: 2 waves, each right after a restart") }) {
		t.Errorf("no note lists the two waves:\n%s", strings.Join(rep.Notes, "\n"))
	}
	prof, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(prof) < 2 || prof[0] != 0x1f || prof[1] != 0x8b {
		t.Errorf("the burst profile is %d bytes, not gzipped: % x", len(prof), prof[:min(len(prof), 8)])
	}

	var stdout, stderr bytes.Buffer
	args := []string{"bench", "--smoke", "--fireprofile", path, "--cpuprofile", path + ".all"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "not both") {
		t.Errorf("conveyor %s: exit %d, stderr %q; want 2 and a usage error", strings.Join(args, " "), code, stderr.String())
	}
}

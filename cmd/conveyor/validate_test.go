package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// repo is the repository root, relative to this package.
const repo = "../.."

// runCLI runs the binary's run function and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// fromRepo names files by their path from the repository root.
func fromRepo(names ...string) []string {
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join(repo, n)
	}
	return paths
}

func TestValidate_good(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join(repo, "testdata/flows/good/*.yaml"))
	files = append(files, fromRepo("processes/flows/liqpay-hold.yaml")...)
	code, stdout, stderr := runCLI(t, append([]string{"validate"}, files...)...)
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != len(files) {
		t.Fatalf("printed %d lines for %d files:\n%s", len(lines), len(files), stdout)
	}
	ok := regexp.MustCompile(`^(.+): ok \(process ([a-z0-9-]+), version ([0-9a-f]{16}), (\d+) nodes\)$`)
	for i, l := range lines {
		m := ok.FindStringSubmatch(l)
		if m == nil || m[1] != files[i] {
			t.Errorf("line %q, want %s: ok (process NAME, version HASH, N nodes)", l, files[i])
		}
	}
	if !strings.Contains(stdout, "liqpay-hold.yaml: ok (process liqpay-hold, version ") || !strings.HasSuffix(stdout, ", 7 nodes)\n") {
		t.Errorf("the shipped flow's line is wrong:\n%s", stdout)
	}
	if stderr != "" {
		t.Errorf("stderr: %s", stderr)
	}
}

func TestValidate_quiet(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runCLI(t, "validate", "-q", filepath.Join(repo, "processes/flows/liqpay-hold.yaml"))
	if code != 0 || stdout != "" || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and silence", code, stdout, stderr)
	}
}

// TestValidate_broken runs validate on every broken flow: exit 1, and the
// problems on stdout exactly as the golden files beside them list them.
func TestValidate_broken(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(repo, "testdata/flows/broken")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() && filepath.Ext(name) != ".yaml" {
			continue
		}
		tc := strings.TrimSuffix(name, ".yaml")
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			files := []string{filepath.Join(dir, name)}
			if e.IsDir() {
				files, _ = filepath.Glob(filepath.Join(dir, name, "*.yaml"))
			}
			code, stdout, stderr := runCLI(t, append([]string{"validate"}, files...)...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			want, err := os.ReadFile(filepath.Join(dir, tc+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.ReplaceAll(stdout, repo+"/", ""); got != string(want) {
				t.Errorf("stdout:\n%s\nwant (%s.golden):\n%s", got, tc, want)
			}
			n := strings.Count(string(want), "\n")
			if want := "conveyor validate: " + strconv.Itoa(n) + " problem(s)\n"; stderr != want {
				t.Errorf("stderr = %q, want %q", stderr, want)
			}
		})
	}
}

// TestValidate_many checks that problems of several files come together,
// sorted by file and place, and that one bad file fails the run.
func TestValidate_many(t *testing.T) {
	t.Parallel()
	files := fromRepo("testdata/flows/good/payout.yaml", "testdata/flows/broken/unreachable.yaml",
		"testdata/flows/broken/missing-start.yaml", "testdata/flows/nowhere.yaml")
	code, stdout, _ := runCLI(t, append([]string{"validate"}, files...)...)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	var got []string
	for l := range strings.SplitSeq(strings.TrimSuffix(stdout, "\n"), "\n") {
		got = append(got, l[:strings.Index(l, ": ")])
	}
	want := []string{ // sorted by file, then place
		files[2] + ":1:1",
		files[1] + ":6:3",
		files[1] + ":10:3",
		files[3] + ":1:1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problem places:\n%s\nwant:\n%s\nstdout:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), stdout)
	}
	if !strings.Contains(stdout, files[3]+":1:1: cannot read file: ") {
		t.Errorf("a missing file is not reported:\n%s", stdout)
	}
}

func TestValidate_duplicateProcess(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runCLI(t, "validate", filepath.Join(repo, "testdata/flows/good/payout.yaml"), filepath.Join(repo, "testdata/flows/good/payout.yaml"))
	if code != 1 || !strings.Contains(stdout, `:4:10: process "payout" is already defined in `) {
		t.Errorf("exit %d, stdout:\n%s\nwant 1 and the name given twice", code, stdout)
	}
}

func TestValidate_usage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no files", []string{"validate"}, 2, "conveyor validate: name at least one flow file\nUsage: conveyor validate [flags] FILE..."},
		{"unknown flag", []string{"validate", "--strict", "x.yaml"}, 2, "flag provided but not defined: -strict"},
		{"help", []string{"validate", "--help"}, 0, "Usage: conveyor validate [flags] FILE..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stderr:\n%s\nwant %d and %q", code, stderr, tt.code, tt.stderr)
			}
			if stdout != "" {
				t.Errorf("stdout: %q", stdout)
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"help"}, {"--help"}} {
		code, stdout, _ := runCLI(t, args...)
		if code != 0 || !strings.Contains(stdout, "Commands:\n") || !strings.Contains(stdout, "\n  validate ") || !strings.Contains(stdout, "\n  graph ") {
			t.Errorf("%v: exit %d, stdout:\n%s", args, code, stdout)
		}
	}
	code, _, stderr := runCLI(t, "frobnicate")
	if code != 2 || !strings.HasPrefix(stderr, `conveyor: unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr:\n%s", code, stderr)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGraph prints the shipped flow in both formats: the output is the
// golden the processes package checks Definition.Graph against.
func TestGraph(t *testing.T) {
	t.Parallel()
	flow := filepath.Join(repo, "processes/flows/liqpay-hold.yaml")
	tests := []struct {
		name   string
		args   []string
		golden string
	}{
		{"default is mermaid", []string{"graph", flow}, "liqpay-hold.mermaid.golden"},
		{"mermaid", []string{"graph", "--format", "mermaid", flow}, "liqpay-hold.mermaid.golden"},
		{"dot", []string{"graph", "--format=dot", flow}, "liqpay-hold.dot.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			want, err := os.ReadFile(filepath.Join(repo, "testdata/flows", tt.golden))
			if err != nil {
				t.Fatal(err)
			}
			if stdout != string(want) {
				t.Errorf("stdout:\n%s\nwant (%s):\n%s", stdout, tt.golden, want)
			}
		})
	}
}

func TestGraph_refused(t *testing.T) {
	t.Parallel()
	flow := filepath.Join(repo, "processes/flows/liqpay-hold.yaml")
	broken := filepath.Join(repo, "testdata/flows/broken/unreachable.yaml")
	tests := []struct {
		name string
		args []string
		code int
		want string // in stdout or stderr
	}{
		{"no file", []string{"graph"}, 2, "conveyor graph: name one flow file"},
		{"two files", []string{"graph", flow, flow}, 2, "conveyor graph: name one flow file"},
		{"unknown flag", []string{"graph", "--colour", flow}, 2, "flag provided but not defined: -colour"},
		{"unknown format", []string{"graph", "--format", "svg", flow}, 1, `unknown graph format "svg" (want mermaid or dot)`},
		{"broken flow", []string{"graph", broken}, 1, broken + ":6:3: node forgotten cannot be reached from start node done"},
		{"missing file", []string{"graph", "nowhere.yaml"}, 1, "nowhere.yaml:1:1: cannot read file"},
		{"help", []string{"graph", "-h"}, 0, "Usage: conveyor graph [flags] FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d and %q", code, stdout, stderr, tt.code, tt.want)
			}
			if tt.code != 0 && strings.Contains(stdout, "flowchart") {
				t.Errorf("a graph was printed:\n%s", stdout)
			}
		})
	}
}

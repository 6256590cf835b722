package processes_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/conveyor-dev/conveyor/processes"
)

// TestDefinition_Graph compares the shipped flow's graphs with the goldens
// in testdata/flows (rewrite them with -update and look at them rendered).
func TestDefinition_Graph(t *testing.T) {
	t.Parallel()
	def := mustLoad(t, "processes/flows/liqpay-hold.yaml")
	for _, format := range []string{processes.FormatMermaid, processes.FormatDOT} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			got, err := def.Graph(format)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(root, "testdata/flows/liqpay-hold."+format+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestDefinition_Graph -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Graph(%s) differs from %s (-want +got):\n%s", format, golden, diff)
			}
		})
	}
}

func TestDefinition_Graph_format(t *testing.T) {
	t.Parallel()
	def := mustLoad(t, "processes/flows/liqpay-hold.yaml")
	empty, err := def.Graph("")
	if err != nil {
		t.Fatal(err)
	}
	mermaid, _ := def.Graph(processes.FormatMermaid)
	if empty != mermaid {
		t.Error(`Graph("") is not the Mermaid graph`)
	}
	if _, err := def.Graph("svg"); err == nil || !strings.Contains(err.Error(), `unknown graph format "svg"`) {
		t.Errorf(`Graph("svg"): err = %v`, err)
	}
}

// TestDefinition_Graph_kinds checks that each node kind looks different and
// finals look like their result, in both formats, on a flow with every kind.
func TestDefinition_Graph_kinds(t *testing.T) {
	t.Parallel()
	def := mustLoad(t, "testdata/flows/good/payout.yaml")
	looks := map[string]map[string]string{} // format -> kind or result -> look
	for _, format := range []string{processes.FormatMermaid, processes.FormatDOT} {
		out, err := def.Graph(format)
		if err != nil {
			t.Fatal(err)
		}
		looks[format] = map[string]string{}
		for _, n := range def.Nodes {
			class := n.Kind
			if r, ok := n.Spec.(interface{ Result() string }); ok {
				class = r.Result()
			}
			look := nodeLook(t, format, out, n.Name)
			if prev, ok := looks[format][class]; ok && prev != look {
				t.Errorf("%s: two %s nodes look different: %q and %q", format, class, prev, look)
			}
			looks[format][class] = look
		}
		seen := map[string]string{}
		for class, look := range looks[format] {
			if other, ok := seen[look]; ok {
				t.Errorf("%s: %s and %s nodes look the same: %q", format, class, other, look)
			}
			seen[look] = class
		}
	}
	if len(looks[processes.FormatMermaid]) != 8 {
		t.Errorf("payout shows %d looks, want one per kind and final result: %v", len(looks[processes.FormatMermaid]), looks[processes.FormatMermaid])
	}
}

// nodeLook extracts how a node is drawn: its Mermaid shape and class, or its
// DOT attributes without the label.
func nodeLook(t *testing.T, format, out, name string) string {
	t.Helper()
	if format == processes.FormatDOT {
		m := regexp.MustCompile(`(?m)^  "` + name + `" \[label="[^"]*", (.*)\];$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("dot: no node %s in\n%s", name, out)
		}
		return m[1]
	}
	shape := regexp.MustCompile(`(?m)^  ` + name + `(\W+)"` + name + `<br/>.*</small>"(\W+)$`).FindStringSubmatch(out)
	class := regexp.MustCompile(`(?m)^  class ` + name + ` (\w+)$`).FindStringSubmatch(out)
	if shape == nil || class == nil {
		t.Fatalf("mermaid: no node %s in\n%s", name, out)
	}
	return shape[1] + shape[2] + " " + class[1]
}

// TestDefinition_Graph_edges checks that every edge is drawn once, labelled
// with its outcome, and that node names Mermaid or DOT would misread (start,
// end) are drawn safely.
func TestDefinition_Graph_edges(t *testing.T) {
	t.Parallel()
	def, err := loadSource(t, `process: names
start: start
nodes:
  start: {type: delay, for: 1s, next: end}
  end:
    type: condition
    cases: [{name: again, when: 'true', next: start}]
    default: done
  done: {type: final, result: success}
`)
	if err != nil {
		t.Fatal(err)
	}
	mermaid, _ := def.Graph(processes.FormatMermaid)
	for _, line := range []string{
		"  START((start)) --> start",
		"  start -->|next| End",
		"  End -->|again| start",
		"  End -->|default| done",
		"  class End condition",
	} {
		if !strings.Contains(mermaid, line+"\n") {
			t.Errorf("mermaid lacks %q:\n%s", line, mermaid)
		}
	}
	if strings.Contains(mermaid, " end\n") || strings.Contains(mermaid, "| end") {
		t.Errorf("mermaid uses the keyword end as a node id:\n%s", mermaid)
	}
	dot, _ := def.Graph(processes.FormatDOT)
	for _, line := range []string{
		`  "START" [shape=point];`,
		`  "START" -> "start";`,
		`  "start" -> "end" [label="next"];`,
		`  "end" -> "start" [label="again"];`,
		`  "end" -> "done" [label="default"];`,
	} {
		if !strings.Contains(dot, line+"\n") {
			t.Errorf("dot lacks %q:\n%s", line, dot)
		}
	}
}

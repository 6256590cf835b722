package processes_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

// seedFlows returns every flow file the repository has: the good and broken
// libraries and the shipped flows.
func seedFlows(f *testing.F) [][]byte {
	f.Helper()
	var seeds [][]byte
	for _, dir := range []string{"testdata/flows", "processes/flows"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
				return err
			}
			b, err := os.ReadFile(path)
			seeds = append(seeds, b)
			return err
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	if len(seeds) < 30 {
		f.Fatalf("found %d seed flows, want the whole library", len(seeds))
	}
	return seeds
}

// checkProblems fails unless err is nil or Problems that all have a place.
func checkProblems(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ps processes.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T (%v), want processes.Problems", err, err)
	}
	if len(ps) == 0 {
		t.Fatal("empty Problems returned as an error")
	}
	for _, p := range ps {
		if p.Pos.Line < 1 || p.Pos.Col < 1 {
			t.Errorf("problem without a position: %v", p)
		}
		if p.Msg == "" {
			t.Errorf("problem without a message: %v", p)
		}
	}
}

// FuzzLoader_Load feeds arbitrary bytes to the loader: it must never panic,
// and it must either load a flow or explain, with a place, what is wrong. A
// flow that loads must draw and fire every edge.
func FuzzLoader_Load(f *testing.F) {
	for _, s := range seedFlows(f) {
		f.Add(s)
	}
	l := &processes.Loader{Kinds: nodes.Kinds()}
	f.Fuzz(func(t *testing.T, src []byte) {
		def, err := l.Load("fuzz.yaml", src)
		checkProblems(t, err)
		if err != nil {
			if def != nil {
				t.Error("Load returned a definition and problems")
			}
			return
		}
		for _, format := range []string{processes.FormatMermaid, processes.FormatDOT} {
			if _, err := def.Graph(format); err != nil {
				t.Errorf("Graph(%s): %v", format, err)
			}
		}
		for _, n := range def.Nodes {
			for _, e := range n.Spec.Edges() {
				if to, err := def.Fire(n.Name, e.Outcome); err != nil || to != e.To {
					t.Errorf("Fire(%s, %s) = %q, %v; want %s", n.Name, e.Outcome, to, err, e.To)
				}
			}
		}
	})
}

// FuzzTemplate compiles arbitrary text as a template and as a condition, in
// a flow: problems must have a place, and what compiles must render against
// a task without panicking.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"{{ amount }}", "x{{ amount }}y", "{{ env.URL }}/api?x={{ task.id }}", "{{ reply?.code ?? 'none' }}",
		"{{ to_minor(amount, 2) }}", "{{ dec_cmp(amount, '5') > 0 }}", "{{", "}}", "{{ }}", "{{ {{ }} }}",
		`{{ "}}" }}`, "{{ status in ['a', 'b'] }}", "{{ let x = 1; x }}", "сума {{ amount }} ₴", "{{ card }}",
		"{{ secrets.key }}", "{{ http.status }}", "{{ 1/0 }}", "{{ [1,2][5] }}", "{{ status[0:1] }}",
	} {
		f.Add(s)
	}
	l := &processes.Loader{Kinds: nodes.Kinds()}
	env := processes.Env{
		"amount": json.Number("7.34"), "status": "ok", "card": "4111111111111111", "meta": map[string]any{"a": int64(1)},
		"task": map[string]any{"id": "t1"}, "env": map[string]any{"URL": "https://x"},
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		q := strconv.Quote(tmpl)
		src := strings.Join([]string{
			"process: fuzz",
			"input: {amount: {type: decimal}, status: {type: string}, card: {type: string, sensitive: pan}, meta: {type: object}}",
			"start: s",
			"nodes:",
			"  s: {type: set, set: {out: " + q + "}, next: c}",
			"  c: {type: condition, cases: [{when: " + q + ", next: d}], default: d}",
			"  d: {type: final, result: success}",
		}, "\n")
		def, err := l.Load("fuzz.yaml", []byte(src))
		checkProblems(t, err)
		if err != nil {
			return
		}
		in := &nodes.Input{Env: env}
		_, _ = def.Node("s").Spec.(nodes.Instant).Run(in)
		_, _ = def.Node("c").Spec.(nodes.Instant).Run(in)
	})
}

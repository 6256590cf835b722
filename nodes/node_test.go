package nodes_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

// compile loads a flow written in a test; it must have no problems.
func compile(t testing.TB, src string) *processes.Definition {
	t.Helper()
	def, err := (&processes.Loader{Kinds: nodes.Kinds()}).Load("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("flow has problems:\n%v\n%s", err, src)
	}
	return def
}

// problems loads a flow that must have problems and returns them.
func problems(t *testing.T, src string) string {
	t.Helper()
	_, err := (&processes.Loader{Kinds: nodes.Kinds()}).Load("test.yaml", []byte(src))
	if err == nil {
		t.Fatalf("flow loaded without problems:\n%s", src)
	}
	return err.Error()
}

// spec returns node name's compiled spec as a T.
func spec[T any](t testing.TB, def *processes.Definition, name string) T {
	t.Helper()
	n := def.Node(name)
	if n == nil {
		t.Fatalf("no node %s", name)
	}
	s, ok := n.Spec.(T)
	if !ok {
		t.Fatalf("node %s is %T", name, n.Spec)
	}
	return s
}

// flow wraps nodes (YAML indented by two) in a flow with the given input.
// Tasks start in a condition that can reach every node, so a test may
// declare nodes no other node leads to.
func flow(input, nodesYAML string) string {
	var cases []string
	for _, m := range nodeNameRE.FindAllStringSubmatch(nodesYAML, -1) {
		cases = append(cases, "{name: to_"+m[1]+", when: 'false', next: "+m[1]+"}")
	}
	return "process: test\ninput: " + input + "\nsecrets: [token, liqpay_public_key, liqpay_private_key]\nstart: entry\nnodes:\n" +
		"  entry: {type: condition, cases: [" + strings.Join(cases, ", ") + "], default: entry}\n" + nodesYAML
}

var nodeNameRE = regexp.MustCompile(`(?m)^  ([a-z][a-z0-9_]*):`)

func TestKinds(t *testing.T) {
	t.Parallel()
	var names []string
	for name := range nodes.Kinds() {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"api", "callback", "condition", "delay", "escalation", "final", "set"}
	if !slices.Equal(names, want) {
		t.Errorf("Kinds = %v, want %v", names, want)
	}
}

// TestKinds_classes checks how the engine runs each kind and which runtime
// interfaces it implements.
func TestKinds_classes(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{}", `  s: {type: set, set: {a: 1}, next: c}
  c: {type: condition, cases: [{when: 'a == 1', next: d}], default: cb}
  d: {type: delay, for: 1s, next: cb}
  cb: {type: callback, timeout: 1m, on_timeout: e, next: api}
  api: {type: api, request: {url: "https://x.example"}, next: f, on_error: e}
  e: {type: escalation}
  f: {type: final, result: success}
`))
	tests := []struct {
		node    string
		class   processes.Class
		instant bool
		waiter  bool
	}{
		{"s", processes.Instant, true, false},
		{"c", processes.Instant, true, false},
		{"d", processes.Wait, false, true},
		{"cb", processes.Wait, false, true},
		{"api", processes.Call, false, false},
		{"e", processes.Park, false, true},
		{"f", processes.Final, false, false},
	}
	for _, tt := range tests {
		s := def.Node(tt.node).Spec
		if s.Class() != tt.class {
			t.Errorf("%s: class %v, want %v", tt.node, s.Class(), tt.class)
		}
		if _, ok := s.(nodes.Instant); ok != tt.instant {
			t.Errorf("%s: Instant = %v, want %v", tt.node, ok, tt.instant)
		}
		if _, ok := s.(nodes.Waiter); ok != tt.waiter {
			t.Errorf("%s: Waiter = %v, want %v", tt.node, ok, tt.waiter)
		}
	}
}

func TestSetPath(t *testing.T) {
	t.Parallel()
	m := map[string]any{"a": map[string]any{"keep": 1}, "s": "scalar"}
	nodes.SetPath(m, []string{"a", "b"}, 2)
	nodes.SetPath(m, []string{"s", "x"}, 3)
	nodes.SetPath(m, []string{"top"}, 4)
	want := map[string]any{"a": map[string]any{"keep": 1, "b": 2}, "s": map[string]any{"x": 3}, "top": 4}
	if !equalJSON(m, want) {
		t.Errorf("SetPath: got %v, want %v", m, want)
	}
}

package nodes

import (
	"fmt"
	"regexp"

	"github.com/conveyor-dev/conveyor/processes"
)

// Set writes fields into the task's data and moves on. Keys are field paths
// (a.b writes b inside a); values are constants or templates.
//
//	prepare:
//	  type: set
//	  set: {hold_state: AUTH_PENDING, attempts: "{{ attempts + 1 }}"}
//	  next: call
type Set struct {
	paths  []string
	values []*processes.Value
	edges  []processes.Edge
}

type setConfig struct {
	Set  map[string]any `yaml:"set"`
	Next string         `yaml:"next"`
}

var pathRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

type setKind struct{}

func (setKind) Writes(c *processes.NodeContext) []string {
	raw := c.Raw("set")
	if raw == nil {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(raw.Content); i += 2 {
		if k := raw.Content[i].Value; pathRE.MatchString(k) {
			out = append(out, splitPath(k)[0])
		}
	}
	return out
}

func (setKind) Compile(c *processes.NodeContext) processes.Spec {
	var cfg setConfig
	if !c.Decode(&cfg) {
		return nil
	}
	requireTarget(c, "next", cfg.Next)
	raw := c.Raw("set")
	if raw == nil || len(raw.Content) == 0 {
		c.Errorf("", "missing set: list the fields to write")
		return nil
	}
	s := &Set{edges: edge(c, nil, OutNext, "next", cfg.Next)}
	for i := 0; i+1 < len(raw.Content); i += 2 {
		k := raw.Content[i].Value
		if !pathRE.MatchString(k) {
			c.Errorf("set."+k, "bad field path %q: want names joined by dots", k)
			continue
		}
		s.paths = append(s.paths, k)
		s.values = append(s.values, c.ValueOf("set."+k, raw.Content[i+1], processes.UseData))
	}
	return s
}

// Class implements processes.Spec.
func (*Set) Class() processes.Class { return processes.Instant }

// Edges implements processes.Spec.
func (s *Set) Edges() []processes.Edge { return s.edges }

// Run renders every value against the data as it was when the task entered
// the node, then writes them in order.
func (s *Set) Run(in *Input) (Result, error) {
	r := Result{Outcome: OutNext}
	for i, p := range s.paths {
		v, err := s.values[i].Render(in.Env)
		if err != nil {
			return Result{}, fmt.Errorf("set %s: %w", p, err)
		}
		r.Writes = append(r.Writes, Write{Path: splitPath(p), Value: v})
	}
	return r, nil
}

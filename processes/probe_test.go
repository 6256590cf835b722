package processes_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/processes"
)

// probeKind is a node kind for tests: it compiles an expression, a template
// and a value tree through NodeContext exactly as the real kinds do, so the
// language can be tested without them.
//
//	p: {type: probe, expr: 'a > 1', template: "x{{ a }}", value: {k: "{{ a }}"}, use: body, http: true, next: p}
type probeKind struct{}

type probeSpec struct {
	expr  *processes.Expr
	tmpl  *processes.Template
	value *processes.Value
}

func (*probeSpec) Class() processes.Class  { return processes.Instant }
func (*probeSpec) Edges() []processes.Edge { return nil }

func (probeKind) Writes(c *processes.NodeContext) []string {
	if n := c.Raw("writes"); n != nil {
		return strings.Split(n.Value, ",")
	}
	return nil
}

func (probeKind) Compile(c *processes.NodeContext) processes.Spec {
	var cfg struct {
		Expr     string `yaml:"expr"`
		Template string `yaml:"template"`
		Value    any    `yaml:"value"`
		Use      string `yaml:"use"`
		HTTP     bool   `yaml:"http"`
		Writes   string `yaml:"writes"`
	}
	if !c.Decode(&cfg) {
		return nil
	}
	use := map[string]processes.Use{"": processes.UseData, "data": processes.UseData, "body": processes.UseBody,
		"header": processes.UseHeader, "url": processes.UseURL}[cfg.Use]
	s := &probeSpec{}
	if cfg.Expr != "" {
		s.expr = c.Expr("expr", cfg.Expr, cfg.HTTP)
	}
	if cfg.Template != "" {
		s.tmpl = c.Template("template", cfg.Template, use)
	}
	s.value = c.Value("value", use)
	return s
}

// probeFlow is a flow around one probe node p; input and secrets are YAML
// flow mappings and lists.
func probeFlow(input, secrets, probe string) string {
	return fmt.Sprintf("process: probe\ninput: %s\nsecrets: %s\nstart: p\nnodes:\n  p: {type: probe, %s}\n", input, secrets, probe)
}

// loadProbe loads a probe flow and returns its probe node.
func loadProbe(t *testing.T, input, secrets, probe string) (*probeSpec, *processes.Node, error) {
	t.Helper()
	l := &processes.Loader{Kinds: processes.Kinds{"probe": probeKind{}}}
	def, err := l.Load("probe.yaml", []byte(probeFlow(input, secrets, probe)))
	if err != nil {
		return nil, nil, err
	}
	n := def.Node("p")
	return n.Spec.(*probeSpec), n, nil
}

// mustProbe loads a probe flow that must have no problems.
func mustProbe(t *testing.T, input, probe string) *probeSpec {
	t.Helper()
	s, _, err := loadProbe(t, input, "[]", probe)
	if err != nil {
		t.Fatalf("probe %s: %v", probe, err)
	}
	return s
}

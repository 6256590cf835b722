package nodes

import (
	"fmt"

	"github.com/conveyor-dev/conveyor/processes"
)

// Condition routes a task by the first case whose expression is true, or by
// default. Each case's outcome is its name, or case1, case2, ... in order.
//
//	check_status:
//	  type: condition
//	  cases:
//	    - {when: 'callback.status == "hold_wait"', next: held}
//	    - {name: otp, when: 'callback.status == "otp_verify"', next: wait_otp}
//	  default: escalation
type Condition struct {
	cases []condCase
	edges []processes.Edge
}

type condCase struct {
	name string
	when *processes.Expr
}

type conditionConfig struct {
	Cases []struct {
		Name string `yaml:"name"`
		When string `yaml:"when"`
		Next string `yaml:"next"`
	} `yaml:"cases"`
	Default string `yaml:"default"`
}

type conditionKind struct{}

func (conditionKind) Writes(*processes.NodeContext) []string { return nil }

func (conditionKind) Compile(c *processes.NodeContext) processes.Spec {
	var cfg conditionConfig
	if !c.Decode(&cfg) {
		return nil
	}
	if len(cfg.Cases) == 0 {
		c.Errorf("", "missing cases: a condition needs at least one case")
	}
	requireTarget(c, "default", cfg.Default)
	cond := &Condition{}
	seen := map[string]bool{OutDefault: true}
	for i, cs := range cfg.Cases {
		path := fmt.Sprintf("cases[%d]", i)
		name := cs.Name
		if name == "" {
			name = fmt.Sprintf("case%d", i+1)
		}
		switch {
		case name == OutDefault:
			c.Errorf(path+".name", "case name %q is reserved: it is the outcome when no case matches", name)
		case seen[name]:
			c.Errorf(path+".name", "case name %q is used twice", name)
		}
		seen[name] = true
		if cs.Next == "" {
			c.Errorf(path, "case %s: missing next", name)
		}
		if cs.When == "" {
			c.Errorf(path, "case %s: missing when", name)
			continue
		}
		cond.edges = edge(c, cond.edges, name, path+".next", cs.Next)
		cond.cases = append(cond.cases, condCase{name: name, when: c.Expr(path+".when", cs.When, false)})
	}
	cond.edges = edge(c, cond.edges, OutDefault, "default", cfg.Default)
	return cond
}

// Class implements processes.Spec.
func (*Condition) Class() processes.Class { return processes.Instant }

// Edges implements processes.Spec.
func (cd *Condition) Edges() []processes.Edge { return cd.edges }

// Run evaluates the cases in order.
func (cd *Condition) Run(in *Input) (Result, error) {
	for _, cs := range cd.cases {
		ok, err := cs.when.Bool(in.Env)
		if err != nil {
			return Result{}, fmt.Errorf("case %s: %w", cs.name, err)
		}
		if ok {
			return Result{Outcome: cs.name}, nil
		}
	}
	return Result{Outcome: OutDefault}, nil
}

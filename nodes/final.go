package nodes

import "github.com/conveyor-dev/conveyor/processes"

// Final results.
const (
	ResultSuccess = "success"
	ResultError   = "error"
)

// Final ends a task: it succeeds or fails there.
//
//	done: {type: final, result: success}
type Final struct {
	result string
}

type finalConfig struct {
	Result string `yaml:"result"`
}

type finalKind struct{}

func (finalKind) Writes(*processes.NodeContext) []string { return nil }

func (finalKind) Compile(c *processes.NodeContext) processes.Spec {
	var cfg finalConfig
	if !c.Decode(&cfg) {
		return nil
	}
	switch {
	case cfg.Result == "":
		c.Errorf("", "missing result: say whether the task ends in success or error")
		return nil
	case cfg.Result != ResultSuccess && cfg.Result != ResultError:
		c.Errorf("result", "result must be success or error, not %q", cfg.Result)
		return nil
	}
	return &Final{result: cfg.Result}
}

// Class implements processes.Spec.
func (*Final) Class() processes.Class { return processes.Final }

// Edges implements processes.Spec: a final node has none.
func (*Final) Edges() []processes.Edge { return nil }

// Result is success or error.
func (f *Final) Result() string { return f.result }

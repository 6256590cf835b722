package processes_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

// TestDefinition_Fire_reused fires moves from different nodes, refused ones
// among them, on one definition from many goroutines: FSM instances are
// reused, and every move must start from its own node whatever the instance
// did before.
func TestDefinition_Fire_reused(t *testing.T) {
	t.Parallel()
	def := mustLoad(t, "processes/flows/liqpay-hold.yaml")
	moves := []struct {
		from, outcome, to string
		refused           bool
	}{
		{from: "calling_api", outcome: "next", to: "receive_callback"},
		{from: "calling_api", outcome: "teleport", refused: true},
		{from: "check_status", outcome: "held", to: "held"},
		{from: "held", outcome: "next", refused: true},
		{from: "escalation", outcome: "timeout", to: "failed"},
		{from: "receive_callback", outcome: "timeout", to: "escalation"},
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				m := moves[(g+i)%len(moves)]
				to, err := def.Fire(m.from, m.outcome)
				if m.refused != (err != nil) || to != m.to {
					t.Errorf("Fire(%s, %s) = %q, %v", m.from, m.outcome, to, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkDefinition_Fire is one move of a task: what every transition
// pays for its FSM.
func BenchmarkDefinition_Fire(b *testing.B) {
	src, err := os.ReadFile(filepath.Join(root, "processes/flows/liqpay-hold-lifecycle.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	def, err := (&processes.Loader{Kinds: nodes.Kinds()}).Load("liqpay-hold-lifecycle.yaml", src)
	if err != nil {
		b.Fatal(err)
	}
	n := def.Nodes[0]
	e := n.Spec.Edges()[0]
	b.ReportAllocs()
	for b.Loop() {
		if to, err := def.Fire(n.Name, e.Outcome); err != nil || to != e.To {
			b.Fatalf("Fire = %q, %v", to, err)
		}
	}
}

package processes_test

import (
	"strings"
	"sync"
	"testing"
)

// TestDefinition_Fire walks every edge of the shipped LiqPay flow: the table
// is the flow's specification, and every edge the definition declares must
// be in it.
func TestDefinition_Fire(t *testing.T) {
	t.Parallel()
	def := mustLoad(t, "processes/flows/liqpay-hold.yaml")
	edges := []struct{ from, outcome, to string }{
		{"calling_api", "next", "receive_callback"},
		{"calling_api", "error", "escalation"},
		{"receive_callback", "next", "check_status"},
		{"receive_callback", "timeout", "escalation"},
		{"check_status", "held", "held"},
		{"check_status", "otp", "otp_verify"},
		{"check_status", "default", "escalation"},
		{"escalation", "timeout", "failed"},
	}
	for _, e := range edges {
		t.Run(e.from+" "+e.outcome, func(t *testing.T) {
			t.Parallel()
			to, err := def.Fire(e.from, e.outcome)
			if err != nil {
				t.Fatalf("Fire(%s, %s): %v", e.from, e.outcome, err)
			}
			if to != e.to {
				t.Errorf("Fire(%s, %s) = %s, want %s", e.from, e.outcome, to, e.to)
			}
		})
	}
	declared := 0
	for _, n := range def.Nodes {
		for _, e := range n.Spec.Edges() {
			declared++
			found := false
			for _, want := range edges {
				found = found || (want.from == n.Name && want.outcome == e.Outcome && want.to == e.To)
			}
			if !found {
				t.Errorf("edge %s -%s-> %s is not in the table", n.Name, e.Outcome, e.To)
			}
		}
	}
	if declared != len(edges) || len(def.Events()) != len(edges) {
		t.Errorf("the flow declares %d edges and %d events, the table has %d", declared, len(def.Events()), len(edges))
	}
}

func TestDefinition_Fire_refused(t *testing.T) {
	t.Parallel()
	def := mustLoad(t, "processes/flows/liqpay-hold.yaml")
	tests := []struct{ name, from, outcome string }{
		{"unknown outcome", "calling_api", "teleport"},
		{"outcome of another node", "calling_api", "timeout"},
		{"case name of another node", "receive_callback", "held"},
		{"final node has no outcome", "held", "next"},
		{"unknown node", "nowhere", "next"},
		{"empty outcome", "calling_api", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			to, err := def.Fire(tt.from, tt.outcome)
			if err == nil {
				t.Fatalf("Fire(%s, %q) = %s, want an error", tt.from, tt.outcome, to)
			}
			for _, part := range []string{"liqpay-hold@" + def.Version, "node " + tt.from, `"` + tt.outcome + `"`} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not mention %s", err, part)
				}
			}
		})
	}
}

// TestDefinition_Fire_selfLoop checks an outcome that leads back to its own
// node (a polling delay): looplab/fsm calls that no transition, Fire does not.
func TestDefinition_Fire_selfLoop(t *testing.T) {
	t.Parallel()
	def, err := loadSource(t, "process: poll\nstart: wait\nnodes:\n  wait: {type: delay, for: 1m, next: wait}\n")
	if err != nil {
		t.Fatal(err)
	}
	if to, err := def.Fire("wait", "next"); err != nil || to != "wait" {
		t.Errorf("Fire(wait, next) = %q, %v; want wait", to, err)
	}
}

// TestDefinition_Fire_concurrent fires from many goroutines: a definition is
// shared by every task of its version.
func TestDefinition_Fire_concurrent(t *testing.T) {
	t.Parallel()
	def := mustLoad(t, "processes/flows/liqpay-hold.yaml")
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 50 {
				if to, err := def.Fire("check_status", "otp"); err != nil || to != "otp_verify" {
					t.Errorf("Fire = %q, %v", to, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

package nodes_test

import (
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

func TestCondition_Run(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{status: {type: string}, amount: {type: decimal}}", `  route:
    type: condition
    cases:
      - {name: held, when: 'status == "hold_wait"', next: held}
      - {when: 'status in ["otp_verify", "3ds_verify"]', next: otp}
      - {name: big, when: 'dec_cmp(amount, "1000") >= 0', next: held}
      - {name: also_held, when: 'status == "hold_wait"', next: otp}
    default: other
  held: {type: final, result: success}
  otp: {type: final, result: success}
  other: {type: final, result: error}
`))
	c := spec[*nodes.Condition](t, def, "route")
	tests := []struct {
		name   string
		env    processes.Env
		want   string
		errHas string
	}{
		{"first true case wins", processes.Env{"status": "hold_wait", "amount": "5"}, "held", ""},
		{"unnamed case is caseN", processes.Env{"status": "3ds_verify", "amount": "5"}, "case2", ""},
		{"later case", processes.Env{"status": "x", "amount": "1000.00"}, "big", ""},
		{"default", processes.Env{"status": "failure", "amount": "5"}, "default", ""},
		{"expression error names the case", processes.Env{"status": "x", "amount": "lots"}, "", `case big: dec_cmp(amount, "1000") >= 0: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := c.Run(&nodes.Input{Env: tt.env})
			if tt.errHas != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.errHas) {
					t.Errorf("err = %v, want it to start with %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			diff(t, "Run", nodes.Result{Outcome: tt.want}, res)
		})
	}
	var edges []string
	for _, e := range c.Edges() {
		edges = append(edges, e.Outcome+"->"+e.To)
	}
	diff(t, "Edges", []string{"held->held", "case2->otp", "big->held", "also_held->otp", "default->other"}, edges)
}

func TestCondition_Run_notBoolean(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{status: {type: string}}", `  c: {type: condition, cases: [{when: status, next: c}], default: c}
`))
	_, err := spec[*nodes.Condition](t, def, "c").Run(&nodes.Input{Env: processes.Env{"status": "x"}})
	if err == nil || !strings.Contains(err.Error(), "want a boolean") {
		t.Errorf("err = %v, want a boolean error", err)
	}
}

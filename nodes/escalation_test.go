package nodes_test

import (
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

func TestEscalation_Describe(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{}", `  plain: {type: escalation}
  templated:
    type: escalation
    error:
      code: "{{ callback?.err_code ?? callback?.status ?? 'unexpected_status' }}"
      description: "LiqPay answered {{ callback?.status }}"
  failing:
    type: escalation
    error: {code: "{{ int(callback.status) }}", description: "{{ callback?.missing }}"}
  listen: {type: callback, timeout: 1m, on_timeout: plain, next: plain}
`))
	tests := []struct {
		name, node string
		env        processes.Env
		want       nodes.Failure
	}{
		{"no templates: generic code, the node it came from", "plain", nil,
			nodes.Failure{Code: "escalated", Description: "routed to escalation from node check_status"}},
		{"templates", "templated", processes.Env{"callback": map[string]any{"err_code": "limit", "status": "failure"}},
			nodes.Failure{Code: "limit", Description: "LiqPay answered failure"}},
		{"template fallback inside the expression", "templated", processes.Env{"callback": map[string]any{"status": "reversed"}},
			nodes.Failure{Code: "reversed", Description: "LiqPay answered reversed"}},
		{"template fallback to its literal", "templated", processes.Env{},
			nodes.Failure{Code: "unexpected_status", Description: "LiqPay answered "}},
		{"failing or empty templates fall back", "failing", processes.Env{"callback": map[string]any{"status": "x"}},
			nodes.Failure{Code: "escalated", Description: "routed to escalation from node check_status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := spec[*nodes.Escalation](t, def, tt.node).Describe(&nodes.Input{Env: tt.env}, "check_status")
			diff(t, "Describe", tt.want, got)
		})
	}
}

func TestEscalation_Deadline(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{}", `  park: {type: escalation, timeout: 72h, on_timeout: failed}
  hold: {type: escalation}
  failed: {type: final, result: error}
`))
	park := spec[*nodes.Escalation](t, def, "park")
	if got, err := park.Deadline(&nodes.Input{Now: now}); err != nil || !got.Equal(now.Add(72*time.Hour)) {
		t.Errorf("with timeout: Deadline = %v, %v; want now + 72h", got, err)
	}
	if park.Timeout() != 72*time.Hour {
		t.Errorf("Timeout = %v", park.Timeout())
	}
	diff(t, "Expire", nodes.Result{Outcome: nodes.OutTimeout}, park.Expire())
	if e := park.Edges(); len(e) != 1 || e[0].Outcome != nodes.OutTimeout || e[0].To != "failed" {
		t.Errorf("Edges = %v, want timeout -> failed", e)
	}

	hold := spec[*nodes.Escalation](t, def, "hold")
	if got, err := hold.Deadline(&nodes.Input{Now: now}); err != nil || !got.IsZero() {
		t.Errorf("without timeout: Deadline = %v, %v; want zero (operators only)", got, err)
	}
	if len(hold.Edges()) != 0 {
		t.Errorf("without timeout: Edges = %v, want none", hold.Edges())
	}
}

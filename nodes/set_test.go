package nodes_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

func TestSet_Run(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{amount: {type: decimal}, note: {type: string}}", `  prepare:
    type: set
    set:
      state: NEW
      attempts: 0
      flags.urgent: true
      payout.amount_minor: "{{ to_minor(amount, 2) }}"
      payout.label: "pay {{ amount }}"
      copy: "{{ note }}"
      nothing: null
      list: [1, "{{ amount }}"]
      counter: "{{ attempts + 1 }}"
    next: done
  done: {type: final, result: success}
`))
	s := spec[*nodes.Set](t, def, "prepare")
	res, err := s.Run(&nodes.Input{Env: processes.Env{"amount": json.Number("7.34"), "attempts": int64(2)}})
	if err != nil {
		t.Fatal(err)
	}
	want := nodes.Result{Outcome: nodes.OutNext, Writes: []nodes.Write{
		{Path: []string{"state"}, Value: "NEW"},
		{Path: []string{"attempts"}, Value: json.Number("0")},
		{Path: []string{"flags", "urgent"}, Value: true},
		{Path: []string{"payout", "amount_minor"}, Value: 734},
		{Path: []string{"payout", "label"}, Value: "pay 7.34"},
		{Path: []string{"copy"}, Value: nil},
		{Path: []string{"nothing"}, Value: nil},
		{Path: []string{"list"}, Value: []any{json.Number("1"), json.Number("7.34")}},
		// Every value is rendered against the data as the task entered: the
		// attempts written above do not change this one.
		{Path: []string{"counter"}, Value: 3},
	}}
	diff(t, "Run", want, res)
	if got := def.Node("prepare").Spec.Edges(); len(got) != 1 || got[0].Outcome != "next" || got[0].To != "done" {
		t.Errorf("Edges = %v, want next -> done", got)
	}
}

func TestSet_Run_error(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{note: {type: string}}", `  s:
    type: set
    set: {ok: 1, bad.path: "{{ int(note) }}"}
    next: s
`))
	_, err := spec[*nodes.Set](t, def, "s").Run(&nodes.Input{Env: processes.Env{"note": "x"}})
	if err == nil || !strings.HasPrefix(err.Error(), "set bad.path: int(note): ") {
		t.Errorf("err = %v, want it to name the field and the expression", err)
	}
}

func TestSet_compile(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, node, want string }{
		{"missing set", `{type: set, next: s}`, "node s: missing set: list the fields to write"},
		{"empty set", `{type: set, set: {}, next: s}`, "node s: missing set: list the fields to write"},
		{"missing next", `{type: set, set: {a: 1}}`, "node s: missing next"},
		{"bad path", `{type: set, set: {"a..b": 1}, next: s}`, `node s: bad field path "a..b"`},
		{"reserved", `{type: set, set: {task.x: 1}, next: s}`, `node s: cannot write "task": the name is reserved`},
		{"not a mapping", `{type: set, set: [a], next: s}`, "want a mapping, not a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := problems(t, flow("{}", "  s: "+tt.node+"\n")); !strings.Contains(got, tt.want) {
				t.Errorf("problems:\n%s\nwant %q", got, tt.want)
			}
		})
	}
}

package engine_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// submitFlow compiles a flow of instant nodes, submits one task of it on an
// engine that is not started, and returns the finished task's data as JSON
// (sensitive top-level fields masked, as views show them).
func submitFlow(t *testing.T, src string, data map[string]any) map[string]any {
	t.Helper()
	l := &processes.Loader{Kinds: nodes.Kinds()}
	def, err := l.Load("flow.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(context.Background(), engine.Config{Store: newMemStore(), Definitions: []*processes.Definition{def},
		Loader: l, Key: engine.NewKey(), BaseURL: "http://conveyor.test", Env: map[string]string{"NAME": "real"},
		Clock: engine.NewFakeClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := eng.Submit(context.Background(), engine.SubmitRequest{Process: def.Name, Data: data})
	if err != nil || v.Status != store.StatusSucceeded {
		t.Fatalf("submit: %v %+v", err, v)
	}
	b, err := json.Marshal(v.Data)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEngine_env_sharedWrites writes maps of the expression environment into
// the data (whole holes of a field, env and task), changes them in place with
// nested writes, and reads everything again: every node must see the data as
// written, and env and task as they are, whatever the engine keeps between
// nodes. Two fields written from one map in one node are one map, so a nested
// write to one shows in the other (as it always did).
func TestEngine_env_sharedWrites(t *testing.T) {
	t.Parallel()
	out := submitFlow(t, `
process: shared
start: make
nodes:
  make:
    type: set
    set: {obj: {k: 1}, n: 1}
    next: copy
  copy:
    type: set
    set: {a: "{{ obj }}", b: "{{ obj }}", e: "{{ env }}", t: "{{ task }}"}
    next: poke
  poke:
    type: set
    set: {a.x: 2, e.NAME: changed, t.node: elsewhere, n: "{{ n + 1 }}"}
    next: check
  check:
    type: set
    set:
      bx: "{{ b.x }}"
      objx: "{{ obj.x ?? 'none' }}"
      name: "{{ env.NAME }}"
      node: "{{ task.node }}"
      seen: "{{ n }}"
    next: done
  done: {type: final, result: success}
`, map[string]any{})
	want := map[string]any{"bx": 2.0, "objx": "none", "name": "real", "node": "check", "seen": 2.0}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("%s = %v, want %v", k, out[k], v)
		}
	}
	if got := out["e"].(map[string]any)["NAME"]; got != "changed" {
		t.Errorf("e.NAME = %v, want changed", got)
	}
	if got := out["obj"].(map[string]any); len(got) != 1 {
		t.Errorf("obj = %v, want it untouched", got)
	}
}

// TestEngine_env_sensitive opens a sensitive field for the one node that
// reads it, and checks that the next node's environment (captured whole with
// $env) and the data only ever hold it sealed.
func TestEngine_env_sensitive(t *testing.T) {
	t.Parallel()
	out := submitFlow(t, `
process: secret
input:
  card: {type: string, required: true, sensitive: pan}
start: check
nodes:
  check:
    type: condition
    cases: [{name: ok, when: 'card == "4242424242424242"', next: snap}]
    default: failed
  snap:
    type: set
    set: {snap: "{{ $env }}"}
    next: done
  done: {type: final, result: success}
  failed: {type: final, result: error}
`, map[string]any{"card": "4242424242424242"})
	snap, _ := out["snap"].(map[string]any)
	if card, _ := snap["card"].(string); !strings.HasPrefix(card, "enc:v1:") {
		t.Errorf("the next node saw card %q, want it sealed", card)
	}
	if strings.Contains(mustJSON(t, out), "4242424242424242") {
		t.Errorf("the data holds the card number: %s", mustJSON(t, out))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

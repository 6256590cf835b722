package processes

import (
	"context"
	"errors"
	"fmt"

	"github.com/looplab/fsm"
)

// buildEvents turns the graph into looplab/fsm's event table: states are
// nodes, events are outcomes. An outcome name shared by several nodes (next,
// error, timeout) becomes one event description per source node.
func buildEvents(def *Definition) []fsm.EventDesc {
	var events []fsm.EventDesc
	for _, n := range def.Nodes {
		if n.Spec == nil {
			continue
		}
		for _, e := range n.Spec.Edges() {
			events = append(events, fsm.EventDesc{Name: e.Outcome, Src: []string{n.Name}, Dst: e.To})
		}
	}
	return events
}

// Events returns the definition's FSM event table. It is shared: do not
// modify it.
func (d *Definition) Events() []fsm.EventDesc { return d.events }

// Fire moves a task in node from by outcome, using a fresh FSM built on the
// shared event table (an instance is never reused, so a wedged one cannot
// leak), and returns the node the outcome leads to. It never calls back into
// the FSM from a callback and never hands it a cancellable context.
func (d *Definition) Fire(from, outcome string) (string, error) {
	m := fsm.NewFSM(from, d.events, nil)
	err := m.Event(context.Background(), outcome)
	var noTransition fsm.NoTransitionError
	if err != nil && !errors.As(err, &noTransition) {
		return "", fmt.Errorf("process %s@%s: node %s has no outcome %q: %w", d.Name, d.Version, from, outcome, err)
	}
	return m.Current(), nil
}

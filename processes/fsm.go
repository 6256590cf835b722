package processes

import (
	"context"
	"errors"
	"fmt"
	"sync"

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

// fsmPool holds a definition's idle FSM instances. Building one turns the
// whole event table into looplab/fsm's maps, which cost more than the move
// itself; an instance is only ever reset (SetState) and reused.
type fsmPool struct{ p sync.Pool }

// Fire moves a task in node from by outcome on an FSM built on the shared
// event table, and returns the node the outcome leads to. Instances are
// pooled per definition and put back only after a move that completed (or
// was a self-loop): one whose Event failed otherwise may be wedged mid-
// transition and is dropped, so it cannot leak into another move. It never
// calls back into the FSM from a callback and never hands it a cancellable
// context, so no transition is left in progress when Event returns.
func (d *Definition) Fire(from, outcome string) (string, error) {
	m, _ := d.fsms.p.Get().(*fsm.FSM)
	if m == nil {
		m = fsm.NewFSM(from, d.events, nil)
	} else {
		m.SetState(from)
	}
	err := m.Event(context.Background(), outcome)
	var noTransition fsm.NoTransitionError
	if err != nil && !errors.As(err, &noTransition) {
		return "", fmt.Errorf("process %s@%s: node %s has no outcome %q: %w", d.Name, d.Version, from, outcome, err)
	}
	to := m.Current()
	d.fsms.p.Put(m)
	return to, nil
}

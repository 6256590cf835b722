package processes

import (
	"time"

	"github.com/looplab/fsm"
)

// Definition is a loaded, checked and compiled process version. It is
// immutable and safe to share between goroutines.
type Definition struct {
	// Name is the process name ([a-z0-9-]), unique across loaded files.
	Name string
	// Title is a human title; may be empty.
	Title string
	// Version is the content hash of the file (hex), the version identity.
	Version string
	// File is the path the definition was loaded from.
	File string
	// Source is the file's content, kept so a version can be stored and
	// reloaded after the file changes.
	Source []byte
	// Input is the schema submitted task data must satisfy.
	Input *Schema
	// Secrets are the names of configured secrets the flow may use.
	Secrets []string
	// EnvRefs are the configuration variables the flow reads as env.NAME.
	EnvRefs []string
	// Start is the name of the first node.
	Start string
	// Nodes are the nodes in file order.
	Nodes []*Node

	byName  map[string]*Node
	events  []fsm.EventDesc
	fsms    fsmPool
	namePos Pos // where the process name is written
}

// Node returns the node called name, or nil.
func (d *Definition) Node(name string) *Node { return d.byName[name] }

// Node is one compiled node of a definition.
type Node struct {
	// Name is the node's key in the flow.
	Name string
	// Kind is the node's type (api, callback, condition, set, delay,
	// escalation, final).
	Kind string
	// Title and Description are for people.
	Title       string
	Description string
	// Pos is where the node is declared.
	Pos Pos
	// Spec is the kind's compiled behaviour; package nodes defines what the
	// engine does with it.
	Spec Spec
	// Alarm is the queue alarm of the node, nil when it declares none.
	Alarm *Alarm
	// Sensitive are the sensitive input fields the node's templates read
	// (so secret ones can be erased once the node has committed).
	Sensitive []string
}

// Alarm is a node's queue alarm: crossing Threshold tasks in the node (up or
// down) is recorded and may start a task in the process Signal.
type Alarm struct {
	Threshold int    `yaml:"threshold" json:"threshold"`
	Signal    string `yaml:"signal,omitempty" json:"signal,omitempty"`
}

// Class says how the engine runs a node.
type Class int

// Node classes.
const (
	// Instant nodes compute their outcome from the task's data alone (set,
	// condition); a worker runs them.
	Instant Class = iota
	// Call nodes make an outbound request after the commit that decided it, and
	// move on its reply (api).
	Call
	// Wait nodes park the task with a timer until a callback or the timer
	// (callback, delay).
	Wait
	// Park nodes hold the task for operators (escalation), with an optional timer.
	Park
	// Final nodes end the task (final).
	Final
)

// String names the class.
func (c Class) String() string {
	switch c {
	case Instant:
		return "instant"
	case Call:
		return "call"
	case Wait:
		return "wait"
	case Park:
		return "park"
	case Final:
		return "final"
	}
	return "unknown"
}

// Edge is one outcome of a node and the node it leads to.
type Edge struct {
	// Outcome names the event ("next", "error", "timeout", a case label).
	Outcome string
	// To is the target node's name.
	To string
	// Pos is where the edge is written, for problems about it.
	Pos Pos
}

// Spec is a node kind's compiled configuration and behaviour.
type Spec interface {
	// Class says how the engine runs the node.
	Class() Class
	// Edges lists the node's outcomes and targets in a stable order.
	Edges() []Edge
}

// Timed is implemented by specs of nodes that hold a task with a timer.
type Timed interface {
	// Timeout is the node's fixed time limit, 0 when it has none (or when the
	// deadline comes from the task's data).
	Timeout() time.Duration
}

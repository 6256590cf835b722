// Package nodes holds Conveyor's node kinds, one file each: what a node's
// configuration looks like, how it is checked, and what the node does when a
// task is in it. The engine drives them; they never touch the store or the
// network themselves (the api node builds requests and reads replies, the
// engine sends them), so each kind is a pure function of the task's data and
// is tested as such.
package nodes

import (
	"strings"
	"time"

	"github.com/conveyor-dev/conveyor/processes"
)

// Outcome names shared by several kinds.
const (
	OutNext    = "next"    // the ordinary way on
	OutError   = "error"   // an api call failed or a reply was mapped to error
	OutTimeout = "timeout" // a waiting node's timer fired
	OutDefault = "default" // no condition case matched
	OutUnknown = "unknown" // an api call's outcome is unknown (timeout, or a restart mid-call)
)

// Kinds returns the standard node kinds, keyed by type name.
func Kinds() processes.Kinds {
	return processes.Kinds{
		"api":        apiKind{},
		"callback":   callbackKind{},
		"condition":  conditionKind{},
		"set":        setKind{},
		"delay":      delayKind{},
		"escalation": escalationKind{},
		"final":      finalKind{},
	}
}

// Input is what a node sees of a task when it runs.
type Input struct {
	// Env is the expression environment: the task's data fields, task, env
	// (and http for api cases, secrets for headers).
	Env processes.Env
	// Now is the engine clock's time.
	Now time.Time
	// Secrets are the configured secret values, for codecs and headers.
	Secrets map[string]string
}

// Write sets one data field; Path has one element per level ("a.b" -> a, b).
type Write struct {
	Path  []string
	Value any
}

// Failure is why a node sent a task down its error edge.
type Failure struct {
	// Code is err_code: machine-readable.
	Code string
	// Description is err_description: for operators. Never card data.
	Description string
}

// Result is what running a node decided: the outcome to follow, the data to
// write first, and the failure when the outcome is an error.
type Result struct {
	Outcome string
	Writes  []Write
	Failure *Failure
}

// Instant is implemented by nodes that decide from data alone (set,
// condition). An error is an expression that failed at run time; the engine
// escalates the task with it.
type Instant interface {
	Run(in *Input) (Result, error)
}

// Waiter is implemented by nodes that park a task until a timer (delay,
// callback, escalation).
type Waiter interface {
	// Deadline is when the node's timer fires for a task entering it now;
	// zero means no timer (only escalation nodes may have none).
	Deadline(in *Input) (time.Time, error)
	// Expire is the result of the timer firing. It does not depend on the
	// task's data (a flow that must decide on the data after a timeout routes
	// the timeout to a condition node), so the timer service fires without
	// building the expression environment.
	Expire() Result
}

// splitPath splits a dotted field path.
func splitPath(p string) []string { return strings.Split(p, ".") }

// edge returns an edge unless to is empty.
func edge(c *processes.NodeContext, edges []processes.Edge, outcome, path, to string) []processes.Edge {
	if to == "" {
		return edges
	}
	return append(edges, c.Edge(outcome, path, to))
}

// requireTarget reports a missing edge key.
func requireTarget(c *processes.NodeContext, key, to string) {
	if to == "" {
		c.Errorf("", "missing %s: name the node the task goes to", key)
	}
}

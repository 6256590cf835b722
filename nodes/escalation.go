package nodes

import (
	"time"

	"github.com/conveyor-dev/conveyor/processes"
)

// Escalation parks a task for operators with err_code, err_description and
// the failed node. A task sent here by a failure carries that failure; one
// routed here by an ordinary edge gets the node's own error templates (or
// err_code "escalated"). With a timeout the task leaves by on_timeout when
// nobody acts in time.
//
//	escalation:
//	  type: escalation
//	  error: {code: "{{ callback.err_code }}", description: "{{ callback.err_description }}"}
//	  timeout: 72h
//	  on_timeout: failed
type Escalation struct {
	timeout time.Duration
	code    *processes.Template
	desc    *processes.Template
	edges   []processes.Edge
}

type escalationConfig struct {
	Timeout   string `yaml:"timeout"`
	OnTimeout string `yaml:"on_timeout"`
	Error     struct {
		Code        string `yaml:"code"`
		Description string `yaml:"description"`
	} `yaml:"error"`
}

type escalationKind struct{}

func (escalationKind) Writes(*processes.NodeContext) []string { return nil }

func (escalationKind) Compile(c *processes.NodeContext) processes.Spec {
	var cfg escalationConfig
	if !c.Decode(&cfg) {
		return nil
	}
	e := &Escalation{edges: edge(c, nil, OutTimeout, "on_timeout", cfg.OnTimeout)}
	switch {
	case cfg.Timeout != "" && cfg.OnTimeout == "":
		c.Errorf("timeout", "timeout without on_timeout: name the node the task goes to when time is up")
	case cfg.Timeout == "" && cfg.OnTimeout != "":
		c.Errorf("on_timeout", "on_timeout without timeout: a node that lets tasks leave by themselves needs a time limit")
	case cfg.Timeout != "":
		e.timeout = c.Duration("timeout", cfg.Timeout)
	}
	if cfg.Error.Code != "" {
		e.code = c.Template("error.code", cfg.Error.Code, processes.UseData)
	}
	if cfg.Error.Description != "" {
		e.desc = c.Template("error.description", cfg.Error.Description, processes.UseData)
	}
	return e
}

// Class implements processes.Spec.
func (*Escalation) Class() processes.Class { return processes.Park }

// Edges implements processes.Spec.
func (e *Escalation) Edges() []processes.Edge { return e.edges }

// Timeout implements processes.Timed.
func (e *Escalation) Timeout() time.Duration { return e.timeout }

// Deadline implements Waiter; zero when the node has no timeout.
func (e *Escalation) Deadline(in *Input) (time.Time, error) {
	if e.timeout == 0 {
		return time.Time{}, nil
	}
	return in.Now.Add(e.timeout), nil
}

// Expire implements Waiter.
func (e *Escalation) Expire() Result { return Result{Outcome: OutTimeout} }

// Describe returns the failure for a task routed here without one. Templates
// that fail or render empty fall back to a generic code, so an escalation
// never lacks an err_code.
func (e *Escalation) Describe(in *Input, from string) Failure {
	f := Failure{Code: "escalated", Description: "routed to escalation from node " + from}
	if e.code != nil {
		if s, err := e.code.String(in.Env); err == nil && s != "" {
			f.Code = s
		}
	}
	if e.desc != nil {
		if s, err := e.desc.String(in.Env); err == nil && s != "" {
			f.Description = s
		}
	}
	return f
}

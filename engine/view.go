package engine

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/store"
)

// TaskView is a task as callers may see it: sensitive fields masked, no
// callback token.
type TaskView struct {
	ID       uuid.UUID            `json:"id"`
	Ref      string               `json:"ref,omitempty"`
	Process  string               `json:"process"`
	Version  string               `json:"version"`
	Node     string               `json:"node"`
	Status   store.Status         `json:"status"`
	Data     map[string]any       `json:"data"`
	Error    *store.TaskError     `json:"error,omitempty"`
	TimerAt  *time.Time           `json:"timer_at,omitempty"`
	Attempt  int                  `json:"attempt,omitempty"`
	Created  time.Time            `json:"created"`
	Updated  time.Time            `json:"updated"`
	Entered  time.Time            `json:"entered"`
	Finished *time.Time           `json:"finished,omitempty"`
	History  []store.HistoryEntry `json:"history,omitempty"`
}

// view builds a TaskView from a record and its decoded data.
func (e *Engine) view(t *store.Task, data map[string]any, def *processes.Definition, hist []store.HistoryEntry) *TaskView {
	masked := make(map[string]any, len(data))
	for k, v := range data {
		masked[k] = v
	}
	if def != nil {
		e.seal.mask(t.ID, def.Input, masked)
	}
	v := &TaskView{ID: t.ID, Ref: t.Ref, Process: t.Process, Version: t.Version, Node: t.Node, Status: t.Status,
		Data: masked, Error: t.Error, Attempt: t.Attempt, Created: t.Created, Updated: t.Updated, Entered: t.Entered, History: hist}
	if !t.TimerAt.IsZero() {
		at := t.TimerAt
		v.TimerAt = &at
	}
	if !t.Finished.IsZero() {
		f := t.Finished
		v.Finished = &f
	}
	return v
}

func (e *Engine) viewOf(ctx context.Context, t *store.Task, withHistory bool) (*TaskView, error) {
	s, err := e.stateOf(ctx, t)
	if err != nil {
		return nil, err
	}
	var hist []store.HistoryEntry
	if withHistory {
		if hist, err = e.st.History(ctx, t.ID); err != nil {
			return nil, err
		}
	}
	return e.view(t, s.fields(), s.def, hist), nil
}

// Task returns a task with its history.
func (e *Engine) Task(ctx context.Context, id uuid.UUID) (*TaskView, error) {
	t, err := e.st.Task(ctx, id)
	if err != nil {
		return nil, notFound(err, "task %s not found", id)
	}
	return e.viewOf(ctx, t, true)
}

// TaskByRef returns the task holding a ref in a process, with its history.
func (e *Engine) TaskByRef(ctx context.Context, process, ref string) (*TaskView, error) {
	t, err := e.st.TaskByRef(ctx, process, ref)
	if err != nil {
		return nil, notFound(err, "process %s has no task with ref %q", process, ref)
	}
	return e.viewOf(ctx, t, true)
}

// List returns a page of tasks (without history), newest first.
func (e *Engine) List(ctx context.Context, f store.Filter) ([]*TaskView, string, error) {
	page, err := e.st.List(ctx, f)
	if err != nil {
		return nil, "", err
	}
	out := make([]*TaskView, 0, len(page.Tasks))
	for _, t := range page.Tasks {
		v, err := e.viewOf(ctx, t, false)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, page.Next, nil
}

// Counts returns the live node counters of a process ("" for all).
func (e *Engine) Counts(ctx context.Context, process string) ([]store.NodeCount, error) {
	return e.st.Counts(ctx, process)
}

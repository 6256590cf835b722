package api

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/internal/exactjson"
	"github.com/conveyor-dev/conveyor/store"
)

// maxReason bounds an operator's reason, in characters.
const maxReason = 1000

// maxListLimit is the largest page List serves.
const maxListLimit = 1000

// submitRequest is the body of POST /api/v1/processes/{process}/tasks.
type submitRequest struct {
	Ref  string         `json:"ref"`
	Data map[string]any `json:"data"`
}

// submit creates a task: 201 when new, 200 with the earlier task when the
// same ref came with the same data, 409 when with different data.
func (s *server) submit(w http.ResponseWriter, r *http.Request) error {
	b, err := s.readBody(r)
	if err != nil {
		return err
	}
	req, ok := s.plainSubmit(b)
	if !ok {
		if err := s.decodeBytes(b, &req, false); err != nil {
			return err
		}
	}
	v, created, err := s.eng.Submit(r.Context(), engine.SubmitRequest{
		Process: r.PathValue("process"), Ref: req.Ref, Data: req.Data, Actor: s.actor(r),
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/tasks/"+v.ID.String())
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, v)
	return nil
}

// plainSubmit reads the body every service sends, {"ref": "...", "data":
// {...}} with each key once and in its own case, by exactjson.Decode, which
// reads what encoding/json would but cheaper. Anything else is left to
// decodeBytes (ok false), whose answers to odd and bad bodies are the
// contract: null fields, a repeated "data" (encoding/json merges the
// objects), keys in another case, unknown keys, wrong types.
func (s *server) plainSubmit(b []byte) (req submitRequest, ok bool) {
	if bytes.Count(b, []byte(`"data"`)) > 1 || checkDepth(b, s.maxDepth) != nil {
		return req, false
	}
	v, ok := exactjson.Decode(b)
	obj, isObj := v.(map[string]any)
	if !ok || !isObj {
		return req, false
	}
	for k, v := range obj {
		switch k {
		case "ref":
			if req.Ref, ok = v.(string); !ok {
				return req, false
			}
		case "data":
			if req.Data, ok = v.(map[string]any); !ok {
				return req, false
			}
		default:
			return req, false
		}
	}
	return req, true
}

// task answers one task with its history.
func (s *server) task(w http.ResponseWriter, r *http.Request) error {
	id, err := taskID(r)
	if err != nil {
		return err
	}
	v, err := s.eng.Task(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// taskList is the answer of GET /api/v1/tasks.
type taskList struct {
	Tasks []*engine.TaskView `json:"tasks"`
	// NextCursor continues the listing; "" on the last page.
	NextCursor string `json:"next_cursor"`
}

// listParams are the query parameters GET /api/v1/tasks takes.
var listParams = []string{"process", "node", "status", "ref", "error_code", "older_than", "limit", "cursor"}

// list answers a page of tasks, newest first.
func (s *server) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(listParams, k) {
			return conveyor.Errorf(conveyor.EInvalid, "unknown query parameter %q (want %s)", k, strings.Join(listParams, ", "))
		}
	}
	f := store.Filter{
		Process: q.Get("process"), Node: q.Get("node"), Status: store.Status(q.Get("status")),
		Ref: q.Get("ref"), ErrorCode: q.Get("error_code"), Cursor: q.Get("cursor"),
	}
	if f.Status != "" && !f.Status.Valid() {
		return conveyor.Errorf(conveyor.EInvalid, "status must be one of active, waiting, escalated, succeeded, failed, canceled")
	}
	if v := q.Get("older_than"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return conveyor.Errorf(conveyor.EInvalid, "older_than must be a positive duration such as 90s, 10m or 2h")
		}
		f.EnteredBefore = s.now().Add(-d)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return conveyor.Errorf(conveyor.EInvalid, "limit must be an integer from 1 to %d", maxListLimit)
		}
		f.Limit = n
	}
	tasks, next, err := s.eng.List(r.Context(), f)
	if err != nil {
		return err
	}
	if tasks == nil {
		tasks = []*engine.TaskView{}
	}
	writeJSON(w, http.StatusOK, taskList{Tasks: tasks, NextCursor: next})
	return nil
}

// The bodies of the operator actions. Each takes only its own keys, so a
// key meant for another action is refused as unknown.
type (
	retryRequest struct {
		Reason string `json:"reason"`
	}
	moveRequest struct {
		To     string `json:"to"`
		Reason string `json:"reason"`
	}
	editRequest struct {
		Data   map[string]any `json:"data"`
		Reason string         `json:"reason"`
	}
)

func (b *retryRequest) reason() string { return b.Reason }
func (b *moveRequest) reason() string  { return b.Reason }
func (b *editRequest) reason() string  { return b.Reason }

// operate decodes an operator action's body, runs the action on the task
// named in the path, and answers the task after it.
func (s *server) operate(w http.ResponseWriter, r *http.Request, body interface{ reason() string }, optional bool,
	do func(uuid.UUID, engine.Action) (*engine.TaskView, error)) error {
	id, err := taskID(r)
	if err != nil {
		return err
	}
	if err := s.decode(r, body, optional); err != nil {
		return err
	}
	if len([]rune(body.reason())) > maxReason {
		return conveyor.Errorf(conveyor.EInvalid, "reason must be at most %d characters", maxReason)
	}
	v, err := do(id, engine.Action{Actor: s.actor(r), Reason: body.reason()})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// retry re-runs the failed node of an escalated task.
func (s *server) retry(w http.ResponseWriter, r *http.Request) error {
	return s.operate(w, r, &retryRequest{}, true, func(id uuid.UUID, a engine.Action) (*engine.TaskView, error) {
		return s.eng.Retry(r.Context(), id, a)
	})
}

// cancel ends an unfinished task where it stands.
func (s *server) cancel(w http.ResponseWriter, r *http.Request) error {
	return s.operate(w, r, &retryRequest{}, true, func(id uuid.UUID, a engine.Action) (*engine.TaskView, error) {
		return s.eng.Cancel(r.Context(), id, a)
	})
}

// move sends an unfinished task to another node.
func (s *server) move(w http.ResponseWriter, r *http.Request) error {
	req := &moveRequest{}
	return s.operate(w, r, req, false, func(id uuid.UUID, a engine.Action) (*engine.TaskView, error) {
		if req.To == "" {
			return nil, conveyor.Errorf(conveyor.EInvalid, "move needs to: the node to send the task to")
		}
		return s.eng.Move(r.Context(), id, req.To, a)
	})
}

// edit changes an escalated task's data, then retries it.
func (s *server) edit(w http.ResponseWriter, r *http.Request) error {
	req := &editRequest{}
	return s.operate(w, r, req, false, func(id uuid.UUID, a engine.Action) (*engine.TaskView, error) {
		return s.eng.Edit(r.Context(), id, req.Data, a)
	})
}

// taskID parses the {id} of the path.
func taskID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return uuid.Nil, conveyor.Errorf(conveyor.EInvalid, "task id must be a UUID")
	}
	return id, nil
}

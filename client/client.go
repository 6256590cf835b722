// Package client is a small Go client of Conveyor's HTTP API for services
// that submit and follow tasks, and for operator tools.
//
// Every method returns the server's errors as *conveyor.Error with the
// server's code and message (compare codes with conveyor.ErrorCode); when the
// server cannot be reached the code is conveyor.EUnavailable. Input that fails
// a process's input schema comes with a FieldErrors cause listing the fields.
// Callback answers (accepted, duplicate, not_waiting, unknown) are results,
// not errors.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	conveyor "github.com/conveyor-dev/conveyor"
)

// maxAnswer caps the answers the client reads, in bytes.
const maxAnswer = 32 << 20

// Client talks to one Conveyor server. It is safe for concurrent use once
// configured.
type Client struct {
	base  string
	token string
	http  *http.Client
	// Actor, when set, names the operator or service acting; the server
	// records it in tasks' histories (header X-Conveyor-Actor).
	Actor string
}

// New returns a client of the server at baseURL (e.g. http://127.0.0.1:8080)
// that sends token as a bearer token (empty: none). httpClient defaults to a
// client with a 30-second timeout.
func New(baseURL, token string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: httpClient}
}

// Task is a task as the server shows it: sensitive fields masked.
type Task struct {
	// ID is the task's UUIDv7.
	ID string `json:"id"`
	// Ref is the caller's reference, unique per process.
	Ref string `json:"ref,omitempty"`
	// Process and Version name the definition the task runs on.
	Process string `json:"process"`
	Version string `json:"version"`
	// Node is the node the task stands in.
	Node string `json:"node"`
	// Status is active, waiting, escalated, succeeded, failed or canceled.
	Status string `json:"status"`
	// Data is the task's data; numbers are json.Number, so money stays exact.
	Data map[string]any `json:"data"`
	// Error says why an escalated task is escalated.
	Error *TaskError `json:"error,omitempty"`
	// TimerAt is when the task's timer fires (a timeout, a call retry).
	TimerAt *time.Time `json:"timer_at,omitempty"`
	// Attempt counts the outbound call attempts of the current node.
	Attempt int `json:"attempt,omitempty"`
	// Created is the submit time, Updated the last change, Entered when the
	// task entered its node, Finished when it reached a final status.
	Created  time.Time  `json:"created"`
	Updated  time.Time  `json:"updated"`
	Entered  time.Time  `json:"entered"`
	Finished *time.Time `json:"finished,omitempty"`
	// History is every move and event, oldest first (Task only, not List).
	History []HistoryEntry `json:"history,omitempty"`
}

// Final reports whether the task will never move again.
func (t *Task) Final() bool {
	return t.Status == "succeeded" || t.Status == "failed" || t.Status == "canceled"
}

// TaskError is why a task is escalated.
type TaskError struct {
	Code        string `json:"code"`
	Description string `json:"description"`
	// Node is the node that failed, where a retry re-runs the task.
	Node string `json:"node"`
}

// HistoryEntry is one line of a task's history.
type HistoryEntry struct {
	Seq    int       `json:"seq"`
	At     time.Time `json:"at"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to"`
	Event  string    `json:"event"`
	Actor  string    `json:"actor,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Detail string    `json:"detail,omitempty"`
	// JobID names the bulk job that performed an operator action.
	JobID string `json:"job_id,omitempty"`
}

// ListOptions filter List; zero fields match everything.
type ListOptions struct {
	Process   string
	Node      string
	Status    string
	Ref       string
	ErrorCode string
	// OlderThan keeps tasks that entered their node longer ago than this.
	OlderThan time.Duration
	// Limit is the page size (server default 50, at most 1000).
	Limit int
	// Cursor is the NextCursor of the previous page.
	Cursor string
}

// TaskPage is a page of tasks, newest first, without history.
type TaskPage struct {
	Tasks []*Task `json:"tasks"`
	// NextCursor continues the listing; "" on the last page.
	NextCursor string `json:"next_cursor"`
}

// CallbackResult is the server's answer to a callback.
type CallbackResult struct {
	// Result is accepted, duplicate, not_waiting or unknown.
	Result string `json:"result"`
	TaskID string `json:"task_id,omitempty"`
	Node   string `json:"node,omitempty"`
	Status string `json:"status,omitempty"`
}

// Process is a process definition with its live node counts.
type Process struct {
	Name    string `json:"name"`
	Title   string `json:"title,omitempty"`
	Version string `json:"version"`
	Start   string `json:"start"`
	Input   struct {
		Fields []Field `json:"fields"`
	} `json:"input"`
	Nodes []Node `json:"nodes"`
	// Graph is the flow as a Mermaid flowchart.
	Graph string `json:"graph"`
}

// Field is one input field of a process.
type Field struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Required    bool     `json:"required,omitempty"`
	Enum        []string `json:"enum,omitempty"`
	MinLength   int      `json:"min_length,omitempty"`
	MaxLength   int      `json:"max_length,omitempty"`
	Pattern     string   `json:"pattern,omitempty"`
	Sensitive   string   `json:"sensitive,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Node is one node of a process.
type Node struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	Edges       []struct {
		Outcome string `json:"outcome"`
		To      string `json:"to"`
	} `json:"edges"`
	Counts struct {
		// Now counts the tasks in the node, by status.
		Now map[string]int64 `json:"now"`
		// Total counts every arrival into a final node.
		Total int64 `json:"total"`
	} `json:"counts"`
}

// FieldError is one input field that fails a process's schema.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// FieldErrors is the cause of an invalid-input error (HTTP 422): every field
// that fails the schema. Reach it with errors.As.
type FieldErrors []FieldError

// Error joins the fields.
func (fe FieldErrors) Error() string {
	parts := make([]string, len(fe))
	for i, f := range fe {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

// Submit creates a task of process with a ref (may be empty) and data (any
// value that encodes as a JSON object). created is false when an earlier
// submit with the same ref and data made the task; the same ref with other
// data is a conflict error.
func (c *Client) Submit(ctx context.Context, process, ref string, data any) (task *Task, created bool, err error) {
	body := struct {
		Ref  string `json:"ref,omitempty"`
		Data any    `json:"data"`
	}{ref, data}
	task = &Task{}
	status, err := c.do(ctx, "POST", "/api/v1/processes/"+url.PathEscape(process)+"/tasks", nil, body, task)
	if err != nil {
		return nil, false, err
	}
	return task, status == http.StatusCreated, nil
}

// Task returns a task with its history.
func (c *Client) Task(ctx context.Context, id string) (*Task, error) {
	t := &Task{}
	if _, err := c.do(ctx, "GET", "/api/v1/tasks/"+url.PathEscape(id), nil, nil, t); err != nil {
		return nil, err
	}
	return t, nil
}

// List returns a page of tasks, newest first.
func (c *Client) List(ctx context.Context, o ListOptions) (*TaskPage, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("process", o.Process)
	set("node", o.Node)
	set("status", o.Status)
	set("ref", o.Ref)
	set("error_code", o.ErrorCode)
	set("cursor", o.Cursor)
	if o.OlderThan > 0 {
		q.Set("older_than", o.OlderThan.String())
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	p := &TaskPage{}
	if _, err := c.do(ctx, "GET", "/api/v1/tasks", q, nil, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Retry re-runs the failed node of an escalated task.
func (c *Client) Retry(ctx context.Context, id, reason string) (*Task, error) {
	return c.action(ctx, id, "retry", map[string]any{"reason": reason})
}

// Cancel ends an unfinished task where it stands.
func (c *Client) Cancel(ctx context.Context, id, reason string) (*Task, error) {
	return c.action(ctx, id, "cancel", map[string]any{"reason": reason})
}

// Move sends an unfinished task to another node of its process.
func (c *Client) Move(ctx context.Context, id, to, reason string) (*Task, error) {
	return c.action(ctx, id, "move", map[string]any{"to": to, "reason": reason})
}

// Edit changes an escalated task's data (a nil value removes a field), then
// retries it.
func (c *Client) Edit(ctx context.Context, id string, data map[string]any, reason string) (*Task, error) {
	return c.action(ctx, id, "edit", map[string]any{"data": data, "reason": reason})
}

func (c *Client) action(ctx context.Context, id, action string, body map[string]any) (*Task, error) {
	if body["reason"] == "" {
		delete(body, "reason")
	}
	t := &Task{}
	if _, err := c.do(ctx, "POST", "/api/v1/tasks/"+url.PathEscape(id)+"/"+action, nil, body, t); err != nil {
		return nil, err
	}
	return t, nil
}

// CallbackByRef delivers a callback to the task holding ref in process.
// body is sent as is with contentType (default application/json). The four
// answers are results; a body the waiting node refuses is an error.
func (c *Client) CallbackByRef(ctx context.Context, process, ref, contentType string, body []byte) (*CallbackResult, error) {
	if contentType == "" {
		contentType = "application/json"
	}
	path := "/api/v1/processes/" + url.PathEscape(process) + "/tasks/" + url.PathEscape(ref) + "/callback"
	status, raw, err := c.send(ctx, "POST", path, nil, contentType, body)
	if err != nil {
		return nil, err
	}
	var res CallbackResult
	if json.Unmarshal(raw, &res) == nil && res.Result != "" {
		return &res, nil
	}
	return nil, answerError(status, raw)
}

// Processes returns every current process definition.
func (c *Client) Processes(ctx context.Context) ([]*Process, error) {
	var out struct {
		Processes []*Process `json:"processes"`
	}
	if _, err := c.do(ctx, "GET", "/api/v1/processes", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Processes, nil
}

// Process returns one process definition.
func (c *Client) Process(ctx context.Context, name string) (*Process, error) {
	p := &Process{}
	if _, err := c.do(ctx, "GET", "/api/v1/processes/"+url.PathEscape(name), nil, nil, p); err != nil {
		return nil, err
	}
	return p, nil
}

// do sends a JSON request and decodes a 2xx JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) (int, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, &conveyor.Error{Code: conveyor.EInvalid, Message: "cannot encode the request: " + err.Error(), Err: err}
		}
	}
	status, raw, err := c.send(ctx, method, path, q, "application/json", body)
	if err != nil {
		return 0, err
	}
	if status < 200 || status > 299 {
		return status, answerError(status, raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return status, &conveyor.Error{Code: conveyor.EInternal, Message: fmt.Sprintf("the server's answer (HTTP %d) is not the JSON expected", status), Err: err}
	}
	return status, nil
}

// send makes one request and reads the answer.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, contentType string, body []byte) (int, []byte, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, &conveyor.Error{Code: conveyor.EInvalid, Message: "bad request: " + err.Error(), Err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.Actor != "" {
		req.Header.Set("X-Conveyor-Actor", c.Actor)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, &conveyor.Error{Code: conveyor.EUnavailable, Message: "cannot reach the server at " + c.base + ": " + unwrapURLError(err), Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, &conveyor.Error{Code: conveyor.EUnavailable, Message: "reading the server's answer: " + err.Error(), Err: err}
	}
	return resp.StatusCode, raw, nil
}

// answerError turns an error answer into *conveyor.Error: the server's code
// and message when it sent its JSON error, else a code from the status.
func answerError(status int, raw []byte) error {
	var body struct {
		Error struct {
			Code    string      `json:"code"`
			Message string      `json:"message"`
			Fields  FieldErrors `json:"fields"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		e := &conveyor.Error{Code: body.Error.Code, Message: body.Error.Message}
		if len(body.Error.Fields) > 0 {
			e.Err = body.Error.Fields
		}
		return e
	}
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return &conveyor.Error{Code: codeOf(status), Message: fmt.Sprintf("HTTP %d from the server: %s", status, msg)}
}

// codeOf guesses the code of an answer that did not carry one (a proxy's).
func codeOf(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return conveyor.EInvalid
	case http.StatusUnauthorized, http.StatusForbidden:
		return conveyor.EUnauthorized
	case http.StatusNotFound:
		return conveyor.ENotFound
	case http.StatusConflict:
		return conveyor.EConflict
	case http.StatusRequestEntityTooLarge:
		return conveyor.ETooLarge
	case http.StatusTooManyRequests:
		return conveyor.ETooMany
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return conveyor.EUnavailable
	}
	return conveyor.EInternal
}

func unwrapURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

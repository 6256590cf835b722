package client

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// BulkFilter selects the tasks of a bulk action; Process is required and
// zero fields match everything.
type BulkFilter struct {
	Process   string
	Node      string
	Status    string
	ErrorCode string
	// OlderThan keeps tasks that entered their node longer ago than this.
	OlderThan time.Duration
}

// BulkRequest asks for a bulk retry, move or cancel.
type BulkRequest struct {
	// Action is retry, move or cancel.
	Action string
	Filter BulkFilter
	// To is the node a move sends the tasks to.
	To string
	// Reason is recorded in each task's history and the audit log.
	Reason string
	// Rate caps the tasks acted on per second (0: the server's default, 50).
	Rate int
}

// DryRun is how many tasks a bulk action would act on now, and up to 10 of
// them, newest first.
type DryRun struct {
	Count  int     `json:"count"`
	Sample []*Task `json:"sample"`
}

// Job is a bulk job as the server shows it.
type Job struct {
	ID     string    `json:"id"`
	Action string    `json:"action"`
	Filter JobFilter `json:"filter"`
	To     string    `json:"to,omitempty"`
	Reason string    `json:"reason,omitempty"`
	// Rate is the tasks per second; Actor who started the job.
	Rate  int    `json:"rate"`
	Actor string `json:"actor"`
	// Status is pending, running, done, canceled or failed; Error says why a
	// failed job stopped.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Total is the selection's size (when done, the tasks acted on); Done
	// the tasks with a result, Succeeded and Failed how those ended.
	Total     int        `json:"total"`
	Done      int        `json:"done"`
	Succeeded int        `json:"succeeded"`
	Failed    int        `json:"failed"`
	Created   time.Time  `json:"created"`
	Updated   time.Time  `json:"updated"`
	Started   *time.Time `json:"started,omitempty"`
	Finished  *time.Time `json:"finished,omitempty"`
}

// Final reports whether the job will never act on a task again.
func (j *Job) Final() bool {
	return j.Status == "done" || j.Status == "canceled" || j.Status == "failed"
}

// JobFilter is a job's selection: the filter as asked, and the time the
// selection was frozen at.
type JobFilter struct {
	Process       string    `json:"process"`
	Node          string    `json:"node,omitempty"`
	Status        string    `json:"status,omitempty"`
	ErrorCode     string    `json:"error_code,omitempty"`
	OlderThan     string    `json:"older_than,omitempty"`
	EnteredBefore time.Time `json:"entered_before"`
}

// JobResult is what a bulk job did to one task.
type JobResult struct {
	TaskID string    `json:"task_id"`
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at"`
}

// JobResultPage is a page of a job's results, in task id order.
type JobResultPage struct {
	Results    []JobResult `json:"results"`
	NextCursor string      `json:"next_cursor"`
}

// bulkBody is the JSON of POST /api/v1/bulk.
type bulkBody struct {
	Action string `json:"action"`
	Filter struct {
		Process   string `json:"process"`
		Node      string `json:"node,omitempty"`
		Status    string `json:"status,omitempty"`
		ErrorCode string `json:"error_code,omitempty"`
		OlderThan string `json:"older_than,omitempty"`
	} `json:"filter"`
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
	Rate   int    `json:"rate,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
}

func (r BulkRequest) body(dry bool) bulkBody {
	b := bulkBody{Action: r.Action, To: r.To, Reason: r.Reason, Rate: r.Rate, DryRun: dry}
	b.Filter.Process, b.Filter.Node, b.Filter.Status, b.Filter.ErrorCode = r.Filter.Process, r.Filter.Node, r.Filter.Status, r.Filter.ErrorCode
	if r.Filter.OlderThan > 0 {
		b.Filter.OlderThan = r.Filter.OlderThan.String()
	}
	return b
}

// BulkDryRun counts the tasks a bulk action would act on now; nothing
// changes.
func (c *Client) BulkDryRun(ctx context.Context, r BulkRequest) (*DryRun, error) {
	out := &DryRun{}
	if _, err := c.do(ctx, "POST", "/api/v1/bulk", nil, r.body(true), out); err != nil {
		return nil, err
	}
	return out, nil
}

// StartBulk starts a bulk job and returns it, pending; follow it with Job.
func (c *Client) StartBulk(ctx context.Context, r BulkRequest) (*Job, error) {
	j := &Job{}
	if _, err := c.do(ctx, "POST", "/api/v1/bulk", nil, r.body(false), j); err != nil {
		return nil, err
	}
	return j, nil
}

// Jobs returns up to limit bulk jobs (0: the server's default, 50), newest
// first.
func (c *Client) Jobs(ctx context.Context, limit int) ([]*Job, error) {
	var out struct {
		Jobs []*Job `json:"jobs"`
	}
	if _, err := c.do(ctx, "GET", "/api/v1/bulk", limitQuery(limit), nil, &out); err != nil {
		return nil, err
	}
	return out.Jobs, nil
}

// Job returns a bulk job with its progress.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	j := &Job{}
	if _, err := c.do(ctx, "GET", "/api/v1/bulk/"+url.PathEscape(id), nil, nil, j); err != nil {
		return nil, err
	}
	return j, nil
}

// JobResults returns a page of a job's results after cursor ("" from the
// first), up to limit (0: the server's default, 100).
func (c *Client) JobResults(ctx context.Context, id, cursor string, limit int) (*JobResultPage, error) {
	q := limitQuery(limit)
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	p := &JobResultPage{}
	if _, err := c.do(ctx, "GET", "/api/v1/bulk/"+url.PathEscape(id)+"/results", q, nil, p); err != nil {
		return nil, err
	}
	return p, nil
}

// CancelBulk stops a bulk job that has not finished; a finished job is a
// conflict error.
func (c *Client) CancelBulk(ctx context.Context, id string) (*Job, error) {
	j := &Job{}
	if _, err := c.do(ctx, "POST", "/api/v1/bulk/"+url.PathEscape(id)+"/cancel", nil, nil, j); err != nil {
		return nil, err
	}
	return j, nil
}

// AuditEntry is one operator action: who, when, why, what changed, and the
// bulk job that did it.
type AuditEntry struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	TaskID  string    `json:"task_id"`
	Process string    `json:"process"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	JobID   string    `json:"job_id,omitempty"`
}

// AuditOptions filter Audit; zero fields match everything.
type AuditOptions struct {
	Task    string
	Actor   string
	Process string
	Since   time.Time
	// Limit is the page size (server default 50, at most 1000).
	Limit  int
	Cursor string
}

// AuditPage is a page of the audit log, newest first.
type AuditPage struct {
	Entries    []AuditEntry `json:"entries"`
	NextCursor string       `json:"next_cursor"`
}

// Audit returns a page of the audit log: every operator action, single or
// bulk, newest first.
func (c *Client) Audit(ctx context.Context, o AuditOptions) (*AuditPage, error) {
	q := limitQuery(o.Limit)
	for k, v := range map[string]string{"task": o.Task, "actor": o.Actor, "process": o.Process, "cursor": o.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !o.Since.IsZero() {
		q.Set("since", o.Since.Format(time.RFC3339Nano))
	}
	p := &AuditPage{}
	if _, err := c.do(ctx, "GET", "/api/v1/audit", q, nil, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Alarm is a node's queue alarm and the tasks in the node now.
type Alarm struct {
	Process   string     `json:"process"`
	Node      string     `json:"node"`
	Threshold int        `json:"threshold"`
	Signal    string     `json:"signal,omitempty"`
	On        bool       `json:"on"`
	Since     *time.Time `json:"since,omitempty"`
	Count     int64      `json:"count"`
}

// AlarmCrossing is a queue alarm going on or off.
type AlarmCrossing struct {
	Process   string    `json:"process"`
	Node      string    `json:"node"`
	Seq       int       `json:"seq"`
	On        bool      `json:"on"`
	Count     int64     `json:"count"`
	Threshold int       `json:"threshold"`
	Signal    string    `json:"signal,omitempty"`
	TaskID    string    `json:"task_id,omitempty"`
	At        time.Time `json:"at"`
}

// Alarms is every queue alarm and the latest crossings, newest first.
type Alarms struct {
	Alarms    []Alarm         `json:"alarms"`
	Crossings []AlarmCrossing `json:"crossings"`
}

// Alarms returns the queue alarms and up to limit recent crossings (0: the
// server's default, 50).
func (c *Client) Alarms(ctx context.Context, limit int) (*Alarms, error) {
	a := &Alarms{}
	if _, err := c.do(ctx, "GET", "/api/v1/alarms", limitQuery(limit), nil, a); err != nil {
		return nil, err
	}
	return a, nil
}

// limitQuery is a query with limit, when positive.
func limitQuery(limit int) url.Values {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

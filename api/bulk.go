package api

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/store"
)

// bulkRequest is the body of POST /api/v1/bulk.
type bulkRequest struct {
	Action string     `json:"action"`
	Filter bulkFilter `json:"filter"`
	To     string     `json:"to"`
	Reason string     `json:"reason"`
	Rate   int        `json:"rate"`
	DryRun bool       `json:"dry_run"`
}

// bulkFilter selects the tasks of a bulk action; empty keys match all.
type bulkFilter struct {
	Process   string `json:"process"`
	Node      string `json:"node"`
	Status    string `json:"status"`
	ErrorCode string `json:"error_code"`
	// OlderThan is a Go duration: tasks that entered their node longer ago.
	OlderThan string `json:"older_than"`
}

// dryRun is the answer of a dry run: how many tasks the job would act on
// now, and up to 10 of them.
type dryRun struct {
	Count  int                `json:"count"`
	Sample []*engine.TaskView `json:"sample"`
}

// jobView is a bulk job as the API shows it.
type jobView struct {
	ID        uuid.UUID       `json:"id"`
	Action    string          `json:"action"`
	Filter    jobFilterView   `json:"filter"`
	To        string          `json:"to,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Rate      int             `json:"rate"`
	Actor     string          `json:"actor"`
	Status    store.JobStatus `json:"status"`
	Error     string          `json:"error,omitempty"`
	Total     int             `json:"total"`
	Done      int             `json:"done"`
	Succeeded int             `json:"succeeded"`
	Failed    int             `json:"failed"`
	Created   time.Time       `json:"created"`
	Updated   time.Time       `json:"updated"`
	Started   *time.Time      `json:"started,omitempty"`
	Finished  *time.Time      `json:"finished,omitempty"`
}

// jobFilterView is a job's selection: the filter as asked, and the time the
// selection was frozen at.
type jobFilterView struct {
	Process       string       `json:"process"`
	Node          string       `json:"node,omitempty"`
	Status        store.Status `json:"status,omitempty"`
	ErrorCode     string       `json:"error_code,omitempty"`
	OlderThan     string       `json:"older_than,omitempty"`
	EnteredBefore time.Time    `json:"entered_before"`
}

func viewJob(j *store.Job) *jobView {
	f := j.Filter
	v := &jobView{ID: j.ID, Action: j.Action, To: j.To, Reason: j.Reason, Rate: j.Rate, Actor: j.Actor, Status: j.Status,
		Error: j.Error, Total: j.Total, Done: j.Done, Succeeded: j.Succeeded, Failed: j.Failed, Created: j.Created, Updated: j.Updated,
		Filter: jobFilterView{Process: f.Process, Node: f.Node, Status: f.Status, ErrorCode: f.ErrorCode, EnteredBefore: f.EnteredBefore}}
	if f.OlderThan > 0 {
		v.Filter.OlderThan = f.OlderThan.String()
	}
	if !j.Started.IsZero() {
		v.Started = &j.Started
	}
	if !j.Finished.IsZero() {
		v.Finished = &j.Finished
	}
	return v
}

// bulk answers a dry run (200, the count and a sample) or starts a job
// (201, the job).
func (s *server) bulk(w http.ResponseWriter, r *http.Request) error {
	var body bulkRequest
	if err := s.decode(r, &body, false); err != nil {
		return err
	}
	if len([]rune(body.Reason)) > maxReason {
		return conveyor.Errorf(conveyor.EInvalid, "reason must be at most %d characters", maxReason)
	}
	req := engine.BulkRequest{Action: body.Action, To: body.To, Reason: body.Reason, Rate: body.Rate, Actor: s.actor(r),
		Filter: store.JobFilter{Process: body.Filter.Process, Node: body.Filter.Node, Status: store.Status(body.Filter.Status),
			ErrorCode: body.Filter.ErrorCode}}
	if v := body.Filter.OlderThan; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return conveyor.Errorf(conveyor.EInvalid, "filter.older_than must be a positive duration such as 90s, 10m or 2h")
		}
		req.Filter.OlderThan = d
	}
	if body.DryRun {
		n, sample, err := s.eng.BulkDryRun(r.Context(), req)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, dryRun{Count: n, Sample: sample})
		return nil
	}
	j, err := s.eng.StartBulk(r.Context(), req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/bulk/"+j.ID.String())
	writeJSON(w, http.StatusCreated, viewJob(j))
	return nil
}

// jobList is the answer of GET /api/v1/bulk.
type jobList struct {
	Jobs []*jobView `json:"jobs"`
}

// jobs answers the newest bulk jobs.
func (s *server) jobs(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "limit")
	if err != nil {
		return err
	}
	limit, err := limitParam(q)
	if err != nil {
		return err
	}
	jobs, err := s.eng.Jobs(r.Context(), limit)
	if err != nil {
		return err
	}
	out := jobList{Jobs: make([]*jobView, 0, len(jobs))}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, viewJob(j))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// job answers one bulk job with its progress.
func (s *server) job(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	j, err := s.eng.Job(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewJob(j))
	return nil
}

// resultList is the answer of GET /api/v1/bulk/{id}/results.
type resultList struct {
	Results    []store.JobResult `json:"results"`
	NextCursor string            `json:"next_cursor"`
}

// jobResults answers a page of a job's results, in task id order.
func (s *server) jobResults(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	q, err := query(r, "cursor", "limit")
	if err != nil {
		return err
	}
	limit, err := limitParam(q)
	if err != nil {
		return err
	}
	results, next, err := s.eng.JobResults(r.Context(), id, q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	if results == nil {
		results = []store.JobResult{}
	}
	writeJSON(w, http.StatusOK, resultList{Results: results, NextCursor: next})
	return nil
}

// cancelJob stops a job that has not finished and answers it.
func (s *server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	if err := s.decode(r, &struct{}{}, true); err != nil {
		return err
	}
	j, err := s.eng.CancelBulk(r.Context(), id)
	if err != nil {
		return err
	}
	s.log.Info("bulk job canceled", "job_id", id, "actor", s.actor(r))
	writeJSON(w, http.StatusOK, viewJob(j))
	return nil
}

// jobID parses the {id} of the path.
func jobID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return uuid.Nil, conveyor.Errorf(conveyor.EInvalid, "bulk job id must be a UUID")
	}
	return id, nil
}

// query returns the query of r, refusing parameters not in allowed.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(allowed, k) {
			return nil, conveyor.Errorf(conveyor.EInvalid, "unknown query parameter %q (want %s)", k, strings.Join(allowed, ", "))
		}
	}
	return q, nil
}

// limitParam parses the limit parameter: 0 when absent, else 1 to 1000.
func limitParam(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxListLimit {
		return 0, conveyor.Errorf(conveyor.EInvalid, "limit must be an integer from 1 to %d", maxListLimit)
	}
	return n, nil
}

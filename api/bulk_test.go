package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyor-dev/conveyor/api"
)

// escalated submits n tasks the sandbox declines (error code limit) and
// waits until they are escalated.
func (b *bundle) escalated(prefix string, n int) []string {
	b.t.Helper()
	var ids []string
	for i := range n {
		ids = append(ids, b.submit(fmt.Sprintf("%s-%d", prefix, i), input(fmt.Sprintf("%s-o%d", prefix, i), cardLimit))["id"].(string))
	}
	for _, id := range ids {
		b.awaitStatus(id, "escalated")
	}
	return ids
}

// awaitJob polls a job until ok accepts it, within pollBudget.
func (b *bundle) awaitJob(id string, what string, ok func(job map[string]any) bool) map[string]any {
	b.t.Helper()
	deadline := time.Now().Add(pollBudget)
	for {
		r := b.get("/api/v1/bulk/" + id)
		want(b.t, r, http.StatusOK)
		job := r.json(b.t)
		if ok(job) {
			return job
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("job %s never became %s: %v", id, what, job)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBulk(t *testing.T) {
	t.Parallel()
	b := setup(t, options{token: "s3cret"})
	ids := b.escalated("bulk", 3)
	bob := map[string]string{"X-Conveyor-Actor": "bob"}
	filter := `{"process":"` + process + `","node":"escalation","error_code":"limit"}`

	t.Run("dry run counts and shows a sample", func(t *testing.T) {
		r := b.do(request{method: "POST", path: "/api/v1/bulk", body: `{"action":"retry","filter":` + filter + `,"dry_run":true}`})
		want(t, r, http.StatusOK)
		out := r.json(t)
		if out["count"].(json.Number).String() != "3" || len(out["sample"].([]any)) != 3 {
			t.Errorf("dry run %s", r.body)
		}
		if strings.Contains(string(r.body), cardLimit) {
			t.Error("the sample shows a card number")
		}
		if jobs := b.get("/api/v1/bulk").json(t)["jobs"].([]any); len(jobs) != 0 {
			t.Errorf("a dry run stored a job: %v", jobs)
		}
	})

	var jobID string
	t.Run("a job retries every selected task once", func(t *testing.T) {
		r := b.do(request{method: "POST", path: "/api/v1/bulk", header: bob,
			body: `{"action":"retry","filter":` + filter + `,"reason":"limit raised","rate":100}`})
		want(t, r, http.StatusCreated)
		job := r.json(t)
		jobID = job["id"].(string)
		if loc := r.header.Get("Location"); loc != "/api/v1/bulk/"+jobID {
			t.Errorf("Location %q", loc)
		}
		for _, k := range []string{"id", "action", "filter", "reason", "rate", "actor", "status", "total", "done", "succeeded", "failed", "created", "updated"} {
			if _, ok := job[k]; !ok {
				t.Errorf("job has no %s: %s", k, r.body)
			}
		}
		if job["actor"] != "token:bob" || job["total"].(json.Number).String() != "3" || job["action"] != "retry" {
			t.Errorf("job %s", r.body)
		}
		f := job["filter"].(map[string]any)
		if f["process"] != process || f["node"] != "escalation" || f["error_code"] != "limit" || f["status"] != "escalated" || f["entered_before"] == nil {
			t.Errorf("filter %v", f)
		}
		done := b.awaitJob(jobID, "done", func(j map[string]any) bool { return j["status"] == "done" })
		if done["done"].(json.Number).String() != "3" || done["succeeded"].(json.Number).String() != "3" || done["finished"] == nil {
			t.Errorf("finished job %v", done)
		}
		if jobs := b.get("/api/v1/bulk?limit=5").json(t)["jobs"].([]any); len(jobs) != 1 || jobs[0].(map[string]any)["id"] != jobID {
			t.Errorf("jobs %v", jobs)
		}

		r = b.get("/api/v1/bulk/" + jobID + "/results?limit=2")
		want(t, r, http.StatusOK)
		page := r.json(t)
		results := page["results"].([]any)
		next := page["next_cursor"].(string)
		if len(results) != 2 || next == "" {
			t.Fatalf("first page %s", r.body)
		}
		rest := b.get("/api/v1/bulk/" + jobID + "/results?cursor=" + next).json(t)
		results = append(results, rest["results"].([]any)...)
		seen := map[string]bool{}
		for _, x := range results {
			res := x.(map[string]any)
			if res["ok"] != true || res["at"] == nil {
				t.Errorf("result %v", res)
			}
			seen[res["task_id"].(string)] = true
		}
		for _, id := range ids {
			if !seen[id] {
				t.Errorf("no result for task %s", id)
			}
		}
	})

	t.Run("audit shows single and bulk actions", func(t *testing.T) {
		id := ids[0]
		b.awaitStatus(id, "escalated")
		r := b.do(request{method: "POST", path: "/api/v1/tasks/" + id + "/cancel", body: `{"reason":"customer left"}`,
			header: map[string]string{"X-Conveyor-Actor": "alice"}})
		want(t, r, http.StatusOK)
		r = b.get("/api/v1/audit?task=" + id)
		want(t, r, http.StatusOK)
		entries := r.json(t)["entries"].([]any)
		if len(entries) != 2 {
			t.Fatalf("audit of the task: %s", r.body)
		}
		cancel, retry := entries[0].(map[string]any), entries[1].(map[string]any)
		if cancel["action"] != "operator_cancel" || cancel["actor"] != "token:alice" || cancel["reason"] != "customer left" ||
			cancel["job_id"] != nil || cancel["task_id"] != id || cancel["process"] != process || cancel["at"] == nil {
			t.Errorf("cancel entry %v", cancel)
		}
		if retry["action"] != "operator_retry" || retry["actor"] != "token:bob" || retry["job_id"] != jobID ||
			retry["from"] != "escalation" || retry["to"] != "calling_api" || retry["reason"] != "limit raised" {
			t.Errorf("retry entry %v", retry)
		}
		all := b.get("/api/v1/audit?limit=2&process=" + process).json(t)
		if len(all["entries"].([]any)) != 2 || all["next_cursor"] == "" {
			t.Errorf("first audit page %v", all)
		}
		more := b.get("/api/v1/audit?limit=2&process=" + process + "&cursor=" + all["next_cursor"].(string)).json(t)
		if len(more["entries"].([]any)) != 2 || more["next_cursor"] != "" {
			t.Errorf("second audit page %v", more)
		}
		if got := b.get("/api/v1/audit?actor=token:alice").json(t)["entries"].([]any); len(got) != 1 {
			t.Errorf("audit of alice: %v", got)
		}
		if got := b.get("/api/v1/audit?since=2999-01-01T00:00:00Z").json(t)["entries"].([]any); len(got) != 0 {
			t.Errorf("audit since 2999: %v", got)
		}
		task := b.get("/api/v1/tasks/" + ids[1]).json(t)
		var jobs []any
		for _, h := range task["history"].([]any) {
			if j := h.(map[string]any)["job_id"]; j != nil {
				jobs = append(jobs, j)
			}
		}
		if len(jobs) != 1 || jobs[0] != jobID {
			t.Errorf("the task's history names jobs %v, want %s", jobs, jobID)
		}
	})

	t.Run("cancel stops a running job", func(t *testing.T) {
		more := b.escalated("slow", 3)
		r := b.post("/api/v1/bulk", `{"action":"cancel","filter":{"process":"`+process+`","node":"escalation"},"rate":1}`)
		want(t, r, http.StatusCreated)
		id := r.json(t)["id"].(string)
		r = b.post("/api/v1/bulk/"+id+"/cancel", "")
		want(t, r, http.StatusOK)
		if job := r.json(t); job["status"] != "canceled" || job["finished"] == nil {
			t.Errorf("canceled job %s", r.body)
		}
		want(t, b.post("/api/v1/bulk/"+id+"/cancel", "{}"), http.StatusConflict)
		want(t, b.post("/api/v1/bulk/"+jobID+"/cancel", ""), http.StatusConflict)
		b.awaitJob(id, "settled", func(j map[string]any) bool { return j["status"] == "canceled" })
		left := 0
		for _, task := range more {
			if b.get("/api/v1/tasks/" + task).json(t)["status"] == "escalated" {
				left++
			}
		}
		if left < 1 {
			t.Errorf("a job canceled at once, at one task a second, canceled all %d tasks", len(more))
		}
	})

	t.Run("alarms", func(t *testing.T) {
		r := b.get("/api/v1/alarms")
		want(t, r, http.StatusOK)
		if got := strings.TrimSpace(string(r.body)); got != `{"alarms":[],"crossings":[]}` {
			t.Errorf("alarms of the shipped flows: %s", got)
		}
	})

	unknown := "/api/v1/bulk/01900000-0000-7000-8000-000000000000"
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown key", "POST", "/api/v1/bulk", `{"action":"retry","filter":{"process":"` + process + `"},"colour":1}`, 400, "invalid"},
		{"unknown filter key", "POST", "/api/v1/bulk", `{"action":"retry","filter":{"process":"` + process + `","ref":"x"}}`, 400, "invalid"},
		{"empty body", "POST", "/api/v1/bulk", ``, 400, "invalid"},
		{"no process", "POST", "/api/v1/bulk", `{"action":"cancel","filter":{}}`, 400, "invalid"},
		{"unknown action", "POST", "/api/v1/bulk", `{"action":"purge","filter":{"process":"` + process + `"}}`, 400, "invalid"},
		{"bad older_than", "POST", "/api/v1/bulk", `{"action":"cancel","filter":{"process":"` + process + `","older_than":"soon"}}`, 400, "invalid"},
		{"move without to", "POST", "/api/v1/bulk", `{"action":"move","filter":{"process":"` + process + `"}}`, 400, "invalid"},
		{"rate too high", "POST", "/api/v1/bulk", `{"action":"cancel","filter":{"process":"` + process + `"},"rate":100000}`, 400, "invalid"},
		{"rate not a number", "POST", "/api/v1/bulk", `{"action":"cancel","filter":{"process":"` + process + `"},"rate":"fast"}`, 400, "invalid"},
		{"long reason", "POST", "/api/v1/bulk", `{"action":"cancel","filter":{"process":"` + process + `"},"reason":"` + strings.Repeat("x", 1001) + `"}`, 400, "invalid"},
		{"unknown process", "POST", "/api/v1/bulk", `{"action":"cancel","filter":{"process":"nope"},"dry_run":true}`, 404, "not_found"},
		{"bad job id", "GET", "/api/v1/bulk/nope", ``, 400, "invalid"},
		{"unknown job", "GET", unknown, ``, 404, "not_found"},
		{"results of an unknown job", "GET", unknown + "/results", ``, 404, "not_found"},
		{"bad results cursor", "GET", "/api/v1/bulk/" + jobID + "/results?cursor=zz", ``, 400, "invalid"},
		{"bad results limit", "GET", "/api/v1/bulk/" + jobID + "/results?limit=0", ``, 400, "invalid"},
		{"unknown results parameter", "GET", "/api/v1/bulk/" + jobID + "/results?page=2", ``, 400, "invalid"},
		{"cancel of an unknown job", "POST", unknown + "/cancel", ``, 404, "not_found"},
		{"cancel with a body", "POST", "/api/v1/bulk/" + jobID + "/cancel", `{"reason":"x"}`, 400, "invalid"},
		{"bad jobs limit", "GET", "/api/v1/bulk?limit=1001", ``, 400, "invalid"},
		{"audit of a bad task id", "GET", "/api/v1/audit?task=nope", ``, 400, "invalid"},
		{"audit since a bad time", "GET", "/api/v1/audit?since=yesterday", ``, 400, "invalid"},
		{"audit with a bad cursor", "GET", "/api/v1/audit?cursor=zz", ``, 400, "invalid"},
		{"audit with an unknown parameter", "GET", "/api/v1/audit?colour=red", ``, 400, "invalid"},
		{"alarms with a bad limit", "GET", "/api/v1/alarms?limit=x", ``, 400, "invalid"},
	} {
		t.Run("refuses "+c.name, func(t *testing.T) {
			r := b.do(request{method: c.method, path: c.path, body: c.body})
			want(t, r, c.status)
			if got := r.errorCode(t); got != c.code {
				t.Errorf("code %q, want %q", got, c.code)
			}
		})
	}

	for _, path := range []string{"GET /api/v1/bulk", "POST /api/v1/bulk", "GET /api/v1/bulk/" + jobID, "GET /api/v1/bulk/" + jobID + "/results",
		"POST /api/v1/bulk/" + jobID + "/cancel", "GET /api/v1/audit", "GET /api/v1/alarms"} {
		method, p, _ := strings.Cut(path, " ")
		t.Run("needs the token: "+path, func(t *testing.T) {
			want(t, b.do(request{method: method, path: p, body: "{}", noAuth: true}), http.StatusUnauthorized)
		})
	}
}

func TestMetrics_Alarm(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := api.NewMetrics(reg)
	m.Alarm("queue", "hold", true)
	m.Alarm("queue", "other", true)
	m.Alarm("queue", "other", false)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != api.MetricQueueAlarm {
			continue
		}
		for _, m := range f.GetMetric() {
			var node string
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" {
					node = l.GetValue()
				}
			}
			got[node] = m.GetGauge().GetValue()
		}
	}
	if got["hold"] != 1 || got["other"] != 0 || len(got) != 2 {
		t.Errorf("%s = %v, want hold 1 and other 0", api.MetricQueueAlarm, got)
	}
}

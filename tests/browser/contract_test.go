package browser

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/conveyor-dev/conveyor/web"
)

// contractAPI fakes the bulk and audit endpoints exactly as their contract
// says (docs/api.md), so the dashboard's bulk and audit pages are tested
// even where the real server does not serve them yet. A job advances one
// task per read of it.
type contractAPI struct {
	mu     sync.Mutex
	bodies []map[string]any // POST /api/v1/bulk bodies
	actors []string
	job    map[string]any
}

func (f *contractAPI) handler() http.Handler {
	mux := http.NewServeMux()
	web.Mount(mux, web.Handler(web.Config{}))
	now := time.Now().UTC()
	at := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339Nano) }
	task := func(i int) map[string]any {
		return map[string]any{
			"id": fmt.Sprintf("01a20000-0000-7000-8000-00000000000%d", i), "ref": fmt.Sprintf("order-%d", i),
			"process": process, "version": "v1", "node": "escalation", "status": "escalated", "data": map[string]any{},
			"error":   map[string]any{"code": "limit", "description": "customer amount or count limit reached", "node": "calling_api"},
			"created": at(20 * time.Minute), "updated": at(19 * time.Minute), "entered": at(19 * time.Minute),
		}
	}
	node := func(name, kind string, edges ...string) map[string]any {
		es := []map[string]string{}
		for i := 0; i+1 < len(edges); i += 2 {
			es = append(es, map[string]string{"outcome": edges[i], "to": edges[i+1]})
		}
		counts := map[string]any{"now": map[string]int{}, "total": 0}
		if kind == "escalation" {
			counts["now"] = map[string]int{"escalated": 3}
		}
		return map[string]any{"name": name, "kind": kind, "edges": es, "counts": counts}
	}
	proc := map[string]any{
		"name": process, "title": "Blocking funds on customer's card", "version": "v1", "start": "calling_api",
		"input": map[string]any{"fields": []any{}},
		"nodes": []any{
			node("calling_api", "api", "next", "held", "error", "escalation"),
			node("escalation", "escalation", "timeout", "failed"),
			node("held", "final"), node("failed", "final"),
		},
	}
	write := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/v1/processes", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, map[string]any{"processes": []any{proc}})
	})
	mux.HandleFunc("GET /api/v1/processes/{p}", func(w http.ResponseWriter, r *http.Request) { write(w, 200, proc) })
	mux.HandleFunc("POST /api/v1/bulk", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			write(w, 400, map[string]any{"error": map[string]string{"code": "invalid", "message": err.Error()}})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.bodies = append(f.bodies, body)
		f.actors = append(f.actors, r.Header.Get("X-Conveyor-Actor"))
		if body["dry_run"] == true {
			write(w, 200, map[string]any{"count": 3, "sample": []any{task(1), task(2), task(3)}})
			return
		}
		f.job = map[string]any{
			"id": "01a20000-0000-7000-8000-0000000000j1", "action": body["action"], "filter": body["filter"], "to": body["to"],
			"reason": body["reason"], "rate": body["rate"], "actor": "anonymous:bob", "status": "pending",
			"total": 3, "done": 0, "succeeded": 0, "failed": 0, "created": at(0), "updated": at(0),
		}
		write(w, 201, f.job)
	})
	advance := func() map[string]any {
		if f.job == nil {
			return nil
		}
		if d := f.job["done"].(int); d < 3 && f.job["status"] != "canceled" {
			f.job["done"], f.job["status"] = d+1, "running"
			if d+1 == 3 {
				f.job["failed"] = 1
				f.job["status"] = "done"
			} else {
				f.job["succeeded"] = d + 1
			}
		}
		return f.job
	}
	mux.HandleFunc("GET /api/v1/bulk", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		jobs := []any{}
		if f.job != nil {
			jobs = append(jobs, f.job)
		}
		write(w, 200, map[string]any{"jobs": jobs})
	})
	mux.HandleFunc("GET /api/v1/bulk/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		write(w, 200, advance())
	})
	mux.HandleFunc("GET /api/v1/bulk/{id}/results", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		res := []any{}
		for i := 1; f.job != nil && i <= f.job["done"].(int); i++ {
			r := map[string]any{"task_id": task(i)["id"], "ok": i < 3, "at": at(0)}
			if i == 3 {
				r["error"] = "task 01a2…03 moved while the action was applied; look again and retry"
			}
			res = append(res, r)
		}
		write(w, 200, map[string]any{"results": res, "next_cursor": ""})
	})
	mux.HandleFunc("GET /api/v1/audit", func(w http.ResponseWriter, r *http.Request) {
		entries := []any{
			map[string]any{"at": at(time.Minute), "actor": "anonymous:bob", "action": "operator_retry", "task_id": task(1)["id"], "process": process,
				"from": "escalation", "to": "calling_api", "reason": "LiqPay limit incident is over", "job_id": "01a20000-0000-7000-8000-0000000000j1"},
			map[string]any{"at": at(5 * time.Minute), "actor": "token:alice", "action": "operator_edit", "task_id": task(2)["id"], "process": process,
				"from": "escalation", "to": "calling_api", "reason": "customer gave another card by phone", "detail": "changed card, order_id"},
			map[string]any{"at": at(9 * time.Minute), "actor": "token:alice", "action": "operator_cancel", "task_id": task(3)["id"], "process": process,
				"from": "escalation", "to": "escalation", "reason": "duplicate order"},
		}
		write(w, 200, map[string]any{"entries": entries, "next_cursor": ""})
	})
	return mux
}

// TestDashboard_bulkAndAuditContract drives the bulk and audit pages
// against a fake of their API contract, behind Protect and with
// authentication off (no token prompt): dry run first, then the job with
// its progress and results, then the audit list, then a cross-origin page
// that tries to start a job. TestDashboard covers the same pages against the real
// server once it serves these endpoints.
func TestDashboard_bulkAndAuditContract(t *testing.T) {
	exe := chromiumPath(t)
	fake := &contractAPI{}
	var refused atomic.Int32
	ts := httptest.NewServer(countRefusals(web.Protect(fake.handler()), &refused))
	defer ts.Close()
	b := newBrowser(t, exe)
	defer b.check()

	b.do("open bulk actions", chromedp.Navigate(ts.URL+"/#/bulk?process="+process+"&node=escalation&error_code=limit"),
		chromedp.WaitVisible(css("#bulk-form")))
	if eval[bool](b, `!!document.querySelector('#signin')`) {
		t.Fatal("the dashboard asks for a token although the server needs none")
	}
	b.do("name the operator", chromedp.SendKeys(css("#actor-name"), "bob"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#actor-name').dispatchEvent(new Event('change'))`))
	b.waitFor("the filter", `document.querySelector('#bulk-node').value === 'escalation' && document.querySelector('#bulk-error-code').value === 'limit'`)
	if !eval[bool](b, `document.querySelector('#bulk-start').disabled`) {
		t.Error("a job can be started before a dry run")
	}
	b.do("dry run", chromedp.SetValue(css("#bulk-rate"), "5"),
		chromedp.SendKeys(css("#bulk-reason"), "LiqPay limit incident is over"),
		chromedp.Click(css("#bulk-preview")))
	b.waitFor("the count", `document.querySelector('#bulk-count[data-count="3"]') && document.querySelectorAll('#bulk-sample tbody tr').length === 3`)
	if got := eval[string](b, `document.querySelector('#bulk-start').textContent`); got != "Retry 3 tasks" {
		t.Errorf("the start button says %q", got)
	}
	b.screenshot("contract-bulk-dry-run")

	// Changing the filter asks for a new dry run.
	b.do("change the filter", chromedp.SendKeys(css("#bulk-older-than"), "10m"))
	b.waitFor("start to be disabled", `document.querySelector('#bulk-start').disabled`)
	b.do("dry run again", chromedp.Click(css("#bulk-preview")))
	b.waitFor("start to be enabled", `!document.querySelector('#bulk-start').disabled`)

	b.do("start", chromedp.Click(css("#bulk-start")))
	b.waitFor("the job to finish", `document.querySelector('#job-status[data-status="done"]') && document.querySelectorAll('#results tbody tr[data-task]').length === 3`)
	if n := eval[int](b, `document.querySelectorAll('#results tr[data-ok="false"]').length`); n != 1 {
		t.Errorf("%d failed results shown, want 1", n)
	}
	b.screenshot("contract-bulk-job")

	fake.mu.Lock()
	bodies, actors := fake.bodies, fake.actors
	fake.mu.Unlock()
	if len(bodies) != 3 {
		t.Fatalf("the page sent %d bulk requests, want 2 dry runs and a job: %v", len(bodies), bodies)
	}
	want := map[string]any{
		"action": "retry", "reason": "LiqPay limit incident is over", "rate": float64(5), "dry_run": false,
		"filter": map[string]any{"process": process, "node": "escalation", "status": "escalated", "error_code": "limit", "older_than": "10m"},
	}
	got, _ := json.Marshal(bodies[2])
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) {
		t.Errorf("job request\n got %s\nwant %s", got, wantJSON)
	}
	if bodies[0]["dry_run"] != true || actors[2] != "bob" {
		t.Errorf("first body %v, actor %q", bodies[0], actors[2])
	}

	b.do("open the audit log", chromedp.Click(css(`#nav a[data-nav="audit"]`)), chromedp.WaitVisible(css("#audit")))
	b.waitFor("3 entries", `document.querySelectorAll('#audit tbody tr[data-action]').length === 3`)
	if txt := eval[string](b, `document.querySelector('#audit tbody').textContent`); !strings.Contains(txt, "customer gave another card by phone") || !strings.Contains(txt, "token:alice") {
		t.Errorf("the audit list shows %q", txt)
	}
	b.screenshot("contract-audit")

	// Another origin's page cannot make the API act: its POST reaches the
	// server and is refused before any handler runs.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>evil</title><script>
fetch(%q, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
  body: '{"action":"cancel","filter":{"process":"liqpay-hold"},"reason":"x","dry_run":false}'})
  .finally(() => { document.title = "sent"; });
</script>`, ts.URL+"/api/v1/bulk")
	}))
	defer evil.Close()
	b.do("visit another origin", chromedp.Navigate(evil.URL))
	b.waitFor("its request", `document.title === "sent"`)
	fake.mu.Lock()
	n := len(fake.bodies)
	fake.mu.Unlock()
	if n != 3 || refused.Load() != 1 {
		t.Errorf("after a cross-origin POST: %d bulk requests handled (want 3), %d refused (want 1)", n, refused.Load())
	}
}

// countRefusals counts the 403 answers of h.
func countRefusals(h http.Handler, n *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: 200}
		h.ServeHTTP(sw, r)
		if sw.status == http.StatusForbidden {
			n.Add(1)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

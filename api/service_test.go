package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/api"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

func TestAuth(t *testing.T) {
	t.Parallel()

	t.Run("on", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{token: "s3cret"})
		id := b.submit("r1", input("o1", cardOK))["id"].(string)
		protected := []request{
			{method: "POST", path: "/api/v1/processes/" + process + "/tasks", body: `{"ref":"r2","data":{}}`},
			{method: "GET", path: "/api/v1/tasks/" + id},
			{method: "GET", path: "/api/v1/tasks"},
			{method: "POST", path: "/api/v1/tasks/" + id + "/retry"},
			{method: "POST", path: "/api/v1/tasks/" + id + "/move", body: `{"to":"held"}`},
			{method: "POST", path: "/api/v1/tasks/" + id + "/cancel"},
			{method: "POST", path: "/api/v1/tasks/" + id + "/edit", body: `{"data":{}}`},
			{method: "POST", path: "/api/v1/processes/" + process + "/tasks/r1/callback", body: `{}`},
			{method: "GET", path: "/api/v1/processes"},
			{method: "GET", path: "/api/v1/processes/" + process},
		}
		for _, header := range []string{"", "Bearer wrong", "Basic czNjcmV0", "Bearer s3cret-and-more", "Bearer"} {
			for _, req := range protected {
				req.noAuth = true
				if header != "" {
					req.header = map[string]string{"Authorization": header}
				}
				r := b.do(req)
				if r.status != http.StatusUnauthorized || r.errorCode(t) != "unauthorized" {
					t.Errorf("%s %s with %q: %d %s", req.method, req.path, header, r.status, r.body)
				}
				if r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s: no WWW-Authenticate header", req.method, req.path)
				}
			}
		}
		r := b.do(request{method: "GET", path: "/api/v1/tasks/" + id, noAuth: true, header: map[string]string{"Authorization": "bearer s3cret"}})
		want(t, r, http.StatusOK)

		for _, path := range []string{"/healthz", "/metrics", "/api/v1/openapi.json"} {
			want(t, b.do(request{method: "GET", path: path, noAuth: true}), http.StatusOK)
		}
		r = b.do(request{method: "POST", path: "/callbacks/nope", body: "data=x&signature=y", contentType: formType, noAuth: true})
		want(t, r, http.StatusNotFound)
	})

	t.Run("off", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		r := b.do(request{method: "POST", path: "/api/v1/processes/" + process + "/tasks",
			body: `{"ref":"r1","data":` + input("o1", cardOK) + `}`, header: map[string]string{api.ActorHeader: "billing-svc"}})
		want(t, r, http.StatusCreated)
		task := b.get("/api/v1/tasks/" + r.json(t)["id"].(string)).json(t)
		if h := task["history"].([]any)[0].(map[string]any); h["actor"] != "anonymous:billing-svc" {
			t.Errorf("submit recorded actor %v", h["actor"])
		}
	})
}

func TestRouting(t *testing.T) {
	t.Parallel()
	b := setup(t, options{token: "s3cret"})

	t.Run("unknown route", func(t *testing.T) {
		for _, path := range []string{"/nope", "/api/v1/nope", "/api/v2/tasks", "/callbacks/"} {
			r := b.get(path)
			want(t, r, http.StatusNotFound)
			if c := r.errorCode(t); c != "not_found" {
				t.Errorf("%s: code %q", path, c)
			}
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		cases := []struct{ method, path, allow string }{
			{"DELETE", "/api/v1/tasks/01900000-0000-7000-8000-000000000000", "GET, HEAD"},
			{"GET", "/api/v1/tasks/01900000-0000-7000-8000-000000000000/retry", "POST"},
			{"PUT", "/api/v1/processes/" + process + "/tasks", "POST"},
			{"GET", "/callbacks/abc", "POST"},
			{"POST", "/healthz", "GET, HEAD"},
		}
		for _, c := range cases {
			r := b.do(request{method: c.method, path: c.path})
			want(t, r, http.StatusMethodNotAllowed)
			if code := r.errorCode(t); code != "method_not_allowed" {
				t.Errorf("%s %s: code %q", c.method, c.path, code)
			}
			if got := r.header.Get("Allow"); got != c.allow {
				t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
			}
		}
	})
	t.Run("the sandbox is mounted", func(t *testing.T) {
		r := b.do(request{method: "POST", path: "/sandbox/liqpay/api/request", body: "data=e30=&signature=x", contentType: formType, noAuth: true})
		want(t, r, http.StatusOK)
		if got := r.json(t); got["err_code"] == nil {
			t.Errorf("sandbox answer %v", got)
		}
	})
}

func TestProcesses(t *testing.T) {
	t.Parallel()
	b := setup(t, options{faults: liqpay.Faults{DropCallback: true}})
	id := b.submit("r1", input("o1", cardOK))["id"].(string)
	b.awaitStatus(id, "waiting")

	type view struct {
		Name, Title, Version, Start, Graph string
		Input                              struct {
			Fields []struct {
				Name, Type, Sensitive string
				Required              bool
				Enum                  []string
			}
		}
		Nodes []struct {
			Name, Kind string
			Edges      []struct{ Outcome, To string }
			Counts     struct {
				Now   map[string]int
				Total int
			}
		}
	}
	check := func(t *testing.T, v view) {
		t.Helper()
		if v.Name != process || v.Version == "" || v.Start != "calling_api" || !strings.HasPrefix(v.Graph, "flowchart") {
			t.Errorf("process %+v", v)
		}
		fields := map[string]string{}
		for _, f := range v.Input.Fields {
			fields[f.Name] = f.Type + "/" + f.Sensitive
			if f.Name == "currency" && (!f.Required || len(f.Enum) != 3) {
				t.Errorf("currency field %+v", f)
			}
		}
		if fields["card"] != "string/pan" || fields["card_cvv"] != "string/secret" || fields["amount"] != "decimal/" {
			t.Errorf("fields %v", fields)
		}
		nodes := map[string]int{}
		for _, n := range v.Nodes {
			nodes[n.Name+"/"+n.Kind] = n.Counts.Now["waiting"]
			if n.Name == "calling_api" && (len(n.Edges) != 2 || n.Edges[0].Outcome != "next" || n.Edges[0].To != waitNode) {
				t.Errorf("calling_api edges %+v", n.Edges)
			}
		}
		if c, ok := nodes[waitNode+"/callback"]; !ok || c != 1 {
			t.Errorf("nodes %v: want one task waiting in %s", nodes, waitNode)
		}
	}

	t.Run("one", func(t *testing.T) {
		r := b.get("/api/v1/processes/" + process)
		want(t, r, http.StatusOK)
		var v view
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatal(err)
		}
		check(t, v)
	})
	t.Run("all", func(t *testing.T) {
		r := b.get("/api/v1/processes")
		want(t, r, http.StatusOK)
		var list struct{ Processes []view }
		if err := json.Unmarshal(r.body, &list); err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, p := range list.Processes {
			if p.Name == process {
				found = true
				check(t, p)
			}
		}
		if !found {
			t.Fatalf("%s is not among %d processes", process, len(list.Processes))
		}
	})
	t.Run("unknown", func(t *testing.T) {
		r := b.get("/api/v1/processes/nope")
		want(t, r, http.StatusNotFound)
		if c := r.errorCode(t); c != "not_found" {
			t.Errorf("code %q", c)
		}
	})
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	r := b.get("/healthz")
	want(t, r, http.StatusOK)
	if s := r.json(t)["status"]; s != "ok" {
		t.Errorf("status %v", s)
	}
	b.st.Close()
	r = b.get("/healthz")
	want(t, r, http.StatusServiceUnavailable)
	if s := r.json(t)["status"]; s != "unavailable" {
		t.Errorf("status %v", s)
	}
	r = b.get("/api/v1/tasks")
	want(t, r, http.StatusServiceUnavailable)
	if c := r.errorCode(t); c != "unavailable" {
		t.Errorf("code %q", c)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit("r1", input("o1", cardOK))["id"].(string)
	b.awaitStatus(id, "succeeded")
	want(t, b.get("/nope"), http.StatusNotFound)

	r := b.get("/metrics")
	want(t, r, http.StatusOK)
	text := string(r.body)
	for _, s := range []string{
		api.MetricTasksArrived + `{node="held",process="liqpay-hold"} 1`,
		api.MetricTransitions + `{event="next",from="calling_api",process="liqpay-hold",to="receive_callback"} 1`,
		api.MetricCallDuration + `_count{node="calling_api",outcome="ok",process="liqpay-hold"} 1`,
		api.MetricCallbacks + `{result="accepted"} 1`,
		api.MetricTimerLag + `_count 0`,
		api.MetricCommitDuration + `_count`,
		api.MetricHTTPRequests + `{route="POST /api/v1/processes/{process}/tasks",status="201"} 1`,
		api.MetricHTTPRequests + `{route="unmatched",status="404"} 1`,
		api.MetricHTTPDuration + `_count{route="GET /api/v1/tasks/{id}"}`,
	} {
		if !strings.Contains(text, s) {
			t.Errorf("metrics lack %s", s)
		}
	}

	// A waiting task shows in the gauge.
	w := setup(t, options{faults: liqpay.Faults{DropCallback: true}})
	id = w.submit("r1", input("o1", cardOK))["id"].(string)
	w.awaitStatus(id, "waiting")
	if text := string(w.get("/metrics").body); !strings.Contains(text, api.MetricTasks+`{node="receive_callback",process="liqpay-hold",status="waiting"} 1`) {
		t.Errorf("metrics lack the waiting task:\n%s", text)
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	b := setup(t, options{token: "s3cret"})
	id := b.submit("r1", input("o1", cardOK))["id"].(string)
	b.awaitStatus(id, "succeeded")
	b.post("/api/v1/processes/"+process+"/tasks", `{"ref":"r2","data":{"card":"4242424242424241"}}`)

	logs := b.logs.String()
	var lines int
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec["msg"] != "http request" {
			continue
		}
		lines++
		for _, k := range []string{"method", "route", "status", "duration_ms"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("access log line lacks %s: %s", k, line)
			}
		}
	}
	if lines < 3 {
		t.Errorf("%d access log lines", lines)
	}
	for _, secret := range []string{cardOK, "4242424242424241", `"123"`, "s3cret", liqpay.DefaultPrivateKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	if !strings.Contains(logs, `"code":"invalid"`) {
		t.Errorf("the access log does not name the error code")
	}
}

func TestOpenAPI_served(t *testing.T) {
	t.Parallel()
	b := setup(t, options{token: "s3cret"})
	r := b.do(request{method: "GET", path: "/api/v1/openapi.json", noAuth: true})
	want(t, r, http.StatusOK)
	if doc := r.json(t); doc["openapi"] == nil || doc["paths"] == nil {
		t.Errorf("not an OpenAPI document")
	}
}

package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

func TestSubmit(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	path := "/api/v1/processes/" + process + "/tasks"

	t.Run("created, then the same task again, then a conflict", func(t *testing.T) {
		body := fmt.Sprintf(`{"ref":"order-1","data":%s}`, input("o1", cardOK))
		first := b.post(path, body)
		want(t, first, http.StatusCreated)
		task := first.json(t)
		id := task["id"].(string)
		if loc := first.header.Get("Location"); loc != "/api/v1/tasks/"+id {
			t.Errorf("Location = %q", loc)
		}
		for _, k := range []string{"id", "ref", "process", "version", "node", "status", "data", "created", "updated", "entered"} {
			if _, ok := task[k]; !ok {
				t.Errorf("task has no %s: %v", k, task)
			}
		}
		data := task["data"].(map[string]any)
		if data["card"] != "424242******4242" || data["card_cvv"] != "***" {
			t.Errorf("sensitive fields not masked: card %v, cvv %v", data["card"], data["card_cvv"])
		}
		if data["amount"] != json.Number("5.50") && data["amount"] != "5.50" {
			t.Errorf("amount = %#v, want exactly 5.50", data["amount"])
		}

		again := b.post(path, body)
		want(t, again, http.StatusOK)
		if got := again.json(t)["id"]; got != id {
			t.Errorf("same ref and data gave task %v, want %v", got, id)
		}

		other := b.post(path, fmt.Sprintf(`{"ref":"order-1","data":%s}`, input("o2", cardOK)))
		want(t, other, http.StatusConflict)
		if c := other.errorCode(t); c != "conflict" {
			t.Errorf("code %q, want conflict", c)
		}

		done := b.awaitStatus(id, "succeeded")
		if done["node"] != "held" || len(done["history"].([]any)) == 0 {
			t.Errorf("finished task: node %v, history %v", done["node"], done["history"])
		}
		if strings.Contains(string(b.get("/api/v1/tasks/"+id).body), cardOK) {
			t.Error("the task shows the card number")
		}
	})

	t.Run("without a ref", func(t *testing.T) {
		want(t, b.post(path, fmt.Sprintf(`{"data":%s}`, input("o-noref", cardOK))), http.StatusCreated)
	})

	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"unknown process", "/api/v1/processes/nope/tasks", `{"ref":"x","data":{}}`, 404, "not_found"},
		{"malformed JSON", path, `{"ref":`, 400, "invalid"},
		{"not an object", path, `[1,2]`, 400, "invalid"},
		{"data not an object", path, `{"ref":"x","data":[1]}`, 400, "invalid"},
		{"unknown top-level key", path, `{"ref":"x","data":{},"priority":1}`, 400, "invalid"},
		{"trailing data", path, `{"ref":"x","data":{}} {}`, 400, "invalid"},
		{"empty body", path, ``, 400, "invalid"},
		{"ref with a slash", path, fmt.Sprintf(`{"ref":"a/b","data":%s}`, input("o3", cardOK)), 400, "invalid"},
		{"too deep", path, `{"ref":"x","data":{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`, 400, "invalid"},
		{"too large", path, `{"ref":"x","data":{"a":"` + strings.Repeat("x", 1<<20) + `"}}`, 413, "too_large"},
		{"input schema", path, `{"ref":"x","data":{"amount":"5.5.5","currency":"GBP","card":"4242424242424241"}}`, 422, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := b.post(c.path, c.body)
			want(t, r, c.status)
			if got := r.errorCode(t); got != c.code {
				t.Errorf("code %q, want %q", got, c.code)
			}
		})
	}

	t.Run("input schema failures list every field", func(t *testing.T) {
		r := b.post(path, `{"ref":"x","data":{"amount":"5.5.5","currency":"GBP","card":"4242424242424241","colour":"red"}}`)
		want(t, r, http.StatusUnprocessableEntity)
		fields := map[string]bool{}
		for _, f := range r.json(t)["error"].(map[string]any)["fields"].([]any) {
			fields[f.(map[string]any)["field"].(string)] = true
		}
		for _, f := range []string{"amount", "currency", "card", "colour", "phone", "card_cvv"} {
			if !fields[f] {
				t.Errorf("fields %v lack %s", fields, f)
			}
		}
		if strings.Contains(string(r.body), "4242424242424241") {
			t.Error("the error repeats the card number")
		}
	})
}

func TestTask(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit("r1", input("o1", cardOK))["id"].(string)

	t.Run("found", func(t *testing.T) {
		task := b.awaitStatus(id, "succeeded")
		if task["ref"] != "r1" || task["process"] != process {
			t.Errorf("task %v", task)
		}
		if _, ok := task["finished"]; !ok {
			t.Error("a finished task has no finished time")
		}
	})
	t.Run("not found", func(t *testing.T) {
		r := b.get("/api/v1/tasks/01900000-0000-7000-8000-000000000000")
		want(t, r, http.StatusNotFound)
		if c := r.errorCode(t); c != "not_found" {
			t.Errorf("code %q", c)
		}
	})
	t.Run("not a UUID", func(t *testing.T) {
		want(t, b.get("/api/v1/tasks/nope"), http.StatusBadRequest)
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ok1 := b.submit("ok-1", input("o1", cardOK))["id"].(string)
	ok2 := b.submit("ok-2", input("o2", cardOK))["id"].(string)
	bad := b.submit("bad-1", input("o3", cardLimit))["id"].(string)
	b.awaitStatus(ok1, "succeeded")
	b.awaitStatus(ok2, "succeeded")
	b.awaitStatus(bad, "escalated")

	ids := func(r response) []string {
		t.Helper()
		want(t, r, http.StatusOK)
		var out []string
		for _, task := range r.json(t)["tasks"].([]any) {
			out = append(out, task.(map[string]any)["id"].(string))
		}
		return out
	}
	cases := []struct {
		name, query string
		want        []string
	}{
		{"all, newest first", "", []string{bad, ok2, ok1}},
		{"by process", "?process=" + process, []string{bad, ok2, ok1}},
		{"by status", "?status=succeeded", []string{ok2, ok1}},
		{"by process and node", "?process=" + process + "&node=escalation", []string{bad}},
		{"by node alone", "?node=held", []string{ok2, ok1}},
		{"by ref", "?process=" + process + "&ref=ok-2", []string{ok2}},
		{"by error code", "?error_code=limit", []string{bad}},
		{"older than an hour", "?older_than=1h", nil},
		{"unknown process", "?process=nope", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ids(b.get("/api/v1/tasks" + c.query))
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}

	t.Run("pages", func(t *testing.T) {
		var seen []string
		cursor := ""
		for range 5 {
			r := b.get("/api/v1/tasks?limit=2&cursor=" + cursor)
			seen = append(seen, ids(r)...)
			cursor = r.json(t)["next_cursor"].(string)
			if cursor == "" {
				break
			}
		}
		if strings.Join(seen, ",") != strings.Join([]string{bad, ok2, ok1}, ",") {
			t.Errorf("pages gave %v", seen)
		}
	})

	for _, q := range []string{"?status=lost", "?limit=0", "?limit=1001", "?limit=x", "?older_than=soon", "?older_than=-1m", "?colour=red", "?cursor=zz"} {
		t.Run("refuses "+q, func(t *testing.T) {
			r := b.get("/api/v1/tasks" + q)
			want(t, r, http.StatusBadRequest)
			if c := r.errorCode(t); c != "invalid" {
				t.Errorf("code %q", c)
			}
		})
	}
}

func TestOperatorActions(t *testing.T) {
	t.Parallel()
	b := setup(t, options{faults: liqpay.Faults{DropCallback: true}})
	tasks := "/api/v1/tasks/"

	t.Run("retry and edit an escalated task", func(t *testing.T) {
		id := b.submit("limit", input("o1", cardLimit))["id"].(string)
		task := b.awaitStatus(id, "escalated")
		if e := task["error"].(map[string]any); e["code"] != "limit" || e["node"] != "calling_api" {
			t.Fatalf("error %v", e)
		}
		r := b.do(request{method: "POST", path: tasks + id + "/retry", body: `{"reason":"card topped up"}`,
			header: map[string]string{"X-Conveyor-Actor": "alice"}})
		want(t, r, http.StatusOK)
		b.await(id, "escalated again", func(task map[string]any) bool {
			return task["status"] == "escalated" && len(task["history"].([]any)) >= 4
		})

		r = b.post(tasks+id+"/edit", `{"data":{"order_id":"o1b","card":"`+cardOK+`","card_cvv":"321"},"reason":"new card"}`)
		want(t, r, http.StatusOK)
		if strings.Contains(string(r.body), cardOK) || strings.Contains(string(r.body), `"321"`) {
			t.Errorf("the edit's answer shows sensitive data: %s", r.body)
		}
		task = b.awaitStatus(id, "waiting")
		var retried, edited bool
		for _, h := range task["history"].([]any) {
			h := h.(map[string]any)
			switch h["event"] {
			case "operator_retry":
				retried = h["actor"] == "anonymous:alice" && h["reason"] == "card topped up"
			case "operator_edit":
				edited = h["actor"] == "anonymous" && strings.Contains(h["detail"].(string), "card")
			}
		}
		if !retried || !edited {
			t.Errorf("history lacks the operator's actions: %v", task["history"])
		}
	})

	t.Run("move and cancel a waiting task", func(t *testing.T) {
		id := b.submit("wait", input("o2", cardOK))["id"].(string)
		b.awaitStatus(id, "waiting")
		want(t, b.post(tasks+id+"/move", `{"to":"nowhere"}`), http.StatusBadRequest)
		want(t, b.post(tasks+id+"/move", `{}`), http.StatusBadRequest)
		want(t, b.post(tasks+id+"/move", `{"to":"escalation","reason":"looks stuck","data":{}}`), http.StatusBadRequest)
		r := b.post(tasks+id+"/move", `{"to":"escalation","reason":"looks stuck"}`)
		want(t, r, http.StatusOK)
		if n := r.json(t)["node"]; n != "escalation" {
			t.Errorf("moved to %v", n)
		}
		r = b.post(tasks+id+"/cancel", ``)
		want(t, r, http.StatusOK)
		if s := r.json(t)["status"]; s != "canceled" {
			t.Errorf("status %v after cancel", s)
		}
		for _, action := range []string{"cancel", "retry"} {
			r = b.post(tasks+id+"/"+action, `{"reason":"again"}`)
			want(t, r, http.StatusConflict)
			if c := r.errorCode(t); c != "conflict" {
				t.Errorf("%s: code %q", action, c)
			}
		}
		want(t, b.post(tasks+id+"/edit", `{"data":{"order_id":"x"}}`), http.StatusConflict)
		want(t, b.post(tasks+id+"/move", `{"to":"calling_api"}`), http.StatusConflict)
	})

	t.Run("unknown and malformed tasks", func(t *testing.T) {
		for _, action := range []string{"retry", "move", "cancel", "edit"} {
			r := b.post(tasks+"01900000-0000-7000-8000-000000000000/"+action, `{"to":"held","data":{"a":1}}`)
			if action == "retry" || action == "cancel" {
				want(t, r, http.StatusBadRequest) // to and data are not theirs
				r = b.post(tasks+"01900000-0000-7000-8000-000000000000/"+action, `{}`)
			} else if action == "move" {
				r = b.post(tasks+"01900000-0000-7000-8000-000000000000/"+action, `{"to":"held"}`)
			} else {
				r = b.post(tasks+"01900000-0000-7000-8000-000000000000/"+action, `{"data":{"a":1}}`)
			}
			want(t, r, http.StatusNotFound)
			want(t, b.post(tasks+"nope/"+action, `{}`), http.StatusBadRequest)
		}
		want(t, b.post(tasks+"01900000-0000-7000-8000-000000000000/retry", `{"reason":"`+strings.Repeat("x", 1001)+`"}`), http.StatusBadRequest)
	})
}

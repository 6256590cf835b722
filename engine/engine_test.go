package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/store"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

const (
	pan         = "4242424242424242"
	cvv         = "987"
	paymentData = `{"amount": "12.50", "card": "4242424242424242", "cvv": "987"}`
)

func TestEngine_Submit(t *testing.T) {
	t.Parallel()

	t.Run("instant nodes run to the final node in one commit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		v := b.submit("internal", "r1", `{"rounds": 3}`)
		if v.Status != store.StatusSucceeded || v.Node != "done" {
			t.Fatalf("got %s in %s, want succeeded in done", v.Status, v.Node)
		}
		if got := fmt.Sprint(v.Data["n"], v.Data["trace"]); got != "3 map[started:true]" {
			t.Errorf("data n, trace = %s", got)
		}
		want := "submit next next again next again next default"
		if got := events(b.history(v.ID)); got != want {
			t.Errorf("history events = %q, want %q", got, want)
		}
	})

	t.Run("same ref and data returns the same task; different data conflicts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := b.submit("internal", "order-7", `{"rounds": 1}`)
		again, created, err := b.eng.Submit(context.Background(), engine.SubmitRequest{Process: "internal", Ref: "order-7", Data: decode(t, `{"rounds": 1}`)})
		if err != nil || created || again.ID != first.ID {
			t.Fatalf("resubmit = %v, created %v, err %v; want task %v, not created", again.ID, created, err, first.ID)
		}
		_, _, err = b.eng.Submit(context.Background(), engine.SubmitRequest{Process: "internal", Ref: "order-7", Data: decode(t, `{"rounds": 2}`)})
		if conveyor.ErrorCode(err) != conveyor.EConflict {
			t.Fatalf("different data: err %v, want conflict", err)
		}
	})

	t.Run("bad input is refused with every field named", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, _, err := b.eng.Submit(context.Background(), engine.SubmitRequest{Process: "payment", Data: decode(t, `{"amount": "1.2.3", "card": "4242424242424241", "extra": 1}`)})
		if conveyor.ErrorCode(err) != conveyor.EInvalid {
			t.Fatalf("err %v, want invalid", err)
		}
		for _, want := range []string{"amount", "card: is not a valid card number", "cvv: is required", "extra"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "4242424242424241") {
			t.Errorf("error echoes the card number: %q", err)
		}
		_, _, err = b.eng.Submit(context.Background(), engine.SubmitRequest{Process: "nope"})
		if conveyor.ErrorCode(err) != conveyor.ENotFound {
			t.Errorf("unknown process: err %v, want not_found", err)
		}
	})

	t.Run("an oversized task is refused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *engine.Config) { c.MaxTaskSize = 64 })
		_, _, err := b.eng.Submit(context.Background(), engine.SubmitRequest{Process: "payment", Data: decode(t, paymentData)})
		if conveyor.ErrorCode(err) != conveyor.ETooLarge {
			t.Fatalf("err %v, want too_large", err)
		}
	})

	t.Run("the loop guard escalates a task that never waits", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *engine.Config) { c.LoopLimit = 20 })
		v := b.submit("internal", "", `{"rounds": 1000}`)
		if v.Status != store.StatusEscalated || v.Error == nil || v.Error.Code != "loop_guard" {
			t.Fatalf("got %s with error %+v, want escalated loop_guard", v.Status, v.Error)
		}
	})

	t.Run("a run-time expression error escalates with the failed node", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		v := b.submit("internal", "", `{"rounds": 99}`)
		if v.Status != store.StatusEscalated || v.Node != "escalation" || v.Error.Code != "expression_error" || v.Error.Node != "check" {
			t.Fatalf("got %s in %s with %+v; want escalated in escalation, expression_error at check", v.Status, v.Node, v.Error)
		}
		if v.Data["err_code"] != "expression_error" || v.Data["failed_node"] != "check" {
			t.Errorf("data err fields = %v %v", v.Data["err_code"], v.Data["failed_node"])
		}
	})
}

func TestEngine_call(t *testing.T) {
	t.Parallel()

	t.Run("the request carries the data, secrets and an idempotency key", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		v := b.submit("payment", "p1", paymentData)
		task := b.waitIn(v.ID, "wait", store.StatusWaiting)
		reqs := b.provider.seen()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(reqs))
		}
		r := reqs[0]
		if r.Header.Get("X-Api-Key") != "k-123" || r.Header.Get("Idempotency-Key") == "" {
			t.Errorf("headers %v", r.Header)
		}
		if r.Body["card"] != pan || r.Body["cvv"] != cvv || r.Body["amount"] != "12.50" {
			t.Errorf("body %v", r.Body)
		}
		if r.Body["callback"] != "http://conveyor.test/callbacks/"+task.Token || r.Body["key"] != r.Header.Get("Idempotency-Key") {
			t.Errorf("callback %v / key %v", r.Body["callback"], r.Body["key"])
		}
		if _, ok := r.Body["mode"]; ok {
			t.Errorf("an absent optional field was sent: %v", r.Body["mode"])
		}
		if task.TimerAt != b.clock.Now().Add(60*time.Second) {
			t.Errorf("callback timer at %v, want now+60s", task.TimerAt)
		}
	})

	t.Run("card data is sealed at rest, masked in views, and the secret erased after the call", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		v := b.submit("payment", "", paymentData)
		task := b.waitIn(v.ID, "wait", store.StatusWaiting)
		if bytes.Contains(task.Data, []byte(pan)) || bytes.Contains(task.Data, []byte(`"`+cvv+`"`)) {
			t.Errorf("stored data holds card data in clear: %s", task.Data)
		}
		if bytes.Contains(task.Data, []byte(`"cvv"`)) {
			t.Errorf("cvv not erased after the call: %s", task.Data)
		}
		view, err := b.eng.Task(context.Background(), v.ID)
		if err != nil {
			t.Fatal(err)
		}
		if view.Data["card"] != "424242******4242" {
			t.Errorf("card shown as %v", view.Data["card"])
		}
		if v.Data["cvv"] != "***" {
			t.Errorf("cvv shown as %v before erasure", v.Data["cvv"])
		}
	})

	t.Run("5xx is retried with exponential backoff under the same key", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.provider.script(answer{status: 503, body: `{}`}, answer{status: 502, body: `{}`}, answer{status: 200, body: `{"status":"pending"}`})
		v := b.submit("payment", "", paymentData)
		task := b.waitFor(v.ID, "retry scheduled", func(t *store.Task) bool { return t.Timer == "retry" })
		if task.Attempt != 2 || task.TimerAt != b.clock.Now().Add(time.Second) {
			t.Fatalf("after 1st failure: attempt %d at %v, want 2 at now+1s", task.Attempt, task.TimerAt)
		}
		b.advance(time.Second)
		task = b.waitFor(v.ID, "second retry", func(t *store.Task) bool { return t.Attempt == 3 && t.Timer == "retry" })
		if task.TimerAt != b.clock.Now().Add(2*time.Second) {
			t.Errorf("2nd delay ends %v, want now+2s", task.TimerAt)
		}
		b.advance(2 * time.Second)
		b.waitIn(v.ID, "wait", store.StatusWaiting)
		reqs := b.provider.seen()
		if len(reqs) != 3 {
			t.Fatalf("%d attempts, want 3", len(reqs))
		}
		for _, r := range reqs {
			if k := r.Header.Get("Idempotency-Key"); k != reqs[0].Header.Get("Idempotency-Key") || k == "" {
				t.Errorf("attempt keys differ: %q vs %q", k, reqs[0].Header.Get("Idempotency-Key"))
			}
		}
		if got := events(b.history(v.ID)); got != "submit retry_scheduled retry retry_scheduled retry next" {
			t.Errorf("history %q", got)
		}
	})

	t.Run("exhausted retries escalate with the HTTP status", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.provider.script(answer{status: 503, body: `{}`})
		v := b.submit("payment", "", paymentData)
		b.waitFor(v.ID, "retry 2", func(t *store.Task) bool { return t.Attempt == 2 && t.Timer == "retry" })
		b.advance(time.Second)
		b.waitFor(v.ID, "retry 3", func(t *store.Task) bool { return t.Attempt == 3 && t.Timer == "retry" })
		b.advance(2 * time.Second)
		task := b.waitIn(v.ID, "escalation", store.StatusEscalated)
		if task.Error.Code != "http_503" || task.Error.Node != "charge" || !strings.Contains(task.Error.Description, "after 3 attempts") {
			t.Errorf("error %+v", task.Error)
		}
	})

	t.Run("4xx is not retried", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.provider.script(answer{status: 400, body: `{"error":"bad"}`})
		v := b.submit("payment", "", paymentData)
		task := b.waitIn(v.ID, "escalation", store.StatusEscalated)
		if task.Error.Code != "http_400" || len(b.provider.seen()) != 1 {
			t.Errorf("error %+v after %d attempts", task.Error, len(b.provider.seen()))
		}
	})

	t.Run("a reply case maps to an error with the provider's code", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.provider.script(answer{status: 200, body: `{"status":"declined","code":"limit"}`})
		v := b.submit("payment", "", paymentData)
		task := b.waitIn(v.ID, "escalation", store.StatusEscalated)
		if task.Error.Code != "limit" || task.Error.Description != "card declined" {
			t.Errorf("error %+v", task.Error)
		}
	})

	t.Run("a reply case can lead elsewhere", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.provider.script(answer{status: 200, body: `{"status":"done"}`})
		v := b.submit("payment", "", paymentData)
		b.waitIn(v.ID, "settle", store.StatusWaiting)
	})

	t.Run("a reply over the size cap escalates the task with its old data", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *engine.Config) { c.MaxTaskSize = 600 })
		b.provider.script(answer{status: 200, body: `{"status":"pending","junk":"` + strings.Repeat("x", 1000) + `"}`})
		v := b.submit("payment", "", paymentData)
		task := b.waitIn(v.ID, "escalation", store.StatusEscalated)
		if task.Error.Code != "task_too_large" || bytes.Contains(task.Data, []byte("xxxx")) {
			t.Errorf("error %+v, data %d bytes", task.Error, len(task.Data))
		}
	})
}

func TestEngine_Callback(t *testing.T) {
	t.Parallel()

	waiting := func(t *testing.T) (*bundle, *engine.TaskView, string) {
		b := setup(t)
		v := b.submit("payment", "c1", paymentData)
		b.waitIn(v.ID, "wait", store.StatusWaiting)
		return b, v, b.token(v.ID)
	}

	t.Run("accepted moves the task on; the same callback again is a duplicate", func(t *testing.T) {
		t.Parallel()
		b, v, token := waiting(t)
		body := fmt.Sprintf(`{"task_id": %q, "status": "ok", "amount": "12.5"}`, v.ID)
		res, err := b.callback(token, body)
		if err != nil || res.Result != engine.CallbackAccepted || res.Node != "settle" {
			t.Fatalf("callback = %+v, %v; want accepted, now in settle", res, err)
		}
		res, err = b.callback(token, body)
		if err != nil || res.Result != engine.CallbackDuplicate {
			t.Fatalf("repeat = %+v, %v; want duplicate", res, err)
		}
		if got := events(b.history(v.ID)); got != "submit next next ok" {
			t.Errorf("history %q: the duplicate must not move the task", got)
		}
	})

	t.Run("by ref, a different callback to a task that moved on is not_waiting and recorded", func(t *testing.T) {
		t.Parallel()
		b, v, _ := waiting(t)
		res, err := b.eng.Callback(context.Background(), engine.CallbackRequest{Process: "payment", Ref: "c1", ContentType: "application/json", Body: []byte(`{"status":"ok"}`)})
		if err != nil || res.Result != engine.CallbackAccepted {
			t.Fatalf("by ref: %+v %v", res, err)
		}
		res, err = b.eng.Callback(context.Background(), engine.CallbackRequest{Process: "payment", Ref: "c1", ContentType: "application/json", Body: []byte(`{"status":"failed"}`)})
		if err != nil || res.Result != engine.CallbackNotWaiting {
			t.Fatalf("late: %+v %v; want not_waiting", res, err)
		}
		h := b.history(v.ID)
		if last := h[len(h)-1]; last.Event != "late_callback" || last.From != "settle" {
			t.Errorf("last history entry %+v, want late_callback in settle", last)
		}
	})

	t.Run("unknown token, unknown ref", func(t *testing.T) {
		t.Parallel()
		b, _, _ := waiting(t)
		for _, req := range []engine.CallbackRequest{{Token: "no-such-token"}, {Process: "payment", Ref: "nope"}} {
			res, err := b.eng.Callback(context.Background(), req)
			if err != nil || res.Result != engine.CallbackUnknown {
				t.Errorf("%+v: got %+v %v, want unknown", req, res, err)
			}
		}
	})

	t.Run("a body failing the schema, the guard or task_id_path is refused and changes nothing", func(t *testing.T) {
		t.Parallel()
		b, v, token := waiting(t)
		for name, body := range map[string]string{
			"schema":       `{"status": "maybe"}`,
			"guard":        `{"status": "ok", "amount": "99"}`,
			"task_id_path": `{"status": "ok", "task_id": "01900000-0000-7000-8000-000000000000"}`,
			"not json":     `status=ok`,
		} {
			res, err := b.callback(token, body)
			if conveyor.ErrorCode(err) != conveyor.EInvalid {
				t.Errorf("%s: got %+v %v, want invalid", name, res, err)
			}
		}
		b.waitIn(v.ID, "wait", store.StatusWaiting)
		if got := events(b.history(v.ID)); got != "submit next" {
			t.Errorf("history %q: refusals must not be recorded as moves", got)
		}
	})

	t.Run("a callback node times out to escalation; a later callback is recorded", func(t *testing.T) {
		t.Parallel()
		b, v, token := waiting(t)
		b.advance(59 * time.Second)
		b.waitIn(v.ID, "wait", store.StatusWaiting)
		b.advance(time.Second)
		task := b.waitIn(v.ID, "escalation", store.StatusEscalated)
		if task.Error.Code != "callback_timeout" || task.Error.Node != "wait" {
			t.Errorf("error %+v", task.Error)
		}
		res, err := b.callback(token, `{"status": "ok"}`)
		if err != nil || res.Result != engine.CallbackNotWaiting || res.Status != store.StatusEscalated {
			t.Fatalf("late callback: %+v %v", res, err)
		}
		if got := events(b.history(v.ID)); got != "submit next timeout late_callback" {
			t.Errorf("history %q", got)
		}
	})

	t.Run("a callback that beats the call's reply is kept and applied", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var early engine.CallbackResult
		b.provider.script(answer{status: 200, body: `{"status":"pending"}`, before: func(r seen) {
			token := strings.TrimPrefix(r.Body["callback"].(string), "http://conveyor.test/callbacks/")
			early, _ = b.callback(token, `{"status": "ok"}`)
		}})
		v := b.submit("payment", "", paymentData)
		b.waitIn(v.ID, "settle", store.StatusWaiting)
		if early.Result != engine.CallbackAccepted || early.Node != "charge" {
			t.Errorf("early callback answered %+v, want accepted while in charge", early)
		}
		if got := events(b.history(v.ID)); got != "submit early_callback next next ok" {
			t.Errorf("history %q", got)
		}
	})
}

func TestEngine_timers(t *testing.T) {
	t.Parallel()

	t.Run("a delay fires on time, also after a restart", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.provider.script(answer{status: 200, body: `{"status":"done"}`})
		v := b.submit("payment", "", paymentData)
		b.waitIn(v.ID, "settle", store.StatusWaiting)
		b.restart()
		b.advance(29 * time.Second)
		b.waitIn(v.ID, "settle", store.StatusWaiting)
		b.advance(time.Second)
		b.waitIn(v.ID, "done", store.StatusSucceeded)
	})

	t.Run("an escalation with a timeout lets the task fail", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.provider.script(answer{status: 400, body: `{}`})
		v := b.submit("payment", "", paymentData)
		b.waitIn(v.ID, "escalation", store.StatusEscalated)
		b.advance(time.Hour)
		task := b.waitIn(v.ID, "failed", store.StatusFailed)
		if task.Finished.IsZero() {
			t.Errorf("finished time not set")
		}
	})

	t.Run("the timer service fires on its own when the clock passes a timer", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *engine.Config) { c.TimerPoll = 10 * time.Millisecond })
		b.provider.script(answer{status: 200, body: `{"status":"done"}`})
		v := b.submit("payment", "", paymentData)
		b.waitIn(v.ID, "settle", store.StatusWaiting)
		b.clock.Advance(31 * time.Second) // no FireDue: the service must notice
		b.waitIn(v.ID, "done", store.StatusSucceeded)
	})

	t.Run("a runnable task left by a stopped engine resumes on start", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.provider.script(answer{status: 503, body: `{}`})
		v := b.submit("payment", "", paymentData)
		b.waitFor(v.ID, "retry scheduled", func(t *store.Task) bool { return t.Timer == "retry" })
		b.provider.script(answer{status: 200, body: `{"status":"pending"}`})
		b.restart()
		b.advance(time.Second)
		b.waitIn(v.ID, "wait", store.StatusWaiting)
	})
}

func TestEngine_operator(t *testing.T) {
	t.Parallel()

	escalated := func(t *testing.T) (*bundle, *engine.TaskView) {
		b := setup(t)
		b.provider.script(answer{status: 400, body: `{}`}, answer{status: 200, body: `{"status":"pending"}`})
		v := b.submit("payment", "", paymentData)
		b.waitIn(v.ID, "escalation", store.StatusEscalated)
		return b, v
	}
	who := engine.Action{Actor: "alice", Reason: "provider fixed"}

	t.Run("retry re-runs the failed node and records who and why", func(t *testing.T) {
		t.Parallel()
		b, v := escalated(t)
		got, err := b.eng.Retry(context.Background(), v.ID, who)
		if err != nil {
			t.Fatal(err)
		}
		if got.Node != "charge" || got.Error != nil || got.Data["err_code"] != nil {
			t.Errorf("after retry: %s %+v %v", got.Node, got.Error, got.Data["err_code"])
		}
		b.waitIn(v.ID, "wait", store.StatusWaiting)
		h := b.history(v.ID)
		var op store.HistoryEntry
		for _, e := range h {
			if e.Event == "operator_retry" {
				op = e
			}
		}
		if op.Actor != "alice" || op.Reason != "provider fixed" || op.From != "escalation" || op.To != "charge" {
			t.Errorf("operator entry %+v", op)
		}
		if _, err := b.eng.Retry(context.Background(), v.ID, who); conveyor.ErrorCode(err) != conveyor.EConflict {
			t.Errorf("retry of a waiting task: %v, want conflict", err)
		}
	})

	t.Run("move sends the task to a named node", func(t *testing.T) {
		t.Parallel()
		b, v := escalated(t)
		got, err := b.eng.Move(context.Background(), v.ID, "done", who)
		if err != nil || got.Status != store.StatusSucceeded {
			t.Fatalf("move: %+v %v", got, err)
		}
		if _, err := b.eng.Move(context.Background(), v.ID, "nowhere", who); conveyor.ErrorCode(err) != conveyor.EConflict {
			t.Errorf("moving a finished task: %v, want conflict", err)
		}
	})

	t.Run("move to a missing node is invalid", func(t *testing.T) {
		t.Parallel()
		b, v := escalated(t)
		if _, err := b.eng.Move(context.Background(), v.ID, "nowhere", who); conveyor.ErrorCode(err) != conveyor.EInvalid {
			t.Errorf("err %v, want invalid", err)
		}
	})

	t.Run("edit changes data, then retries; the history names fields, not values", func(t *testing.T) {
		t.Parallel()
		b, v := escalated(t)
		got, err := b.eng.Edit(context.Background(), v.ID, decode(t, `{"amount": "10.00", "cvv": "321", "mode": null}`), who)
		if err != nil {
			t.Fatal(err)
		}
		if got.Data["amount"] != "10.00" || got.Node != "charge" {
			t.Errorf("after edit: %v in %s", got.Data["amount"], got.Node)
		}
		b.waitIn(v.ID, "wait", store.StatusWaiting)
		reqs := b.provider.seen()
		if last := reqs[len(reqs)-1]; last.Body["amount"] != "10.00" || last.Body["cvv"] != "321" {
			t.Errorf("retried request body %v", last.Body)
		}
		for _, e := range b.history(v.ID) {
			if e.Event == "operator_edit" && (e.Detail != "changed amount, cvv, mode" || strings.Contains(e.Detail, "321")) {
				t.Errorf("edit entry %+v", e)
			}
		}
		if _, err := b.eng.Edit(context.Background(), v.ID, decode(t, `{"amount": "x"}`), who); conveyor.ErrorCode(err) != conveyor.EConflict {
			t.Errorf("edit of a waiting task: %v, want conflict", err)
		}
	})

	t.Run("edit refuses data that fails the schema", func(t *testing.T) {
		t.Parallel()
		b, v := escalated(t)
		if _, err := b.eng.Edit(context.Background(), v.ID, decode(t, `{"amount": "ten"}`), who); conveyor.ErrorCode(err) != conveyor.EInvalid {
			t.Errorf("err %v, want invalid", err)
		}
	})

	t.Run("cancel ends a waiting task where it stands", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		v := b.submit("payment", "", paymentData)
		b.waitIn(v.ID, "wait", store.StatusWaiting)
		got, err := b.eng.Cancel(context.Background(), v.ID, who)
		if err != nil || got.Status != store.StatusCanceled || got.Node != "wait" || got.TimerAt != nil {
			t.Fatalf("cancel: %+v %v", got, err)
		}
		if _, err := b.eng.Cancel(context.Background(), v.ID, who); conveyor.ErrorCode(err) != conveyor.EConflict {
			t.Errorf("second cancel: %v, want conflict", err)
		}
		b.advance(time.Hour) // the canceled task's old timer must not move it
		b.waitIn(v.ID, "wait", store.StatusCanceled)
	})
}

func TestEngine_Purge(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *engine.Config) { c.Retention, c.PurgeInterval = 24*time.Hour, 1000*time.Hour })
	done := b.submit("internal", "keep-ref", `{"rounds": 1}`)
	b.clock.Advance(23 * time.Hour)
	if n, err := b.eng.Purge(context.Background()); err != nil || n != 0 {
		t.Fatalf("purge before retention: %d, %v", n, err)
	}
	again, created, err := b.eng.Submit(context.Background(), engine.SubmitRequest{Process: "internal", Ref: "keep-ref", Data: decode(t, `{"rounds": 1}`)})
	if err != nil || created || again.ID != done.ID {
		t.Fatalf("while retained, the same submit returns the finished task: %v %v %v", again, created, err)
	}
	b.clock.Advance(2 * time.Hour)
	if n, err := b.eng.Purge(context.Background()); err != nil || n != 1 {
		t.Fatalf("purge after retention: %d, %v", n, err)
	}
	if _, err := b.eng.Task(context.Background(), done.ID); conveyor.ErrorCode(err) != conveyor.ENotFound {
		t.Errorf("purged task still readable: %v", err)
	}
	fresh := b.submit("internal", "keep-ref", `{"rounds": 1}`)
	if fresh.ID == done.ID {
		t.Errorf("the ref was not freed by the purge")
	}
}

// recorder is a Metrics that keeps what it is told.
type recorder struct {
	mu        sync.Mutex
	lags      []time.Duration
	callbacks map[string]int
	calls     map[string]int
}

func (r *recorder) Transition(string, string, string, string) {}
func (r *recorder) Commit(time.Duration, error)               {}
func (r *recorder) Call(_, node, outcome string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[node+" "+outcome]++
}
func (r *recorder) Callback(result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.callbacks[result]++
}
func (r *recorder) TimerLag(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lags = append(r.lags, d)
}

func TestEngine_timerCatchUp(t *testing.T) {
	t.Parallel()
	rec := &recorder{callbacks: map[string]int{}, calls: map[string]int{}}
	b := setup(t, func(c *engine.Config) { c.TimerBatch, c.TimerPoll, c.Metrics = 16, 10*time.Millisecond, rec })
	b.provider.script(answer{status: 200, body: `{"status":"done"}`})
	const n = 100
	var ids []uuid.UUID
	for range n {
		v := b.submit("payment", "", paymentData)
		ids = append(ids, v.ID)
	}
	for _, id := range ids {
		b.waitIn(id, "settle", store.StatusWaiting)
	}
	b.stop() // downtime: every delay falls due while nobody runs
	b.clock.Advance(time.Hour)
	b.start()
	for _, id := range ids {
		b.waitIn(id, "done", store.StatusSucceeded) // the timer service catches up by itself, 16 at a time
	}
	fresh := b.submit("internal", "", `{"rounds": 2}`)
	if fresh.Status != store.StatusSucceeded {
		t.Errorf("new work during catch-up: %s", fresh.Status)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.lags) != n {
		t.Fatalf("timer lag observed %d times, want %d", len(rec.lags), n)
	}
	for _, l := range rec.lags {
		if l < 59*time.Minute || l > time.Hour {
			t.Errorf("lag %v, want about the downtime (1h minus the 30s delay)", l)
			break
		}
	}
	if rec.calls["charge ok"] != n {
		t.Errorf("calls observed %v", rec.calls)
	}
}

func TestEngine_Submit_storeDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_ = b.st.Close() // as if the disk went away under the engine
	_, _, err := b.eng.Submit(context.Background(), engine.SubmitRequest{Process: "internal", Data: decode(t, `{"rounds": 1}`)})
	if conveyor.ErrorCode(err) != conveyor.EUnavailable || strings.Contains(conveyor.ErrorMessage(err), "bolt") {
		t.Fatalf("err %v (%s), want unavailable with a message for callers", err, conveyor.ErrorMessage(err))
	}
	b.eng.Stop()
	b.eng = nil // already closed: skip the consistency check of a closed file
}

func TestEngine_Callback_lateRepeats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	v := b.submit("payment", "", paymentData)
	b.waitIn(v.ID, "wait", store.StatusWaiting)
	token := b.token(v.ID)
	b.advance(time.Minute)
	b.waitIn(v.ID, "escalation", store.StatusEscalated)
	for range 3 { // a provider retrying its late callback
		res, err := b.callback(token, `{"status": "ok"}`)
		if err != nil || res.Result != engine.CallbackNotWaiting {
			t.Fatalf("late callback: %+v %v", res, err)
		}
	}
	if got := events(b.history(v.ID)); got != "submit next timeout late_callback" {
		t.Errorf("history %q: a repeated late callback is recorded once", got)
	}
}

func TestEngine_New_missingConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.cfg
	cfg.Secrets = nil
	if _, err := engine.New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "secret api_key") {
		t.Errorf("missing secret: %v", err)
	}
	cfg = b.cfg
	cfg.Env = nil
	if _, err := engine.New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "env.PROVIDER_URL") {
		t.Errorf("missing env: %v", err)
	}
}

func TestEngine_call_onUnknown(t *testing.T) {
	t.Parallel()

	t.Run("a call in flight at a restart is not sent again but routed to on_unknown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.provider.script(answer{status: 503, body: `{}`}, answer{status: 200, body: `{"status":"pending"}`})
		v := b.submit("payment", "", paymentData)
		b.waitFor(v.ID, "retry scheduled", func(t *store.Task) bool { return t.Timer == "retry" })
		b.stop()
		// The durable state of "the retry timer fired and attempt 2 was on the
		// wire" when the process died: attempt 2 owed, no timer.
		st, err := bolt.Open(b.path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		task, _ := st.Task(context.Background(), v.ID)
		rev := task.Rev
		task.Timer, task.TimerAt = "", time.Time{}
		if err := st.Commit(context.Background(), store.Change{Task: task, Rev: rev}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		b.start()
		got := b.waitIn(v.ID, "wait", store.StatusWaiting)
		if n := len(b.provider.seen()); n != 1 {
			t.Errorf("the provider saw %d requests; the call of unknown outcome must not be resent", n)
		}
		if !bytes.Contains(got.Data, []byte(`"asked_status":true`)) || !strings.Contains(events(b.history(v.ID)), "unknown") {
			t.Errorf("history %q, data %s", events(b.history(v.ID)), got.Data)
		}
	})
}

// TestEngine_call_redirect: a provider's redirect to another host is not
// followed: a flow's URL decides where requests (and card data) go.
func TestEngine_call_redirect(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	other.Listener = ln
	other.Start()
	defer other.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	b := setup(t, func(c *engine.Config) { c.Env = map[string]string{"PROVIDER_URL": redirector.URL} })
	v := b.submit("payment", "", paymentData)
	for range 2 {
		b.waitFor(v.ID, "a retry", func(t *store.Task) bool { return t.Timer == "retry" })
		b.advance(10 * time.Second)
	}
	task := b.waitIn(v.ID, "escalation", store.StatusEscalated)
	if elsewhere.Load() != 0 {
		t.Errorf("the other host got %d requests", elsewhere.Load())
	}
	if task.Error.Code != "network_error" || !strings.Contains(task.Error.Description, "redirect to another host") {
		t.Errorf("error %+v", task.Error)
	}
}

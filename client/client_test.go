package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/api"
	"github.com/conveyor-dev/conveyor/client"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

const (
	process   = "liqpay-hold"
	cardOK    = "4242424242424242"
	cardLimit = "4000000000000002"
	token     = "s3cret"
)

// setup runs the API over a real engine, a bolt store in a temporary
// directory and the LiqPay sandbox (which records its callbacks but does not
// send them, so tasks wait until the test calls back), and returns a client
// of it and its URL.
func setup(t *testing.T) (*client.Client, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "conveyor.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sb := liqpay.New(liqpay.Config{Faults: liqpay.Faults{DropCallback: true}})
	t.Cleanup(func() { sb.Close() })
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFS(processes.Shipped(), ".")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, err := engine.New(context.Background(), engine.Config{
		Store: st, Definitions: defs, Loader: l, Key: engine.NewKey(), BaseURL: base, Logger: log,
		Env:     map[string]string{"LIQPAY_URL": base + "/sandbox/liqpay", "VIA_URL": base + "/sandbox/via"},
		Secrets: map[string]string{"liqpay_public_key": liqpay.DefaultPublicKey, "liqpay_private_key": liqpay.DefaultPrivateKey, "via_client_id": "system", "via_client_secret": "system123"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Stop)
	srv.Config.Handler = api.New(api.Config{Engine: eng, Token: token, Logger: log, SandboxLiqPay: sb})
	srv.Start()
	t.Cleanup(srv.Close)
	return client.New(srv.URL, token, srv.Client()), srv.URL
}

func data(order, card string) map[string]any {
	return map[string]any{"phone": "380950000001", "amount": json.Number("5.50"), "currency": "UAH", "description": "test",
		"order_id": order, "card": card, "card_exp_month": "12", "card_exp_year": "39", "card_cvv": "123", "ip": "127.0.0.1"}
}

// await polls a task until it has status, within a bounded time.
func await(t *testing.T, c *client.Client, id, status string) *client.Task {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		task, err := c.Task(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status == status {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %s in %s, never %s", id, task.Status, task.Node, status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// code asserts err is a *conveyor.Error with code.
func code(t *testing.T, err error, want string) *conveyor.Error {
	t.Helper()
	var e *conveyor.Error
	if !errors.As(err, &e) || e.Code != want {
		t.Fatalf("error %v (%T), want code %s", err, err, want)
	}
	if e.Message == "" {
		t.Errorf("error with code %s has no message", want)
	}
	return e
}

func TestClient_tasks(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	ctx := context.Background()

	task, created, err := c.Submit(ctx, process, "r1", data("o1", cardOK))
	if err != nil || !created {
		t.Fatalf("Submit: %v, created %v", err, created)
	}
	if task.ID == "" || task.Process != process || task.Ref != "r1" || task.Data["card"] != "424242******4242" {
		t.Errorf("task %+v", task)
	}
	if task.Data["amount"] != json.Number("5.50") {
		t.Errorf("amount %#v, want json.Number 5.50", task.Data["amount"])
	}
	again, created, err := c.Submit(ctx, process, "r1", data("o1", cardOK))
	if err != nil || created || again.ID != task.ID {
		t.Errorf("second Submit: %v, created %v, id %s", err, created, again.ID)
	}
	_, _, err = c.Submit(ctx, process, "r1", data("o2", cardOK))
	code(t, err, conveyor.EConflict)

	_, _, err = c.Submit(ctx, process, "r2", map[string]any{"amount": "x"})
	code(t, err, conveyor.EInvalid)
	var fields client.FieldErrors
	if !errors.As(err, &fields) || len(fields) < 2 {
		t.Errorf("fields %v", fields)
	}
	_, _, err = c.Submit(ctx, "nope", "r1", data("o1", cardOK))
	code(t, err, conveyor.ENotFound)

	waiting := await(t, c, task.ID, "waiting")
	if waiting.Node != "receive_callback" || len(waiting.History) < 2 || waiting.TimerAt == nil {
		t.Errorf("waiting task %+v", waiting)
	}

	page, err := c.List(ctx, client.ListOptions{Process: process, Status: "waiting", Limit: 10})
	if err != nil || len(page.Tasks) != 1 || page.Tasks[0].ID != task.ID || page.NextCursor != "" {
		t.Errorf("List: %v %+v", err, page)
	}
	page, err = c.List(ctx, client.ListOptions{OlderThan: time.Hour})
	if err != nil || len(page.Tasks) != 0 {
		t.Errorf("List older than an hour: %v %+v", err, page)
	}
	_, err = c.List(ctx, client.ListOptions{Status: "lost"})
	code(t, err, conveyor.EInvalid)

	_, err = c.Task(ctx, "01900000-0000-7000-8000-000000000000")
	code(t, err, conveyor.ENotFound)
}

func TestClient_operatorActions(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	c.Actor = "alice"
	ctx := context.Background()

	task, _, err := c.Submit(ctx, process, "limit", data("o1", cardLimit))
	if err != nil {
		t.Fatal(err)
	}
	task = await(t, c, task.ID, "escalated")
	if task.Error == nil || task.Error.Code != "limit" || task.Error.Node != "calling_api" {
		t.Fatalf("error %+v", task.Error)
	}
	if _, err := c.Retry(ctx, task.ID, "try again"); err != nil {
		t.Fatal(err)
	}
	await(t, c, task.ID, "escalated")
	fix := map[string]any{"order_id": "o1b", "card": cardOK, "card_cvv": "321"}
	if _, err := c.Edit(ctx, task.ID, fix, "new card"); err != nil {
		t.Fatal(err)
	}
	task = await(t, c, task.ID, "waiting")
	if _, err := c.Retry(ctx, task.ID, ""); conveyor.ErrorCode(err) != conveyor.EConflict {
		t.Errorf("Retry of a waiting task: %v", err)
	}
	moved, err := c.Move(ctx, task.ID, "escalation", "stuck")
	if err != nil || moved.Node != "escalation" {
		t.Fatalf("Move: %v %+v", err, moved)
	}
	if _, err := c.Move(ctx, task.ID, "nowhere", ""); conveyor.ErrorCode(err) != conveyor.EInvalid {
		t.Errorf("Move to nowhere: %v", err)
	}
	canceled, err := c.Cancel(ctx, task.ID, "customer left")
	if err != nil || canceled.Status != "canceled" || !canceled.Final() {
		t.Fatalf("Cancel: %v %+v", err, canceled)
	}
	final, err := c.Task(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	actors := map[string]string{}
	for _, h := range final.History {
		if strings.HasPrefix(h.Event, "operator_") {
			actors[h.Event] = h.Actor + "/" + h.Reason
		}
	}
	wantActors := map[string]string{
		"operator_retry": "token:alice/try again", "operator_edit": "token:alice/new card",
		"operator_move": "token:alice/stuck", "operator_cancel": "token:alice/customer left",
	}
	for k, v := range wantActors {
		if actors[k] != v {
			t.Errorf("%s recorded %q, want %q", k, actors[k], v)
		}
	}
}

func TestClient_callbackByRef(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	ctx := context.Background()
	task, _, err := c.Submit(ctx, process, "r1", data("o1", cardOK))
	if err != nil {
		t.Fatal(err)
	}
	await(t, c, task.ID, "waiting")
	d, sig, err := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{"status": "hold_wait", "order_id": "o1", "payment_id": 1})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(url.Values{"data": {d}, "signature": {sig}}.Encode())
	form := "application/x-www-form-urlencoded"

	results := []string{}
	for range 2 {
		res, err := c.CallbackByRef(ctx, process, "r1", form, body)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res.Result)
	}
	await(t, c, task.ID, "succeeded")
	other, _ := url.ParseQuery(string(body))
	d2, sig2, _ := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{"status": "hold_wait", "order_id": "o1", "payment_id": 2})
	other.Set("data", d2)
	other.Set("signature", sig2)
	res, err := c.CallbackByRef(ctx, process, "r1", form, []byte(other.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	results = append(results, res.Result)
	res, err = c.CallbackByRef(ctx, process, "nope", form, body)
	if err != nil {
		t.Fatal(err)
	}
	results = append(results, res.Result)
	if got := strings.Join(results, ","); got != "accepted,duplicate,not_waiting,unknown" {
		t.Errorf("results %s", got)
	}

	// A body by ref to a finished task is the service's own (it holds the API
	// token): recorded as late, not checked against a provider's envelope.
	res, err = c.CallbackByRef(ctx, process, "r1", form, []byte("data=x&signature=y"))
	if err != nil || res.Result != "not_waiting" {
		t.Errorf("late body by ref: %+v %v, want not_waiting", res, err)
	}
}

func TestClient_processes(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	ctx := context.Background()
	list, err := c.Processes(ctx)
	if err != nil || !slices.ContainsFunc(list, func(p *client.Process) bool { return p.Name == process }) {
		t.Fatalf("Processes: %v; want %s among %d", err, process, len(list))
	}
	p, err := c.Process(ctx, process)
	if err != nil || p.Start != "calling_api" || len(p.Nodes) == 0 || len(p.Input.Fields) == 0 || p.Graph == "" {
		t.Fatalf("Process: %v %+v", err, p)
	}
	_, err = c.Process(ctx, "nope")
	code(t, err, conveyor.ENotFound)
}

func TestClient_errors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("wrong token", func(t *testing.T) {
		t.Parallel()
		_, u := setup(t)
		bad := client.New(u, "wrong", nil)
		_, err := bad.Processes(ctx)
		code(t, err, conveyor.EUnauthorized)
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		u := srv.URL
		srv.Close()
		_, err := client.New(u, "", nil).Processes(ctx)
		code(t, err, conveyor.EUnavailable)
	})
	t.Run("an answer without a JSON error", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>bad gateway</html>")
		}))
		defer srv.Close()
		_, err := client.New(srv.URL, "", nil).Task(ctx, "x")
		e := code(t, err, conveyor.EUnavailable)
		if !strings.Contains(e.Message, "502") {
			t.Errorf("message %q", e.Message)
		}
	})
}

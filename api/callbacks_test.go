package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// holdWait is a LiqPay payment object announcing a held payment.
func holdWait(order string, paymentID int) map[string]any {
	return map[string]any{"action": "hold", "status": "hold_wait", "order_id": order, "payment_id": paymentID,
		"amount": json.Number("5.50"), "currency": "UAH", "public_key": liqpay.DefaultPublicKey}
}

func TestCallback_byToken(t *testing.T) {
	t.Parallel()
	// The sandbox records its callbacks but never sends them: the test
	// delivers them itself.
	b := setup(t, options{faults: liqpay.Faults{DropCallback: true}})
	id := b.submit("r1", input("o1", cardOK))["id"].(string)
	b.awaitStatus(id, "waiting")
	u, err := url.Parse(b.callbackURL("o1"))
	if err != nil {
		t.Fatal(err)
	}
	path := u.Path
	token := strings.TrimPrefix(path, "/callbacks/")
	body := envelope(t, liqpay.DefaultPrivateKey, holdWait("o1", 1))
	cb := func(path, body, contentType string) response {
		return b.do(request{method: "POST", path: path, body: body, contentType: contentType, noAuth: true})
	}

	t.Run("bad signature", func(t *testing.T) {
		r := cb(path, envelope(t, "wrong-key", holdWait("o1", 1)), formType)
		want(t, r, http.StatusUnauthorized)
		if c := r.errorCode(t); c != "unauthorized" {
			t.Errorf("code %q", c)
		}
	})
	t.Run("not an envelope", func(t *testing.T) {
		r := cb(path, `{"status":"hold_wait"}`, "application/json")
		want(t, r, http.StatusBadRequest)
		if c := r.errorCode(t); c != "invalid" {
			t.Errorf("code %q", c)
		}
	})
	t.Run("accepted", func(t *testing.T) {
		r := cb(path, body, formType)
		want(t, r, http.StatusOK)
		got := r.json(t)
		if got["result"] != "accepted" || got["task_id"] != id || got["node"] == nil || got["status"] == nil {
			t.Errorf("answer %v", got)
		}
		b.awaitStatus(id, "succeeded")
	})
	t.Run("duplicate", func(t *testing.T) {
		r := cb(path, body, formType)
		want(t, r, http.StatusOK)
		if got := r.json(t); got["result"] != "duplicate" || got["task_id"] != id {
			t.Errorf("answer %v", got)
		}
	})
	t.Run("not waiting", func(t *testing.T) {
		r := cb(path, envelope(t, liqpay.DefaultPrivateKey, holdWait("o1", 2)), formType)
		want(t, r, http.StatusConflict)
		if got := r.json(t); got["result"] != "not_waiting" || got["task_id"] != id || got["status"] != "succeeded" {
			t.Errorf("answer %v", got)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		r := cb("/callbacks/no-such-token", body, formType)
		want(t, r, http.StatusNotFound)
		if got := r.json(t); len(got) != 1 || got["result"] != "unknown" {
			t.Errorf("answer %v", got)
		}
	})
	t.Run("too large", func(t *testing.T) {
		want(t, cb(path, strings.Repeat("x", 1<<20+1), formType), http.StatusRequestEntityTooLarge)
	})
	t.Run("the token stays out of the log", func(t *testing.T) {
		logs := b.logs.String()
		if strings.Contains(logs, token) {
			t.Errorf("the log shows the callback token")
		}
		if !strings.Contains(logs, `"route":"POST /callbacks/{token}"`) {
			t.Errorf("the log has no access line for the callback route")
		}
	})
}

func TestCallback_byRef(t *testing.T) {
	t.Parallel()
	b := setup(t, options{token: "s3cret", faults: liqpay.Faults{DropCallback: true}})
	id := b.submit("r1", input("o1", cardOK))["id"].(string)
	b.awaitStatus(id, "waiting")
	path := "/api/v1/processes/" + process + "/tasks/r1/callback"
	body := envelope(t, liqpay.DefaultPrivateKey, holdWait("o1", 1))

	r := b.do(request{method: "POST", path: path, body: body, contentType: formType, noAuth: true})
	want(t, r, http.StatusUnauthorized)

	r = b.do(request{method: "POST", path: path, body: body, contentType: formType})
	want(t, r, http.StatusOK)
	if got := r.json(t); got["result"] != "accepted" || got["task_id"] != id {
		t.Errorf("answer %v", got)
	}
	b.awaitStatus(id, "succeeded")

	r = b.do(request{method: "POST", path: "/api/v1/processes/" + process + "/tasks/nope/callback", body: body, contentType: formType})
	want(t, r, http.StatusNotFound)
	if got := r.json(t); got["result"] != "unknown" {
		t.Errorf("answer %v", got)
	}
}

func TestCallback_byNode(t *testing.T) {
	t.Parallel()
	b := setup(t, options{token: "s3cret", faults: liqpay.Faults{DropCallback: true}})
	id := b.submit("r1", input("o1", cardOK))["id"].(string)
	b.awaitStatus(id, "waiting")
	path := "/api/v1/processes/" + process + "/nodes/" + waitNode + "/callback"
	payment := holdWait("o1", 1)
	payment["obj_id"] = id
	cb := func(path, body string) response {
		return b.do(request{method: "POST", path: path, body: body, contentType: formType, noAuth: true})
	}

	t.Run("bad signature", func(t *testing.T) {
		want(t, cb(path, envelope(t, "wrong-key", payment)), http.StatusUnauthorized)
	})
	t.Run("no task id", func(t *testing.T) {
		want(t, cb(path, envelope(t, liqpay.DefaultPrivateKey, holdWait("o1", 1))), http.StatusBadRequest)
	})
	t.Run("a node that takes no callbacks", func(t *testing.T) {
		want(t, cb("/api/v1/processes/"+process+"/nodes/calling_api/callback", envelope(t, liqpay.DefaultPrivateKey, payment)), http.StatusBadRequest)
	})
	t.Run("unknown node", func(t *testing.T) {
		r := cb("/api/v1/processes/"+process+"/nodes/nope/callback", envelope(t, liqpay.DefaultPrivateKey, payment))
		want(t, r, http.StatusNotFound)
		if got := r.json(t); got["result"] != "unknown" {
			t.Errorf("answer %v", got)
		}
	})
	t.Run("accepted without the bearer token", func(t *testing.T) {
		r := cb(path, envelope(t, liqpay.DefaultPrivateKey, payment))
		want(t, r, http.StatusOK)
		if got := r.json(t); got["result"] != "accepted" || got["task_id"] != id {
			t.Errorf("answer %v", got)
		}
		b.awaitStatus(id, "succeeded")
	})
}

func TestCallback_providerEndToEnd(t *testing.T) {
	t.Parallel()
	// The sandbox calls the task's callback URL itself.
	b := setup(t, options{token: "s3cret"})
	id := b.submit("r1", input("o1", cardOK))["id"].(string)
	task := b.awaitStatus(id, "succeeded")
	if task["node"] != "held" {
		t.Errorf("node %v", task["node"])
	}
}

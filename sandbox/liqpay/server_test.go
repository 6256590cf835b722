package liqpay_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// prefix is where the tests mount the sandbox, as the conveyor binary does.
const prefix = "/sandbox/liqpay"

// wait bounds every wait for something asynchronous.
const wait = 5 * time.Second

// bundle is a running sandbox on loopback with a callback receiver.
type bundle struct {
	sandbox  *liqpay.Server
	endpoint string // .../sandbox/liqpay/api/request
	hooks    *receiver
	clock    *fakeClock
	logs     *syncBuffer
	replies  *syncBuffer // every reply body, for the no-PAN check
}

// setup starts a sandbox configured by cfg (Clock, Logger and a fast
// CallbackBackoff are filled in) behind http.StripPrefix, plus a receiver.
func setup(t *testing.T, cfg liqpay.Config) *bundle {
	t.Helper()
	b := &bundle{hooks: newReceiver(t), clock: newFakeClock(), logs: &syncBuffer{}, replies: &syncBuffer{}}
	cfg.Clock = b.clock.Now
	cfg.Logger = slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.CallbackBackoff == 0 {
		cfg.CallbackBackoff = 5 * time.Millisecond
	}
	b.sandbox = liqpay.New(cfg)
	mux := http.NewServeMux()
	mux.Handle(prefix+"/", http.StripPrefix(prefix, b.sandbox))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = b.sandbox.Close() })
	b.endpoint = srv.URL + prefix + liqpay.PathRequest
	return b
}

// holdParams is a valid hold of 10.50 UAH on card for orderID, with
// callbacks to the bundle's receiver.
func (b *bundle) holdParams(orderID, card string) map[string]any {
	return map[string]any{
		"version":        "3",
		"public_key":     liqpay.DefaultPublicKey,
		"action":         "hold",
		"amount":         "10.50",
		"currency":       "UAH",
		"description":    "test hold",
		"order_id":       orderID,
		"card":           card,
		"card_exp_month": "12",
		"card_exp_year":  "30",
		"card_cvv":       "987",
		"phone":          "380950000001",
		"ip":             "127.0.0.1",
		"server_url":     b.hooks.url,
	}
}

// request is a non-hold action on orderID.
func request(action, orderID string, extra ...any) map[string]any {
	p := map[string]any{"version": 3, "public_key": liqpay.DefaultPublicKey, "action": action, "order_id": orderID}
	for i := 0; i+1 < len(extra); i += 2 {
		p[extra[i].(string)] = extra[i+1]
	}
	return p
}

// with returns a copy of p with the given key/value pairs set.
func with(p map[string]any, kv ...any) map[string]any {
	q := make(map[string]any, len(p))
	for k, v := range p {
		q[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		q[kv[i].(string)] = kv[i+1]
	}
	return q
}

// call signs params with the default key, POSTs them and returns the
// decoded reply; the HTTP status must be 200.
func (b *bundle) call(t *testing.T, params map[string]any) map[string]any {
	t.Helper()
	data, sig, err := liqpay.Encode(liqpay.DefaultPrivateKey, params)
	if err != nil {
		t.Fatal(err)
	}
	status, body := b.post(t, http.DefaultClient, url.Values{"data": {data}, "signature": {sig}})
	if status != http.StatusOK {
		t.Fatalf("HTTP status = %d, want 200; body %v", status, body)
	}
	return body
}

// post sends a raw form and returns the HTTP status and decoded JSON body.
func (b *bundle) post(t *testing.T, client *http.Client, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := client.PostForm(b.endpoint, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	_, _ = b.replies.Write(append(raw, '\n'))
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON", ct)
	}
	return resp.StatusCode, decodeJSON(t, raw)
}

func decodeJSON(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("reply %q is not a JSON object: %v", raw, err)
	}
	return body
}

// expect checks reply fields; a want value of nil means "absent".
func expect(t *testing.T, reply map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		got, present := reply[k]
		switch {
		case v == nil && present:
			t.Errorf("%s = %v, want it absent", k, got)
		case v != nil && !present:
			t.Errorf("%s is absent, want %v", k, v)
		case v != nil && asText(got) != asText(v):
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if t.Failed() {
		t.Logf("reply: %v", reply)
		t.FailNow()
	}
}

func asText(v any) string {
	raw, _ := json.Marshal(v)
	return strings.Trim(string(raw), `"`)
}

func ok(status string) map[string]any {
	return map[string]any{"result": "ok", "status": status, "err_code": nil}
}

func failed(errCode string) map[string]any {
	return map[string]any{"result": "error", "status": "error", "err_code": errCode}
}

// hook is one callback the receiver got.
type hook struct {
	data, signature string
	at              time.Time
}

// params verifies the hook's signature with the default key and decodes it.
func (h hook) params(t *testing.T) map[string]any {
	t.Helper()
	p, err := liqpay.Decode(liqpay.DefaultPrivateKey, h.data, h.signature)
	if err != nil {
		t.Fatalf("callback does not verify: %v", err)
	}
	return p
}

// receiver is the merchant's server_url.
type receiver struct {
	url    string
	got    chan hook
	failN  atomic.Int32 // answer 500 to this many more callbacks
	bodies *syncBuffer
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: make(chan hook, 100), bodies: &syncBuffer{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := req.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.failN.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		data := req.PostForm.Get("data")
		raw, _ := base64.StdEncoding.DecodeString(data)
		_, _ = r.bodies.Write(append(raw, '\n'))
		r.got <- hook{data: data, signature: req.PostForm.Get("signature"), at: time.Now()}
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/liqpay/callback"
	return r
}

// next waits (bounded) for the next callback.
func (r *receiver) next(t *testing.T) hook {
	t.Helper()
	select {
	case h := <-r.got:
		return h
	case <-time.After(wait):
		t.Fatal("no callback arrived")
		return hook{}
	}
}

// nextStatus waits for the next callback, checks its signature and returns
// its status.
func (r *receiver) nextStatus(t *testing.T) string {
	t.Helper()
	return asText(r.next(t).params(t)["status"])
}

// none checks that no callback is waiting; call it after Server.Close,
// which waits for deliveries in flight.
func (r *receiver) none(t *testing.T) {
	t.Helper()
	select {
	case h := <-r.got:
		t.Fatalf("unexpected callback %s", h.data)
	default:
	}
}

// fakeClock is a sandbox clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestServer_Hold(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		card string
		want map[string]any
	}{
		{"success card is held at once", liqpay.CardSuccess,
			map[string]any{"result": "ok", "status": "hold_wait", "token": nil, "is_3ds": false}},
		{"OTP card waits for the OTP", liqpay.CardOTP,
			map[string]any{"result": "ok", "status": "otp_verify"}},
		{"3DS card waits for 3-D Secure", liqpay.Card3DS,
			map[string]any{"result": "ok", "status": "3ds_verify", "is_3ds": true}},
		{"CVV card waits for the CVV", liqpay.CardCVV,
			map[string]any{"result": "ok", "status": "cvv_verify"}},
		{"limit card fails", liqpay.CardLimit,
			map[string]any{"result": "error", "status": "failure", "err_code": "limit"}},
		{"insufficient-funds card fails", liqpay.CardInsufficient,
			map[string]any{"result": "error", "status": "failure", "err_code": "9859"}},
		{"any other valid card is held", "5555555555554444",
			map[string]any{"result": "ok", "status": "hold_wait", "sender_card_type": "mc"}},
		{"a card failing Luhn is err_card", "4242424242424241", failed("err_card")},
		{"a card that is not digits is err_card", "4242-abcd", failed("err_card")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, liqpay.Config{})
			expect(t, b.call(t, b.holdParams("order-1", c.card)), c.want)
		})
	}

	t.Run("answers the payment object", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		created := b.clock.Now().UnixMilli()
		reply := b.call(t, with(b.holdParams("order-1", liqpay.CardSuccess), "sender_first_name", "Taras"))
		expect(t, reply, map[string]any{
			"action": "hold", "type": "hold", "version": 3, "order_id": "order-1",
			"amount": 10.5, "currency": "UAH", "description": "test hold",
			"sender_card_mask2": "424242*42", "sender_card_type": "visa", "sender_card_country": 804,
			"sender_phone": "380950000001", "sender_first_name": "Taras", "ip": "127.0.0.1",
			"public_key": liqpay.DefaultPublicKey, "create_date": created, "end_date": created,
			"card": nil, "card_cvv": nil,
		})
		for _, field := range []string{"payment_id", "transaction_id", "acq_id", "liqpay_order_id"} {
			if _, present := reply[field]; !present {
				t.Errorf("%s is missing", field)
			}
		}
	})
	t.Run("payment ids increase", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		first := b.call(t, b.holdParams("a", liqpay.CardSuccess))["payment_id"].(json.Number)
		second := b.call(t, b.holdParams("b", liqpay.CardSuccess))["payment_id"].(json.Number)
		if f, _ := first.Int64(); func() bool { s, _ := second.Int64(); return s <= f }() {
			t.Fatalf("payment ids %s then %s, want increasing", first, second)
		}
	})
	t.Run("3DS answers redirect_to and a token", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		reply := b.call(t, b.holdParams("o", liqpay.Card3DS))
		if to := asText(reply["redirect_to"]); !strings.HasPrefix(to, "http://127.0.0.1:") || !strings.Contains(to, prefix+"/3ds/") {
			t.Errorf("redirect_to = %q, want a URL below the sandbox", to)
		}
		if asText(reply["token"]) == "" {
			t.Error("token is missing")
		}
	})
	t.Run("accepts numbers as JSON numbers", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		reply := b.call(t, with(b.holdParams("o", liqpay.CardSuccess), "version", 3, "amount", json.Number("7.34"), "card_exp_month", json.Number("12")))
		expect(t, reply, map[string]any{"status": "hold_wait", "amount": 7.34})
	})
	t.Run("a duplicate order_id is refused even for an exact repeat", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		params := b.holdParams("order-1", liqpay.CardSuccess)
		expect(t, b.call(t, params), ok("hold_wait"))
		expect(t, b.call(t, params), failed("order_id_duplicate"))
		expect(t, b.call(t, with(params, "amount", "1")), failed("order_id_duplicate"))
	})
	t.Run("order_id is unique per public_key only", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{Keys: map[string]string{liqpay.DefaultPublicKey: liqpay.DefaultPrivateKey, "sandbox_other": "other-key"}})
		expect(t, b.call(t, b.holdParams("order-1", liqpay.CardSuccess)), ok("hold_wait"))
		data, sig, _ := liqpay.Encode("other-key", with(b.holdParams("order-1", liqpay.CardSuccess), "public_key", "sandbox_other"))
		_, reply := b.post(t, http.DefaultClient, url.Values{"data": {data}, "signature": {sig}})
		expect(t, reply, ok("hold_wait"))
	})
	t.Run("prepare answers the outcome without creating a payment", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		expect(t, b.call(t, with(b.holdParams("o", liqpay.CardOTP), "prepare", "1")), map[string]any{"result": "ok", "status": "otp_verify", "token": nil})
		expect(t, b.call(t, with(b.holdParams("o", liqpay.CardLimit), "prepare", "1")), map[string]any{"result": "error", "status": "failure", "err_code": "limit"})
		expect(t, b.call(t, request("status", "o")), failed("payment_not_found"))
		expect(t, b.call(t, b.holdParams("o", liqpay.CardSuccess)), ok("hold_wait"))
	})
	t.Run("an expired card fails with 9851", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		reply := b.call(t, with(b.holdParams("o", liqpay.CardSuccess), "card_exp_month", "12", "card_exp_year", "25"))
		expect(t, reply, map[string]any{"status": "failure", "err_code": "9851"})
	})
	t.Run("rejects invalid parameters", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		base := b.holdParams("o", liqpay.CardSuccess)
		for _, c := range []struct {
			kv   []any
			code string
		}{
			{[]any{"amount", nil}, "err_missing"},
			{[]any{"amount", "0"}, "err_wrong"},
			{[]any{"amount", "-1"}, "err_wrong"},
			{[]any{"amount", "1.005"}, "err_wrong"},
			{[]any{"amount", "1e3"}, "err_wrong"},
			{[]any{"currency", "GBP"}, "err_wrong_currency"},
			{[]any{"description", ""}, "err_missing"},
			{[]any{"order_id", nil}, "err_missing"},
			{[]any{"order_id", strings.Repeat("x", 256)}, "err_wrong"},
			{[]any{"order_id", map[string]any{"a": 1}}, "err_wrong"},
			{[]any{"card", nil}, "err_missing"},
			{[]any{"card_exp_month", "13"}, "err_wrong"},
			{[]any{"card_exp_year", "3"}, "err_wrong"},
			{[]any{"card_cvv", nil}, "err_missing"},
			{[]any{"card_cvv", "12"}, "err_wrong"},
			{[]any{"phone", nil}, "err_missing"},
			{[]any{"phone", "call me"}, "err_phone"},
			{[]any{"server_url", "ftp://x"}, "err_path"},
			{[]any{"version", "2"}, "err_wrong"},
			{[]any{"version", nil}, "err_missing"},
			{[]any{"sandbox_fault", "slow"}, "err_wrong"},
		} {
			expect(t, b.call(t, with(base, c.kv...)), failed(c.code))
		}
		expect(t, b.call(t, request("status", "o")), failed("payment_not_found"))
	})
}

func TestServer_Confirm(t *testing.T) {
	t.Parallel()
	// held places a hold on card and returns its confirm token.
	held := func(t *testing.T, b *bundle, card string) string {
		t.Helper()
		token := asText(b.call(t, b.holdParams("o", card))["token"])
		if token == "" {
			t.Fatal("hold answered no token")
		}
		return token
	}
	confirm := func(token string, kv ...any) map[string]any {
		return with(request("confirm", "", "token", token), append([]any{"order_id", nil}, kv...)...)
	}

	t.Run("the right OTP holds the funds", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		token := held(t, b, liqpay.CardOTP)
		expect(t, b.call(t, confirm(token, "otp", liqpay.DefaultOTP)), map[string]any{"result": "ok", "status": "hold_wait", "token": nil})
		expect(t, b.call(t, request("status", "o")), ok("hold_wait"))
	})
	t.Run("the OTP is configurable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{OTP: "12345678"})
		token := held(t, b, liqpay.CardOTP)
		expect(t, b.call(t, confirm(token, "otp", liqpay.DefaultOTP)), map[string]any{"err_code": "err_sms_otp"})
		expect(t, b.call(t, confirm(token, "otp", "12345678")), ok("hold_wait"))
	})
	t.Run("a wrong OTP keeps otp_verify", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		token := held(t, b, liqpay.CardOTP)
		expect(t, b.call(t, confirm(token, "otp", "000000")),
			map[string]any{"result": "error", "status": "otp_verify", "err_code": "err_sms_otp", "token": token})
		expect(t, b.call(t, request("status", "o")), ok("otp_verify"))
		expect(t, b.call(t, confirm(token, "otp", liqpay.DefaultOTP)), ok("hold_wait"))
	})
	t.Run("three wrong OTPs fail the payment", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		token := held(t, b, liqpay.CardOTP)
		b.call(t, confirm(token, "otp", "1"))
		b.call(t, confirm(token, "otp", "2"))
		expect(t, b.call(t, confirm(token, "otp", "3")), map[string]any{"result": "error", "status": "failure", "err_code": "err_sms_otp"})
		expect(t, b.call(t, confirm(token, "otp", liqpay.DefaultOTP)), failed("payment_err_status"))
	})
	t.Run("3-D Secure is confirmed by confirm_token", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		token := held(t, b, liqpay.Card3DS)
		reply := b.call(t, with(request("confirm", "", "confirm_token", token), "order_id", nil))
		expect(t, reply, map[string]any{"result": "ok", "status": "hold_wait", "is_3ds": true, "redirect_to": nil})
	})
	t.Run("CVV is confirmed with card_cvv", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		token := held(t, b, liqpay.CardCVV)
		expect(t, b.call(t, confirm(token)), failed("err_missing"))
		expect(t, b.call(t, confirm(token, "card_cvv", "12x")), failed("err_wrong"))
		expect(t, b.call(t, confirm(token, "card_cvv", "321")), ok("hold_wait"))
	})
	t.Run("a confirmed payment cannot be confirmed again", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		token := held(t, b, liqpay.Card3DS)
		b.call(t, confirm(token))
		expect(t, b.call(t, confirm(token)), failed("payment_err_status"))
	})
	t.Run("an unknown or missing token is refused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		expect(t, b.call(t, confirm("nope")), failed("payment_not_found"))
		expect(t, b.call(t, confirm("")), failed("err_missing"))
	})
}

func TestServer_HoldCompletion(t *testing.T) {
	t.Parallel()
	held := func(t *testing.T, card string) *bundle {
		t.Helper()
		b := setup(t, liqpay.Config{})
		b.call(t, b.holdParams("o", card))
		return b
	}

	t.Run("without amount captures the whole hold", func(t *testing.T) {
		t.Parallel()
		b := held(t, liqpay.CardSuccess)
		b.clock.Advance(time.Minute)
		expect(t, b.call(t, request("hold_completion", "o")), map[string]any{
			"result": "ok", "status": "success", "action": "hold", "amount": 10.5,
			"amount_debit": 10.5, "amount_credit": 10.5, "completion_date": b.clock.Now().UnixMilli(),
		})
	})
	t.Run("a smaller amount captures part", func(t *testing.T) {
		t.Parallel()
		b := held(t, liqpay.CardSuccess)
		expect(t, b.call(t, request("hold_completion", "o", "amount", "10.1")),
			map[string]any{"status": "success", "amount": 10.5, "amount_debit": 10.1})
	})
	t.Run("a larger amount is err_amount_hold and keeps the hold", func(t *testing.T) {
		t.Parallel()
		b := held(t, liqpay.CardSuccess)
		expect(t, b.call(t, request("hold_completion", "o", "amount", "10.51")), failed("err_amount_hold"))
		expect(t, b.call(t, request("status", "o")), ok("hold_wait"))
	})
	t.Run("repeating the same completion replays it", func(t *testing.T) {
		t.Parallel()
		b := held(t, liqpay.CardSuccess)
		first := b.call(t, request("hold_completion", "o", "amount", "5"))
		b.clock.Advance(time.Hour)
		again := b.call(t, request("hold_completion", "o", "amount", "5.00"))
		expect(t, again, map[string]any{"result": "ok", "status": "success", "end_date": first["end_date"], "amount_debit": 5})
	})
	t.Run("a different second completion is payment_err_status", func(t *testing.T) {
		t.Parallel()
		b := held(t, liqpay.CardSuccess)
		b.call(t, request("hold_completion", "o", "amount", "5"))
		expect(t, b.call(t, request("hold_completion", "o")), failed("payment_err_status"))
	})
	t.Run("only hold_wait can be completed", func(t *testing.T) {
		t.Parallel()
		for _, card := range []string{liqpay.CardOTP, liqpay.CardLimit} {
			b := held(t, card)
			expect(t, b.call(t, request("hold_completion", "o")), failed("payment_err_status"))
		}
	})
	t.Run("an unknown order is payment_not_found", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		expect(t, b.call(t, request("hold_completion", "nope")), failed("payment_not_found"))
	})
}

func TestServer_Refund(t *testing.T) {
	t.Parallel()
	t.Run("releases a hold", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, b.holdParams("o", liqpay.CardSuccess))
		expect(t, b.call(t, request("refund", "o")), map[string]any{"result": "ok", "status": "reversed", "refund_amount": nil, "wait_amount": false})
		expect(t, b.call(t, request("hold_completion", "o")), failed("payment_err_status"))
	})
	t.Run("refunds a completed payment", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, b.holdParams("o", liqpay.CardSuccess))
		b.call(t, request("hold_completion", "o", "amount", "8"))
		expect(t, b.call(t, request("refund", "o", "amount", "9")), failed("err_amount_hold"))
		expect(t, b.call(t, request("refund", "o")), map[string]any{"status": "reversed", "refund_amount": 8, "amount_debit": 8})
	})
	t.Run("a second refund replays the stored object", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, b.holdParams("o", liqpay.CardSuccess))
		first := b.call(t, request("refund", "o"))
		b.clock.Advance(time.Hour)
		expect(t, b.call(t, request("refund", "o")), map[string]any{"result": "ok", "status": "reversed", "end_date": first["end_date"]})
	})
	t.Run("a failed payment cannot be refunded", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, b.holdParams("o", liqpay.CardLimit))
		expect(t, b.call(t, request("refund", "o")), failed("payment_err_status"))
	})
}

func TestServer_Status(t *testing.T) {
	t.Parallel()
	b := setup(t, liqpay.Config{})
	hold := b.call(t, b.holdParams("o", liqpay.CardSuccess))
	status := b.call(t, request("status", "o"))
	for k, v := range hold {
		if asText(status[k]) != asText(v) {
			t.Errorf("status %s = %v, hold answered %v", k, status[k], v)
		}
	}
	expect(t, b.call(t, request("status", "other")), failed("payment_not_found"))
	expect(t, b.call(t, with(request("status", "o"), "order_id", nil)), failed("err_missing"))
}

func TestServer_HoldExpiry(t *testing.T) {
	t.Parallel()
	t.Run("an untouched hold reads as reversed after 30 days", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		created := b.clock.Now()
		b.call(t, b.holdParams("o", liqpay.CardSuccess))
		b.clock.Advance(liqpay.DefaultHoldValidity - time.Millisecond)
		expect(t, b.call(t, request("status", "o")), ok("hold_wait"))
		b.clock.Advance(time.Millisecond)
		expect(t, b.call(t, request("status", "o")), map[string]any{
			"result": "ok", "status": "reversed", "err_code": "expired", "err_description": "hold expired",
			"end_date": created.Add(liqpay.DefaultHoldValidity).UnixMilli(),
		})
		expect(t, b.call(t, request("hold_completion", "o")), failed("payment_err_status"))
		if got := b.hooks.nextStatus(t); got != "hold_wait" {
			t.Fatalf("first callback %s, want hold_wait", got)
		}
		if got := b.hooks.nextStatus(t); got != "reversed" {
			t.Fatalf("second callback %s, want reversed", got)
		}
	})
	t.Run("HoldValidity is configurable and Sweep announces expiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{HoldValidity: time.Hour})
		b.call(t, b.holdParams("o", liqpay.CardSuccess))
		b.hooks.next(t)
		b.clock.Advance(time.Hour)
		b.sandbox.Sweep()
		expect(t, b.hooks.next(t).params(t), map[string]any{"status": "reversed", "err_code": "expired"})
	})
}

func TestServer_Authentication(t *testing.T) {
	t.Parallel()
	b := setup(t, liqpay.Config{})
	data, sig, _ := liqpay.Encode(liqpay.DefaultPrivateKey, request("status", "o"))
	forged, forgedSig, _ := liqpay.Encode("wrong", request("status", "o"))
	stranger, strangerSig, _ := liqpay.Encode(liqpay.DefaultPrivateKey, with(request("status", "o"), "public_key", "sandbox_nobody"))
	noAction, noActionSig, _ := liqpay.Encode(liqpay.DefaultPrivateKey, with(request("status", "o"), "action", nil))
	badAction, badActionSig, _ := liqpay.Encode(liqpay.DefaultPrivateKey, with(request("status", "o"), "action", "pay"))
	notJSON := base64.StdEncoding.EncodeToString([]byte("{nope"))
	for _, c := range []struct {
		name string
		form url.Values
		code string
	}{
		{"a signature with the wrong key", url.Values{"data": {forged}, "signature": {forgedSig}}, "invalid_signature"},
		{"a signature of other data", url.Values{"data": {data}, "signature": {forgedSig}}, "invalid_signature"},
		{"no signature", url.Values{"data": {data}}, "invalid_signature"},
		{"an unknown public key", url.Values{"data": {stranger}, "signature": {strangerSig}}, "public_key_not_found"},
		{"no action", url.Values{"data": {noAction}, "signature": {noActionSig}}, "err_api_action"},
		{"an unknown action", url.Values{"data": {badAction}, "signature": {badActionSig}}, "err_api_action"},
		{"no data", url.Values{"signature": {sig}}, "err_missing"},
		{"data that is not Base64", url.Values{"data": {"%%%"}, "signature": {sig}}, "err_wrong"},
		{"data that is not JSON", url.Values{"data": {notJSON}, "signature": {liqpay.Sign(liqpay.DefaultPrivateKey, notJSON)}}, "err_wrong"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			status, reply := b.post(t, http.DefaultClient, c.form)
			if status != http.StatusOK {
				t.Errorf("HTTP status = %d, want 200", status)
			}
			expect(t, reply, failed(c.code))
		})
	}
	t.Run("a malformed form", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Post(b.endpoint, "application/x-www-form-urlencoded", strings.NewReader("data=%zz"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		expect(t, decodeJSON(t, raw), failed("err_wrong"))
	})
}

func TestServer_Routing(t *testing.T) {
	t.Parallel()
	b := setup(t, liqpay.Config{})
	base := strings.TrimSuffix(b.endpoint, liqpay.PathRequest)
	t.Run("payment/status is an alias of request", func(t *testing.T) {
		t.Parallel()
		data, sig, _ := liqpay.Encode(liqpay.DefaultPrivateKey, request("status", "o"))
		resp, err := http.PostForm(base+liqpay.PathStatus, url.Values{"data": {data}, "signature": {sig}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		expect(t, decodeJSON(t, raw), failed("payment_not_found"))
	})
	for _, c := range []struct {
		name, method, path string
		status             int
	}{
		{"an unknown path is 404", http.MethodPost, "/api/3/checkout", http.StatusNotFound},
		{"GET is 405", http.MethodGet, liqpay.PathRequest, http.StatusMethodNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(c.method, base+c.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("HTTP status = %d, want %d", resp.StatusCode, c.status)
			}
			expect(t, decodeJSON(t, raw), map[string]any{"result": "error"})
		})
	}
}

func TestServer_Callbacks(t *testing.T) {
	t.Parallel()
	t.Run("every status change is signed and posted to server_url", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		token := asText(b.call(t, b.holdParams("o", liqpay.CardOTP))["token"])
		expect(t, b.hooks.next(t).params(t), map[string]any{"status": "otp_verify", "token": token, "order_id": "o", "action": "hold"})
		b.call(t, with(request("confirm", "", "token", token, "otp", liqpay.DefaultOTP), "order_id", nil))
		expect(t, b.hooks.next(t).params(t), map[string]any{"status": "hold_wait", "token": nil})
		b.call(t, request("hold_completion", "o"))
		expect(t, b.hooks.next(t).params(t), map[string]any{"status": "success", "amount_debit": 10.5})
		b.call(t, request("refund", "o"))
		expect(t, b.hooks.next(t).params(t), map[string]any{"status": "reversed", "refund_amount": 10.5})
		_ = b.sandbox.Close()
		b.hooks.none(t)
		if n := len(b.sandbox.Callbacks()); n != 4 {
			t.Fatalf("Callbacks() has %d deliveries, want 4", n)
		}
	})
	t.Run("failures carry err_code", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, b.holdParams("o", liqpay.CardInsufficient))
		expect(t, b.hooks.next(t).params(t), map[string]any{"status": "failure", "err_code": "9859", "err_description": "insufficient funds"})
	})
	t.Run("no server_url, no callback", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, with(b.holdParams("o", liqpay.CardSuccess), "server_url", nil))
		_ = b.sandbox.Close()
		b.hooks.none(t)
	})
	t.Run("non-2xx answers are retried", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.hooks.failN.Store(2)
		b.call(t, b.holdParams("o", liqpay.CardSuccess))
		b.hooks.next(t)
		_ = b.sandbox.Close()
		got := b.sandbox.Callbacks()
		if len(got) != 1 || got[0].Attempts != 3 || !got[0].Delivered || got[0].HTTPStatus != 200 || !got[0].Done {
			t.Fatalf("Callbacks() = %+v, want one delivered on attempt 3", got)
		}
	})
	t.Run("retries give up after CallbackRetries", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.hooks.failN.Store(100)
		b.call(t, b.holdParams("o", liqpay.CardSuccess))
		_ = b.sandbox.Close()
		got := b.sandbox.Callbacks()
		if len(got) != 1 || got[0].Attempts != 1+liqpay.CallbackRetries || got[0].Delivered || got[0].HTTPStatus != 500 {
			t.Fatalf("Callbacks() = %+v, want one undelivered after %d attempts", got, 1+liqpay.CallbackRetries)
		}
	})
	t.Run("CallbackDelay delays every callback", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{CallbackDelay: 100 * time.Millisecond})
		sent := time.Now()
		b.call(t, b.holdParams("o", liqpay.CardSuccess))
		if d := b.hooks.next(t).at.Sub(sent); d < 100*time.Millisecond {
			t.Fatalf("callback after %v, want at least 100ms", d)
		}
	})
}

func TestServer_NeverRevealsCardData(t *testing.T) {
	t.Parallel()
	b := setup(t, liqpay.Config{})
	cards := []string{liqpay.CardSuccess, liqpay.CardOTP, liqpay.Card3DS, liqpay.CardCVV, liqpay.CardLimit, liqpay.CardInsufficient, "5555555555554444", "4242424242424241"}
	for i, card := range cards {
		order := "order-" + string(rune('a'+i))
		reply := b.call(t, b.holdParams(order, card))
		b.call(t, with(b.holdParams(order, card), "prepare", "1"))
		if token := asText(reply["token"]); token != "" {
			b.call(t, with(request("confirm", "", "token", token, "otp", "000000", "card_cvv", "555"), "order_id", nil))
			b.call(t, with(request("confirm", "", "token", token, "otp", liqpay.DefaultOTP, "card_cvv", "555"), "order_id", nil))
		}
		b.call(t, request("hold_completion", order))
		b.call(t, request("status", order))
		b.call(t, request("refund", order))
	}
	_ = b.sandbox.Close()
	seen := map[string]string{"replies": b.replies.String(), "callbacks": b.hooks.bodies.String(), "logs": b.logs.String()}
	if seen["callbacks"] == "" || seen["logs"] == "" {
		t.Fatal("nothing was recorded; the check would be vacuous")
	}
	// Short CVVs are looked for as whole JSON strings: as bare digits they
	// turn up inside ports, ids and timestamps.
	secrets := append(append([]string{}, cards...), `"987"`, `"555"`, `"`+liqpay.DefaultOTP+`"`, liqpay.DefaultPrivateKey)
	for where, text := range seen {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain %q", where, secret)
			}
		}
		for _, field := range []string{`"card"`, `"card_cvv"`} {
			if strings.Contains(text, field) {
				t.Errorf("%s contain the field %s", where, field)
			}
		}
	}
}

func TestServer_Calls(t *testing.T) {
	t.Parallel()
	b := setup(t, liqpay.Config{})
	b.call(t, b.holdParams("o", liqpay.CardLimit))
	b.call(t, request("status", "x"))
	calls := b.sandbox.Calls()
	if len(calls) != 2 {
		t.Fatalf("Calls() = %+v, want 2", calls)
	}
	want := liqpay.Call{
		Time: b.clock.Now(), Path: liqpay.PathRequest, Action: "hold", OrderID: "o", PublicKey: liqpay.DefaultPublicKey,
		HTTPStatus: 200, Result: "error", Status: "failure", ErrCode: "limit",
	}
	if calls[0] != want {
		t.Errorf("Calls()[0] = %+v, want %+v", calls[0], want)
	}
	if calls[1].Action != "status" || calls[1].ErrCode != "payment_not_found" {
		t.Errorf("Calls()[1] = %+v", calls[1])
	}
}

func TestServer_FaultKnobs(t *testing.T) {
	t.Parallel()
	faulty := func(b *bundle, order, card, knobs string) map[string]any {
		return with(b.holdParams(order, card), "sandbox_fault", knobs)
	}
	send := func(t *testing.T, b *bundle, client *http.Client, params map[string]any) (*http.Response, error) {
		t.Helper()
		data, sig, _ := liqpay.Encode(liqpay.DefaultPrivateKey, params)
		resp, err := client.PostForm(b.endpoint, url.Values{"data": {data}, "signature": {sig}})
		if err == nil {
			t.Cleanup(func() { resp.Body.Close() })
		}
		return resp, err
	}

	t.Run("latency delays the reply", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		start := time.Now()
		expect(t, b.call(t, faulty(b, "o", liqpay.CardSuccess, "latency=150ms")), ok("hold_wait"))
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("reply after %v, want at least 150ms", d)
		}
	})
	t.Run("latency past the client's timeout still takes effect", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		impatient := &http.Client{Timeout: 50 * time.Millisecond}
		if _, err := send(t, b, impatient, faulty(b, "o", liqpay.CardSuccess, "latency=2s")); err == nil {
			t.Fatal("the client did not time out")
		}
		expect(t, b.call(t, request("status", "o")), ok("hold_wait"))
		expect(t, b.call(t, b.holdParams("o", liqpay.CardSuccess)), failed("order_id_duplicate"))
	})
	t.Run("http500 answers 500 and does nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		resp, err := send(t, b, http.DefaultClient, faulty(b, "o", liqpay.CardSuccess, "http500"))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("HTTP status = %d, want 500", resp.StatusCode)
		}
		expect(t, decodeJSON(t, raw), map[string]any{"result": "error"})
		expect(t, b.call(t, request("status", "o")), failed("payment_not_found"))
	})
	t.Run("timeout never answers and does nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		data, sig, _ := liqpay.Encode(liqpay.DefaultPrivateKey, faulty(b, "o", liqpay.CardSuccess, "timeout"))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.endpoint, strings.NewReader(url.Values{"data": {data}, "signature": {sig}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
			if err == nil {
				resp.Body.Close()
			}
			t.Fatalf("err = %v, want the client's deadline", err)
		}
		expect(t, b.call(t, request("status", "o")), failed("payment_not_found"))
		_ = b.sandbox.Close()
		b.hooks.none(t)
	})
	t.Run("drop_callback records but never sends", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, faulty(b, "o", liqpay.CardSuccess, "drop_callback"))
		b.call(t, request("hold_completion", "o"))
		_ = b.sandbox.Close()
		b.hooks.none(t)
		got := b.sandbox.Callbacks()
		if len(got) != 2 || got[0].Attempts != 0 || got[0].Fault != "drop_callback" || got[1].Status != "success" {
			t.Fatalf("Callbacks() = %+v, want two dropped", got)
		}
	})
	t.Run("duplicate_callback sends each callback twice", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, faulty(b, "o", liqpay.CardSuccess, "duplicate_callback"))
		first, second := b.hooks.next(t), b.hooks.next(t)
		if first.data != second.data || first.signature != second.signature {
			t.Fatal("the two copies differ")
		}
		_ = b.sandbox.Close()
		b.hooks.none(t)
	})
	t.Run("delay_callback delays the callback", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		sent := time.Now()
		b.call(t, faulty(b, "o", liqpay.CardSuccess, "delay_callback=150ms"))
		if d := b.hooks.next(t).at.Sub(sent); d < 150*time.Millisecond {
			t.Fatalf("callback after %v, want at least 150ms", d)
		}
	})
	t.Run("bad_signature_callback signs with the wrong key", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, faulty(b, "o", liqpay.CardSuccess, "bad_signature_callback"))
		h := b.hooks.next(t)
		if _, err := liqpay.Decode(liqpay.DefaultPrivateKey, h.data, h.signature); !errors.Is(err, liqpay.ErrInvalidSignature) {
			t.Fatalf("Decode error = %v, want ErrInvalidSignature", err)
		}
	})
	t.Run("pending stays processing for ever", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		expect(t, b.call(t, faulty(b, "o", liqpay.CardSuccess, "pending")), ok("processing"))
		b.clock.Advance(24 * time.Hour)
		expect(t, b.call(t, request("status", "o")), ok("processing"))
		expect(t, b.call(t, request("hold_completion", "o")), failed("payment_err_status"))
	})
	t.Run("pending=D resolves after D of sandbox time", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		expect(t, b.call(t, faulty(b, "o", liqpay.CardSuccess, "pending=2s")), ok("processing"))
		b.clock.Advance(1999 * time.Millisecond)
		expect(t, b.call(t, request("status", "o")), ok("processing"))
		b.clock.Advance(time.Millisecond)
		expect(t, b.call(t, request("status", "o")), ok("hold_wait"))
		if a, c := b.hooks.nextStatus(t), b.hooks.nextStatus(t); a != "processing" || c != "hold_wait" {
			t.Fatalf("callbacks %s, %s; want processing, hold_wait", a, c)
		}
	})
	t.Run("pending=D resolves to the card's real outcome", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, faulty(b, "o", liqpay.CardLimit, "pending=1s"))
		b.clock.Advance(time.Second)
		expect(t, b.call(t, request("status", "o")), map[string]any{"status": "failure", "err_code": "limit"})
	})
	t.Run("pending=D resolves by itself with a real clock", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		live := liqpay.New(liqpay.Config{})
		t.Cleanup(func() { _ = live.Close() })
		srv := httptest.NewServer(live)
		t.Cleanup(srv.Close)
		b.endpoint = srv.URL + liqpay.PathRequest
		expect(t, b.call(t, faulty(b, "o", liqpay.CardSuccess, "pending=50ms")), ok("processing"))
		if a, c := b.hooks.nextStatus(t), b.hooks.nextStatus(t); a != "processing" || c != "hold_wait" {
			t.Fatalf("callbacks %s, %s; want processing, hold_wait", a, c)
		}
	})
	t.Run("reorder_callbacks sends the later status first", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		token := asText(b.call(t, faulty(b, "o", liqpay.CardOTP, "reorder_callbacks"))["token"])
		b.call(t, with(request("confirm", "", "token", token, "otp", liqpay.DefaultOTP), "order_id", nil))
		b.call(t, request("hold_completion", "o"))
		var got []string
		for range 3 {
			got = append(got, b.hooks.nextStatus(t))
		}
		if strings.Join(got, ",") != "hold_wait,otp_verify,success" {
			t.Fatalf("callbacks %v, want hold_wait, otp_verify, success", got)
		}
	})
	t.Run("knobs in Config apply to every request", func(t *testing.T) {
		t.Parallel()
		f, err := liqpay.ParseFaults("duplicate_callback")
		if err != nil {
			t.Fatal(err)
		}
		b := setup(t, liqpay.Config{Faults: f})
		b.call(t, b.holdParams("o", liqpay.CardSuccess))
		b.hooks.next(t)
		b.hooks.next(t)
		if calls := b.sandbox.Calls(); calls[0].Faults != "duplicate_callback" {
			t.Fatalf("Calls()[0].Faults = %q", calls[0].Faults)
		}
	})
	t.Run("a knob on a later request shapes only that request's callback", func(t *testing.T) {
		t.Parallel()
		b := setup(t, liqpay.Config{})
		b.call(t, b.holdParams("o", liqpay.CardSuccess))
		b.call(t, with(request("hold_completion", "o"), "sandbox_fault", "drop_callback"))
		b.call(t, request("refund", "o"))
		if a, c := b.hooks.nextStatus(t), b.hooks.nextStatus(t); a != "hold_wait" || c != "reversed" {
			t.Fatalf("callbacks %s, %s; want hold_wait, reversed", a, c)
		}
	})
}

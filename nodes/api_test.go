package nodes_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

// liqpayHold is the shipped flow's calling_api node.
func liqpayHold(t *testing.T) *nodes.API {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "processes", "flows", "liqpay-hold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return spec[*nodes.API](t, compile(t, string(src)), "calling_api")
}

// holdInput is a task of the LiqPay hold flow, as the engine hands it over.
func holdInput() *nodes.Input {
	return &nodes.Input{
		Env: processes.Env{
			"phone": "380950000001", "amount": json.Number("7.34"), "currency": "UAH", "description": "test hold",
			"order_id": "ord-1", "card": "4111111111111111", "card_exp_month": "03", "card_exp_year": "29",
			"card_cvv": "123", "ip": "127.0.0.1",
			"task": map[string]any{"id": "t1", "callback_url": "https://conveyor.example/callbacks/abc"},
			"env":  map[string]any{"LIQPAY_URL": "https://liqpay.example"},
		},
		Now:     now,
		Secrets: liqpaySecrets,
	}
}

func TestAPI_Build_liqpay(t *testing.T) {
	t.Parallel()
	req, err := liqpayHold(t).Build(holdInput())
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != http.MethodPost || req.URL != "https://liqpay.example/api/request" {
		t.Errorf("request line = %s %s", req.Method, req.URL)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", ct)
	}
	form, err := url.ParseQuery(string(req.Body))
	if err != nil {
		t.Fatal(err)
	}
	data, sig := form.Get("data"), form.Get("signature")
	sum := sha1.Sum([]byte(liqpayPrivateKey + data + liqpayPrivateKey))
	if want := base64.StdEncoding.EncodeToString(sum[:]); sig != want {
		t.Errorf("signature = %q, want base64(sha1(key + data + key)) = %q", sig, want)
	}
	js, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatal(err)
	}
	var params map[string]any
	dec := json.NewDecoder(strings.NewReader(string(js)))
	dec.UseNumber()
	if err := dec.Decode(&params); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"action": "hold", "version": "3", "public_key": "i00000000", // injected from the secret: the task gave none
		"phone": "380950000001", "amount": json.Number("7.34"), "currency": "UAH", "description": "test hold",
		"order_id": "ord-1", "card": "4111111111111111", "card_exp_month": "03", "card_exp_year": "29",
		"card_cvv": "123", "ip": "127.0.0.1", "server_url": "https://conveyor.example/callbacks/abc",
	}
	diff(t, "LiqPay params (optional fields not given are left out)", want, params)
}

func TestAPI_Build(t *testing.T) {
	t.Parallel()
	def := compile(t, flow(`{amount: {type: decimal}, ref: {type: string}, note: {type: string}}`, `  json_call:
    type: api
    request:
      method: put
      url: "https://api.example/v2/payouts/{{ ref }}?v=2"
      query: {ref: "{{ ref }}", mode: live, empty: "{{ note }}"}
      headers: {Authorization: "Bearer {{ secrets.token }}", X-Ref: "{{ ref }}"}
      body: {amount: "{{ amount }}", ref: "{{ ref }}", note: "{{ note }}", nested: {list: [1, "{{ ref }}"]}}
    next: form_call
    on_error: form_call
  form_call:
    type: api
    request:
      url: "{{ env.GATEWAY }}/debit"
      codec: form
      body: {amount: "{{ amount }}", ref: "{{ ref }}", flag: true}
    next: get_call
    on_error: get_call
  get_call:
    type: api
    request: {method: GET, url: "https://api.example/status", query: {ref: "{{ ref }}"}}
    next: liqpay_call
    on_error: liqpay_call
  liqpay_call:
    type: api
    request:
      url: "https://liqpay.example/api/request"
      codec: {name: liqpay, public_key: liqpay_public_key, private_key: liqpay_private_key}
      body: {action: status, public_key: own, version: "7"}
    next: done
    on_error: done
  done: {type: final, result: success}
`))
	in := &nodes.Input{
		Env:     processes.Env{"amount": json.Number("7.34"), "ref": "a b/c", "env": map[string]any{"GATEWAY": "https://gw.example:8443"}},
		Secrets: liqpaySecrets,
	}
	build := func(t *testing.T, node string) *nodes.Request {
		t.Helper()
		req, err := spec[*nodes.API](t, def, node).Build(in)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		req := build(t, "json_call")
		if req.Method != http.MethodPut {
			t.Errorf("Method = %s, want PUT (methods are upper-cased)", req.Method)
		}
		// A query value that renders to nil (an absent optional field) is left out.
		if want := "https://api.example/v2/payouts/a%20b/c?mode=live&ref=a+b%2Fc&v=2"; req.URL != want {
			t.Errorf("URL = %s\nwant  %s", req.URL, want)
		}
		wantHeader := http.Header{"Authorization": {"Bearer t-123"}, "X-Ref": {"a b/c"}, "Content-Type": {"application/json"}}
		diff(t, "Header", wantHeader, req.Header)
		if want := `{"amount":7.34,"nested":{"list":[1,"a b/c"]},"ref":"a b/c"}`; string(req.Body) != want {
			t.Errorf("Body = %s\nwant   %s", req.Body, want)
		}
	})
	t.Run("form", func(t *testing.T) {
		t.Parallel()
		req := build(t, "form_call")
		if req.Method != http.MethodPost || req.URL != "https://gw.example:8443/debit" {
			t.Errorf("request line = %s %s, want POST by default", req.Method, req.URL)
		}
		if ct := req.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("Content-Type = %q", ct)
		}
		if want := "amount=7.34&flag=true&ref=a+b%2Fc"; string(req.Body) != want {
			t.Errorf("Body = %s, want %s", req.Body, want)
		}
	})
	t.Run("GET has no body", func(t *testing.T) {
		t.Parallel()
		req := build(t, "get_call")
		if req.URL != "https://api.example/status?ref=a+b%2Fc" || req.Body != nil || req.Header.Get("Content-Type") != "" {
			t.Errorf("GET request = %+v", req)
		}
	})
	t.Run("liqpay keeps what the body sets", func(t *testing.T) {
		t.Parallel()
		form, _ := url.ParseQuery(string(build(t, "liqpay_call").Body))
		js, _ := base64.StdEncoding.DecodeString(form.Get("data"))
		if want := `{"action":"status","public_key":"own","version":"7"}`; string(js) != want {
			t.Errorf("data = %s, want %s", js, want)
		}
	})
}

func TestAPI_Build_error(t *testing.T) {
	t.Parallel()
	def := compile(t, flow(`{n: {type: string}}`, `  bad_template:
    type: api
    request: {url: "https://api.example/{{ int(n) }}"}
    next: bad_scheme
    on_error: bad_scheme
  bad_scheme:
    type: api
    request: {url: "{{ env.URL }}/x"}
    next: bad_header
    on_error: bad_header
  bad_header:
    type: api
    request: {url: "https://api.example", headers: {X-N: "{{ int(n) }}"}}
    next: bad_body
    on_error: bad_body
  bad_body:
    type: api
    request: {url: "https://api.example", body: {n: "{{ int(n) }}"}}
    next: no_secret
    on_error: no_secret
  no_secret:
    type: api
    request: {url: "https://api.example", codec: {name: liqpay, private_key: liqpay_private_key}, body: {a: 1}}
    next: form_list
    on_error: form_list
  form_list:
    type: api
    request: {url: "https://api.example", codec: form, body: [1, 2]}
    next: done
    on_error: done
  done: {type: final, result: success}
`))
	in := &nodes.Input{Env: processes.Env{"n": "x", "env": map[string]any{"URL": "ftp://files.example"}}}
	tests := []struct{ node, want string }{
		{"bad_template", "url: "},
		{"bad_scheme", `url "ftp://files.example/x" is not an absolute http(s) URL`},
		{"bad_header", "header X-N: "},
		{"bad_body", "body: "},
		{"no_secret", "secret liqpay_private_key is not configured"},
		{"form_list", "a form body must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.node, func(t *testing.T) {
			t.Parallel()
			req, err := spec[*nodes.API](t, def, tt.node).Build(in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build = %+v, %v; want an error with %q", req, err, tt.want)
			}
		})
	}
}

// judgeFlow has one api node per reply rule under test.
func judgeFlow(t *testing.T) *processes.Definition {
	t.Helper()
	return compile(t, flow(`{ref: {type: string}}`, `  call:
    type: api
    request: {url: "https://api.example/pay"}
    retry: {attempts: 3, initial: 1s, max: 3s}
    save_as: reply.body
    cases:
      - name: queued
        when: 'http.status == 202 || reply.body.state == "queued"'
        next: later
      - name: declined
        when: 'reply.body.state == "declined"'
        error: {code: "{{ reply.body.reason ?? 'declined' }}", description: "payout {{ ref }} declined"}
      - name: odd
        when: 'reply.body.code == 7'
        error: {code: "{{ int(reply.body.state) }}"}
      - name: by_header
        when: 'http.headers["x-mode"] == "test"'
        next: later
    next: done
    on_error: failed
  plain:
    type: api
    request: {url: "https://api.example/pay"}
    accept: [200, 404]
    retry: {on: [network]}
    next: done
    on_error: failed
  later: {type: final, result: success}
  done: {type: final, result: success}
  failed: {type: final, result: error}
`))
}

func TestAPI_Judge(t *testing.T) {
	t.Parallel()
	def := judgeFlow(t)
	call, plain := spec[*nodes.API](t, def, "call"), spec[*nodes.API](t, def, "plain")
	in := &nodes.Input{Env: processes.Env{"ref": "r-1", "reply": map[string]any{"earlier": "kept"}}}
	saved := func(body any) []nodes.Write { return []nodes.Write{{Path: []string{"reply", "body"}, Value: body}} }
	tests := []struct {
		name string
		api  *nodes.API
		rep  nodes.Reply
		want nodes.Result
	}{
		{"2xx saves the reply and moves by next", call, nodes.Reply{Status: 200, Body: []byte(`{"state":"done","amount":7.34}`)},
			nodes.Result{Outcome: "next", Writes: saved(map[string]any{"state": "done", "amount": json.Number("7.34")})}},
		{"a case with next is its outcome", call, nodes.Reply{Status: 200, Body: []byte(`{"state":"queued"}`)},
			nodes.Result{Outcome: "queued", Writes: saved(map[string]any{"state": "queued"})}},
		{"cases read http.status", call, nodes.Reply{Status: 202},
			nodes.Result{Outcome: "queued"}},
		{"cases read http.headers", call, nodes.Reply{Status: 200, Header: http.Header{"X-Mode": {"test"}}, Body: []byte(`{}`)},
			nodes.Result{Outcome: "by_header", Writes: saved(map[string]any{})}},
		{"an error case fails with its templates", call, nodes.Reply{Status: 200, Body: []byte(`{"state":"declined","reason":"limit"}`)},
			nodes.Result{Outcome: "error", Writes: saved(map[string]any{"state": "declined", "reason": "limit"}),
				Failure: &nodes.Failure{Code: "limit", Description: "payout r-1 declined"}}},
		{"an error template's own fallback", call, nodes.Reply{Status: 200, Body: []byte(`{"state":"declined"}`)},
			nodes.Result{Outcome: "error", Writes: saved(map[string]any{"state": "declined"}),
				Failure: &nodes.Failure{Code: "declined", Description: "payout r-1 declined"}}},
		{"whole numbers compare with integers; failing templates fall back", call, nodes.Reply{Status: 200, Body: []byte(`{"code":7,"state":"x"}`)},
			nodes.Result{Outcome: "error", Writes: saved(map[string]any{"code": json.Number("7"), "state": "x"}),
				Failure: &nodes.Failure{Code: "reply_error", Description: "the reply matched error case odd"}}},
		{"4xx is an error", call, nodes.Reply{Status: 400, Body: []byte(`{"error":"bad"}`)},
			nodes.Result{Outcome: "error", Writes: saved(map[string]any{"error": "bad"}),
				Failure: &nodes.Failure{Code: "http_400", Description: "provider answered HTTP 400"}}},
		{"non-JSON reply with save_as", call, nodes.Reply{Status: 200, Body: []byte(`<html>ok</html>`)},
			nodes.Result{Outcome: "error", Failure: &nodes.Failure{Code: "bad_reply", Description: "HTTP 200 reply is not JSON"}}},
		{"non-JSON reply without save_as", plain, nodes.Reply{Status: 200, Body: []byte(`OK`)},
			nodes.Result{Outcome: "next"}},
		{"accept list lets 404 through", plain, nodes.Reply{Status: 404, Body: []byte(`{}`)},
			nodes.Result{Outcome: "next"}},
		{"accept list refuses other 2xx", plain, nodes.Reply{Status: 201},
			nodes.Result{Outcome: "error", Failure: &nodes.Failure{Code: "http_201", Description: "provider answered HTTP 201"}}},
		{"5xx not in retry.on is an error at once", plain, nodes.Reply{Status: 503},
			nodes.Result{Outcome: "error", Failure: &nodes.Failure{Code: "http_503", Description: "provider answered HTTP 503"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := tt.api.Judge(in, 1, tt.rep, nil)
			if v.Retry {
				t.Fatalf("Judge retried: %+v", v)
			}
			diff(t, "Result", tt.want, v.Result)
		})
	}
	if _, ok := in.Env["reply"].(map[string]any)["body"]; ok {
		t.Error("Judge wrote into the task's data it was handed")
	}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

// TestAPI_Judge_retry: failures the policy covers are retried while attempts
// remain; the last one fails with what happened.
func TestAPI_Judge_retry(t *testing.T) {
	t.Parallel()
	call := spec[*nodes.API](t, judgeFlow(t), "call") // 3 attempts
	in := &nodes.Input{Env: processes.Env{}}
	refused := &url.Error{Op: "Post", URL: "https://api.example/pay?secret=1", Err: errors.New("connection refused")}
	tests := []struct {
		name string
		rep  nodes.Reply
		last nodes.Failure
	}{
		{"5xx", nodes.Reply{Status: 502}, nodes.Failure{Code: "http_502", Description: "provider answered HTTP 502 after 3 attempts"}},
		{"429", nodes.Reply{Status: 429}, nodes.Failure{Code: "http_429", Description: "provider answered HTTP 429 after 3 attempts"}},
		{"network", nodes.Reply{Err: refused}, nodes.Failure{Code: "network_error", Description: "request failed: connection refused after 3 attempts"}},
		{"deadline", nodes.Reply{Err: &url.Error{Op: "Post", URL: "u", Err: context.DeadlineExceeded}},
			nodes.Failure{Code: "timeout", Description: "no reply within 30s after 3 attempts"}},
		{"net timeout", nodes.Reply{Err: timeoutErr{}}, nodes.Failure{Code: "timeout", Description: "no reply within 30s after 3 attempts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for attempt := 1; attempt < 3; attempt++ {
				if v := call.Judge(in, attempt, tt.rep, func() float64 { return 0.5 }); !v.Retry {
					t.Fatalf("attempt %d: not retried: %+v", attempt, v)
				}
			}
			v := call.Judge(in, 3, tt.rep, nil)
			if v.Retry {
				t.Fatal("the last attempt was retried")
			}
			diff(t, "last attempt", nodes.Result{Outcome: "error", Failure: &tt.last}, v.Result)
		})
	}
	t.Run("first attempt's failure says no count", func(t *testing.T) {
		t.Parallel()
		plain := spec[*nodes.API](t, judgeFlow(t), "plain")
		v := plain.Judge(in, 1, nodes.Reply{Err: errors.New("dns")}, nil)
		want := nodes.Result{Outcome: "error", Failure: &nodes.Failure{Code: "network_error", Description: "request failed: dns"}}
		diff(t, "Result", want, v.Result)
	})
}

// TestAPI_Judge_backoff: exponential delays double from initial up to max;
// full jitter draws each from [0, delay] with the injected rnd.
func TestAPI_Judge_backoff(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{}", `  exp_none:
    type: api
    request: {url: "https://api.example"}
    retry: {attempts: 7, backoff: exponential, initial: 1s, max: 10s, jitter: none}
    next: exp_full
    on_error: exp_full
  exp_full:
    type: api
    request: {url: "https://api.example"}
    retry: {attempts: 7, initial: 1s, max: 10s}
    next: fixed
    on_error: fixed
  fixed:
    type: api
    request: {url: "https://api.example"}
    retry: {attempts: 4, backoff: fixed, initial: 2s, max: 2s, jitter: none}
    next: done
    on_error: done
  done: {type: final, result: success}
`))
	in := &nodes.Input{}
	fail := nodes.Reply{Status: 500}
	delays := func(api *nodes.API, attempts int, rnd func() float64) []time.Duration {
		var ds []time.Duration
		for a := 1; a < attempts; a++ {
			v := api.Judge(in, a, fail, rnd)
			if !v.Retry {
				t.Fatalf("attempt %d not retried", a)
			}
			ds = append(ds, v.Delay)
		}
		return ds
	}
	s := time.Second
	diff(t, "exponential, no jitter", []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s}, delays(spec[*nodes.API](t, def, "exp_none"), 7, nil))
	diff(t, "fixed", []time.Duration{2 * s, 2 * s, 2 * s}, delays(spec[*nodes.API](t, def, "fixed"), 4, nil))

	full := spec[*nodes.API](t, def, "exp_full")
	diff(t, "policy defaults", nodes.RetryPolicy{Attempts: 7, Backoff: "exponential", Initial: s, Max: 10 * s, Jitter: "full",
		On: []string{"network", "timeout", "5xx", "429"}}, full.Retry())
	diff(t, "full jitter, rnd 0.5", []time.Duration{s / 2, s, 2 * s, 4 * s, 5 * s, 5 * s}, delays(full, 7, func() float64 { return 0.5 }))
	diff(t, "full jitter, rnd 0", make([]time.Duration, 6), delays(full, 7, func() float64 { return 0 }))
	caps := []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s}
	for i, d := range delays(full, 7, func() float64 { return 0.999999 }) {
		if d < 0 || d > caps[i] {
			t.Errorf("attempt %d: delay %v outside [0, %v]", i+1, d, caps[i])
		}
	}
	for range 100 { // the default source stays within bounds too
		for i, d := range delays(full, 7, nil) {
			if d < 0 || d > caps[i] {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", i+1, d, caps[i])
			}
		}
	}
}

func TestAPI_accessors(t *testing.T) {
	t.Parallel()
	def := judgeFlow(t)
	call, plain := spec[*nodes.API](t, def, "call"), spec[*nodes.API](t, def, "plain")
	if call.Timeout() != nodes.DefaultAPITimeout || call.SaveAs() != "reply.body" || plain.SaveAs() != "" {
		t.Errorf("Timeout, SaveAs = %v, %q, %q", call.Timeout(), call.SaveAs(), plain.SaveAs())
	}
	diff(t, "default policy: one attempt", nodes.RetryPolicy{Attempts: 1, Backoff: "exponential", Initial: time.Second,
		Max: time.Minute, Jitter: "full", On: []string{"network"}}, plain.Retry())
	var edges []string
	for _, e := range call.Edges() {
		edges = append(edges, e.Outcome+"->"+e.To)
	}
	diff(t, "Edges", []string{"next->done", "queued->later", "by_header->later", "error->failed"}, edges)
}

// TestAPI_Judge_onUnknown: with on_unknown, a timed-out attempt is not
// retried but routed there (the provider may have acted); other failures
// keep the retry policy.
func TestAPI_Judge_onUnknown(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{}", `
  call:
    type: api
    request: {url: "https://api.example/capture"}
    retry: {attempts: 3}
    next: done
    on_error: done
    on_unknown: check
  check: {type: final, result: success}
  done: {type: final, result: success}`))
	call := spec[*nodes.API](t, def, "call")
	if !call.OnUnknown() {
		t.Fatal("OnUnknown() = false")
	}
	in := &nodes.Input{Env: processes.Env{}}
	v := call.Judge(in, 1, nodes.Reply{Err: timeoutErr{}}, nil)
	if v.Retry || v.Result.Outcome != nodes.OutUnknown || v.Result.Failure.Code != "outcome_unknown" {
		t.Errorf("timeout: %+v", v)
	}
	if v := call.Judge(in, 1, nodes.Reply{Status: 503}, nil); !v.Retry {
		t.Errorf("5xx with attempts left: %+v, want a retry", v)
	}
	if to, err := def.Fire("call", nodes.OutUnknown); err != nil || to != "check" {
		t.Errorf("unknown leads to %q, %v", to, err)
	}
}

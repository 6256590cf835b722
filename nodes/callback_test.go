package nodes_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

// LiqPay's documented example: a private key, a data envelope and its
// signature, base64(sha1(private_key + data + private_key)).
const (
	liqpayPrivateKey = "a4825234f4bae72a0be04eafe9e8e2bada209255"
	liqpayData       = "eyJwdWJsaWNfa2V5IjoiaTAwMDAwMDAwIiwidmVyc2lvbiI6IjMiLCJhY3Rpb24iOiJwYXkiLCJhbW91bnQiOiIzIiwiY3VycmVuY3kiOiJVQUgiLCJkZXNjcmlwdGlvbiI6InRlc3QiLCJvcmRlcl9pZCI6IjAwMDAwMSJ9"
	liqpaySignature  = "wR+UZDC4jjeL/qUOvIsofIWpZh8="
)

var liqpaySecrets = map[string]string{"liqpay_private_key": liqpayPrivateKey, "liqpay_public_key": "i00000000", "token": "t-123"}

func callbackFlow(t *testing.T) *processes.Definition {
	t.Helper()
	return compile(t, flow("{amount: {type: decimal}}", `  plain: {type: callback, timeout: 3m, on_timeout: late, next: done}
  signed:
    type: callback
    codec: {name: liqpay, private_key: liqpay_private_key}
    task_id_path: obj_id
    timeout: 180s
    on_timeout: late
    next: done
  form: {type: callback, codec: form, timeout: 1m, on_timeout: late, next: done}
  checked:
    type: callback
    save_as: confirmation.body
    schema:
      status: {type: string, required: true, enum: [paid, failed]}
      amount: {type: decimal}
    guard: 'confirmation.body.amount == nil || dec_cmp(confirmation.body.amount, amount) == 0'
    timeout: 10m
    on_timeout: late
    next: done
  late: {type: escalation}
  done: {type: final, result: success}
`))
}

func TestCallback_Decode(t *testing.T) {
	t.Parallel()
	def := callbackFlow(t)
	in := &nodes.Input{Secrets: liqpaySecrets}
	envelope := url.Values{"data": {liqpayData}, "signature": {liqpaySignature}}
	tests := []struct {
		name, node, contentType, body string
		want                          map[string]any
	}{
		{"json", "plain", "application/json", `{"status":"paid","amount":7.34,"nested":{"a":[1,2]}}`,
			map[string]any{"status": "paid", "amount": json.Number("7.34"), "nested": map[string]any{"a": []any{json.Number("1"), json.Number("2")}}}},
		{"json without a content type", "plain", "", `{"a":"b"}`, map[string]any{"a": "b"}},
		{"empty body", "plain", "application/json", "  ", map[string]any{}},
		{"form by content type", "plain", "application/x-www-form-urlencoded; charset=utf-8", "a=1&b=x+y&b=z",
			map[string]any{"a": "1", "b": []any{"x y", "z"}}},
		{"form codec", "form", "text/plain", "status=paid&amount=7.34", map[string]any{"status": "paid", "amount": "7.34"}},
		{"liqpay test vector", "signed", "application/x-www-form-urlencoded", envelope.Encode(), map[string]any{
			"public_key": "i00000000", "version": "3", "action": "pay", "amount": "3", "currency": "UAH",
			"description": "test", "order_id": "000001",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := spec[*nodes.Callback](t, def, tt.node).Decode(in, tt.contentType, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			diff(t, "Decode", tt.want, got)
		})
	}
}

func TestCallback_Decode_refused(t *testing.T) {
	t.Parallel()
	def := callbackFlow(t)
	signed := spec[*nodes.Callback](t, def, "signed")
	in := &nodes.Input{Secrets: liqpaySecrets}
	tamperedData := strings.Replace(liqpayData, "eyJw", "eyJx", 1)
	tests := []struct {
		name     string
		cb       *nodes.Callback
		in       *nodes.Input
		body     string
		wantCode string
	}{
		{"wrong signature", signed, in, url.Values{"data": {liqpayData}, "signature": {"AAAAZDC4jjeL/qUOvIsofIWpZh8="}}.Encode(), conveyor.EUnauthorized},
		{"tampered data", signed, in, url.Values{"data": {tamperedData}, "signature": {liqpaySignature}}.Encode(), conveyor.EUnauthorized},
		{"signed with another key", signed, &nodes.Input{Secrets: map[string]string{"liqpay_private_key": "other"}},
			url.Values{"data": {liqpayData}, "signature": {liqpaySignature}}.Encode(), conveyor.EUnauthorized},
		{"no signature", signed, in, url.Values{"data": {liqpayData}}.Encode(), conveyor.EInvalid},
		{"not a form", signed, in, "%zz", conveyor.EInvalid},
		{"secret not configured", signed, &nodes.Input{}, url.Values{"data": {liqpayData}, "signature": {liqpaySignature}}.Encode(), conveyor.EInternal},
		{"json that is not an object", spec[*nodes.Callback](t, def, "plain"), in, `[1,2]`, conveyor.EInvalid},
		{"json with trailing data", spec[*nodes.Callback](t, def, "plain"), in, `{"a":1} {"b":2}`, conveyor.EInvalid},
		{"bad form", spec[*nodes.Callback](t, def, "form"), in, "a=%zz", conveyor.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ct := "application/x-www-form-urlencoded"
			if strings.HasPrefix(tt.name, "json") {
				ct = "application/json"
			}
			got, err := tt.cb.Decode(tt.in, ct, []byte(tt.body))
			if code := conveyor.ErrorCode(err); code != tt.wantCode {
				t.Errorf("Decode = %v, %v; want an error with code %q, got %q", got, err, tt.wantCode, code)
			}
			if err != nil && strings.Contains(err.Error(), liqpayPrivateKey) {
				t.Errorf("error %q shows the private key", err)
			}
		})
	}
}

func TestCallback_Accept(t *testing.T) {
	t.Parallel()
	def := callbackFlow(t)
	checked := spec[*nodes.Callback](t, def, "checked")
	env := processes.Env{"amount": json.Number("7.34"), "confirmation": map[string]any{"earlier": true}}
	tests := []struct {
		name   string
		body   map[string]any
		errHas string // "" when accepted
	}{
		{"accepted", map[string]any{"status": "paid", "amount": json.Number("7.340"), "extra": "kept"}, ""},
		{"accepted without the optional field", map[string]any{"status": "failed"}, ""},
		{"required field missing", map[string]any{"amount": json.Number("7.34")}, "callback refused: invalid input: status: is required"},
		{"enum", map[string]any{"status": "maybe"}, "callback refused: invalid input: status: must be one of paid, failed"},
		{"type", map[string]any{"status": "paid", "amount": true}, "amount: must be a decimal number"},
		{"guard false", map[string]any{"status": "paid", "amount": json.Number("7.35")}, "callback refused: guard "},
		{"schema is checked before the guard", map[string]any{"status": "paid", "amount": "lots"}, "callback refused: invalid input: amount: must be a decimal number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := checked.Accept(&nodes.Input{Env: env}, tt.body)
			if tt.errHas != "" {
				if conveyor.ErrorCode(err) != conveyor.EInvalid || !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("Accept = %v, %v; want an invalid error with %q", res, err, tt.errHas)
				}
				diff(t, "refused result", nodes.Result{}, res)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			diff(t, "Accept", nodes.Result{Outcome: nodes.OutNext, Writes: []nodes.Write{{Path: []string{"confirmation", "body"}, Value: tt.body}}}, res)
		})
	}
	if _, ok := env["confirmation"].(map[string]any)["body"]; ok {
		t.Error("Accept wrote into the task's data it was handed")
	}
}

func TestCallback_Accept_guardError(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{}", `  cb: {type: callback, guard: 'callback.n > 1', timeout: 1m, on_timeout: cb, next: cb}
`))
	_, err := spec[*nodes.Callback](t, def, "cb").Accept(&nodes.Input{}, map[string]any{"n": "x"})
	if conveyor.ErrorCode(err) != conveyor.EInvalid || !strings.Contains(err.Error(), "callback refused: guard: callback.n > 1: ") {
		t.Errorf("Accept = %v, want an invalid guard error", err)
	}
	// Whole numbers in a body compare with integer literals, as in task data.
	if _, err := spec[*nodes.Callback](t, def, "cb").Accept(&nodes.Input{}, map[string]any{"n": json.Number("2")}); err != nil {
		t.Errorf("Accept of n = 2: %v", err)
	}
}

func TestCallback_timer(t *testing.T) {
	t.Parallel()
	def := callbackFlow(t)
	signed := spec[*nodes.Callback](t, def, "signed")
	if got, _ := signed.Deadline(&nodes.Input{Now: now}); !got.Equal(now.Add(180 * time.Second)) {
		t.Errorf("Deadline = %v, want now + 180s", got)
	}
	if signed.Timeout() != 3*time.Minute {
		t.Errorf("Timeout = %v", signed.Timeout())
	}
	diff(t, "Expire", nodes.Result{Outcome: nodes.OutTimeout}, signed.Expire())
	if signed.TaskIDPath() != "obj_id" || signed.SaveAs() != nodes.DefaultCallbackField {
		t.Errorf("TaskIDPath, SaveAs = %q, %q", signed.TaskIDPath(), signed.SaveAs())
	}
	if got := spec[*nodes.Callback](t, def, "checked").SaveAs(); got != "confirmation.body" {
		t.Errorf("SaveAs = %q", got)
	}
	var edges []string
	for _, e := range signed.Edges() {
		edges = append(edges, e.Outcome+"->"+e.To)
	}
	diff(t, "Edges", []string{"next->done", "timeout->late"}, edges)
}

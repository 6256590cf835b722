package nodes_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// The hot paths of the seed flow (liqpay-hold) as the engine runs them per
// task: build the signed hold, judge LiqPay's reply, decode and check the
// signed callback, route on its status. `conveyor bench` measures them in
// the running service; these isolate their CPU cost.

// seedFlow is the shipped seed flow, compiled.
func seedFlow(b *testing.B) *processes.Definition {
	b.Helper()
	src, err := os.ReadFile(filepath.Join("..", "processes", "flows", "liqpay-hold.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	return compile(b, string(src))
}

// seedInput is a task of the seed flow as the engine hands it to a node.
func seedInput(extra map[string]any) *nodes.Input {
	env := processes.Env{
		"phone": "380950000001", "amount": json.Number("7.34"), "currency": "UAH", "description": "bench hold",
		"order_id": "ord-1", "card": liqpay.CardSuccess, "card_exp_month": "12", "card_exp_year": "29",
		"card_cvv": "123", "ip": "127.0.0.1",
		"task": map[string]any{"id": "0196c0de-0000-7000-8000-000000000001", "callback_url": "http://127.0.0.1:8080/callbacks/abc"},
		"env":  map[string]any{"LIQPAY_URL": "http://127.0.0.1:8080/sandbox/liqpay"},
	}
	for k, v := range extra {
		env[k] = v
	}
	return &nodes.Input{Env: env, Now: now,
		Secrets: map[string]string{"liqpay_public_key": liqpay.DefaultPublicKey, "liqpay_private_key": liqpay.DefaultPrivateKey}}
}

// BenchmarkAPI_Build_liqpay renders the hold's 24 body templates and signs
// the LiqPay envelope.
func BenchmarkAPI_Build_liqpay(b *testing.B) {
	api := spec[*nodes.API](b, seedFlow(b), "calling_api")
	in := seedInput(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := api.Build(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAPI_Judge_liqpay decodes LiqPay's JSON answer to a hold and runs
// the node's cases.
func BenchmarkAPI_Judge_liqpay(b *testing.B) {
	api := spec[*nodes.API](b, seedFlow(b), "calling_api")
	in := seedInput(nil)
	rep := nodes.Reply{Status: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(
		`{"result":"ok","payment_id":1000123,"action":"hold","status":"hold_wait","version":3,"type":"hold",` +
			`"paytype":"card","public_key":"sandbox_i00000000","acq_id":414963,"order_id":"ord-1",` +
			`"liqpay_order_id":"ABCD1234","description":"bench hold","sender_card_mask2":"424242*42",` +
			`"sender_card_bank":"Test","sender_card_type":"visa","sender_card_country":804,"amount":7.34,` +
			`"currency":"UAH","sender_commission":0,"receiver_commission":0.2,"agent_commission":0,` +
			`"amount_debit":7.34,"amount_credit":7.34,"commission_debit":0,"commission_credit":0.2,` +
			`"currency_debit":"UAH","currency_credit":"UAH","sender_bonus":0,"amount_bonus":0,"mpi_eci":"7",` +
			`"is_3ds":false,"create_date":1700000000000,"end_date":1700000000000,"transaction_id":1000123}`)}
	b.ReportAllocs()
	for b.Loop() {
		if v := api.Judge(in, 1, rep, func() float64 { return 0.5 }); v.Result.Outcome != nodes.OutNext {
			b.Fatalf("outcome %q", v.Result.Outcome)
		}
	}
}

// BenchmarkCallback_Decode_liqpay checks the signature of LiqPay's callback
// and decodes its envelope, as the seed's receive_callback does.
func BenchmarkCallback_Decode_liqpay(b *testing.B) {
	cb := spec[*nodes.Callback](b, seedFlow(b), "receive_callback")
	in := seedInput(nil)
	data, sig, err := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{
		"payment_id": 1000123, "action": "hold", "status": "hold_wait", "version": 3, "type": "hold",
		"public_key": liqpay.DefaultPublicKey, "order_id": "ord-1", "amount": 7.34, "currency": "UAH",
		"description": "bench hold", "sender_card_mask2": "424242*42", "obj_id": "0196c0de-0000-7000-8000-000000000001",
		"create_date": 1700000000000, "end_date": 1700000000000, "transaction_id": 1000123,
	})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(url.Values{"data": {data}, "signature": {sig}}.Encode())
	b.ReportAllocs()
	for b.Loop() {
		m, err := cb.Decode(in, "application/x-www-form-urlencoded", body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cb.Accept(in, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCondition_Run routes on the callback's status (check_status).
func BenchmarkCondition_Run(b *testing.B) {
	cond := spec[*nodes.Condition](b, seedFlow(b), "check_status")
	in := seedInput(map[string]any{"callback": map[string]any{"status": "hold_wait"}})
	b.ReportAllocs()
	for b.Loop() {
		res, err := cond.Run(in)
		if err != nil || res.Outcome != "held" {
			b.Fatalf("outcome %q, err %v", res.Outcome, err)
		}
	}
}

// BenchmarkSet_Run writes four fields from templates, like the lifecycle's
// bookkeeping nodes.
func BenchmarkSet_Run(b *testing.B) {
	def := compile(b, flow("{amount: {type: decimal}, n: {type: integer}}", `  mark:
    type: set
    set: {hold_state: HELD, held_amount: "{{ amount }}", n: "{{ n + 1 }}", note: "held {{ amount }} UAH"}
    next: done
  done: {type: final, result: success}
`))
	set := spec[*nodes.Set](b, def, "mark")
	in := seedInput(map[string]any{"n": int64(1)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := set.Run(in); err != nil {
			b.Fatal(err)
		}
	}
}

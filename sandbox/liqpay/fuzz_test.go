package liqpay_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// FuzzDecodeRequest feeds arbitrary bodies to the handler: whatever arrives,
// it must not panic and must answer JSON.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(url.Values{"data": {vectorData}, "signature": {vectorSignature}}.Encode())
	hold := `{"version":3,"public_key":"i00000000","action":"hold","amount":"1.50","currency":"UAH",` +
		`"description":"d","order_id":"o","card":"4000000000003089","card_exp_month":"12","card_exp_year":"30",` +
		`"card_cvv":"123","phone":"380950000001"}`
	data, sig, _ := liqpay.Encode(vectorPrivateKey, json.RawMessage(hold))
	f.Add(url.Values{"data": {data}, "signature": {sig}}.Encode())
	f.Add("data=&signature=")
	f.Add("data=%zz")
	f.Add("")

	srv := liqpay.New(liqpay.Config{Keys: map[string]string{"i00000000": vectorPrivateKey}})
	f.Cleanup(func() { _ = srv.Close() })
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, liqpay.PathRequest, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("Content-Type = %q for body %q", ct, body)
		}
		var reply map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
			t.Fatalf("reply %q is not a JSON object: %v", rec.Body.String(), err)
		}
		if reply["result"] != "ok" && reply["result"] != "error" {
			t.Fatalf("result = %v", reply["result"])
		}
	})
}

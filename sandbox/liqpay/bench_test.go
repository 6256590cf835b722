package liqpay_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// BenchmarkServer_Hold is the seed's hold as the engine sends it, mounted
// as the conveyor binary mounts it, with the callback it causes delivered
// to a receiver that answers 200: open and verify the envelope, hold,
// answer the payment, sign and post the callback.
func BenchmarkServer_Hold(b *testing.B) {
	var delivered sync.WaitGroup
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered.Done()
	}))
	b.Cleanup(hooks.Close)
	sb := liqpay.New(liqpay.Config{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	b.Cleanup(func() { _ = sb.Close() })
	h := http.StripPrefix(prefix, sb)
	bodies := make([]string, b.N)
	for i := range bodies {
		data, sig, err := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{
			"action": "hold", "version": "3", "public_key": liqpay.DefaultPublicKey, "phone": "380950000001",
			"amount": "7.34", "currency": "UAH", "description": "Conveyor bench", "order_id": fmt.Sprintf("bench-%d", i),
			"card": liqpay.CardSuccess, "card_exp_month": "12", "card_exp_year": "29", "card_cvv": "123",
			"ip": "127.0.0.1", "sandbox": "", "prepare": "", "product_url": "", "result_url": "",
			"sender_first_name": "", "sender_last_name": "", "sender_country_code": "", "sender_city": "",
			"sender_address": "", "sender_postal_code": "", "server_url": hooks.URL + "/callbacks/token",
		})
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = url.Values{"data": {data}, "signature": {sig}}.Encode()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		delivered.Add(1)
		r := httptest.NewRequest(http.MethodPost, prefix+liqpay.PathRequest, strings.NewReader(bodies[i]))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"status":"hold_wait"`) {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		delivered.Wait()
	}
}

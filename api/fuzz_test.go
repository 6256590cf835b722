package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/api"
	"github.com/conveyor-dev/conveyor/engine"
	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
	"github.com/conveyor-dev/conveyor/store/bolt"
)

// fuzzHandler is the real API over a real engine, called in-process (no
// socket) so that fuzzing runs fast. No provider is reachable: submitted
// holds fail their call, which is fine for what the fuzzers check.
func fuzzHandler(tb testing.TB) http.Handler {
	st, err := bolt.Open(filepath.Join(tb.TempDir(), "fuzz.db"), bolt.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	l := &processes.Loader{Kinds: nodes.Kinds()}
	defs, err := l.LoadFS(processes.Shipped(), ".")
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := engine.New(context.Background(), engine.Config{
		Store: st, Definitions: defs, Loader: l, Key: engine.NewKey(), BaseURL: "http://127.0.0.1:1",
		Env:     map[string]string{"LIQPAY_URL": "http://127.0.0.1:1", "VIA_URL": "http://127.0.0.1:1"},
		Secrets: map[string]string{"liqpay_public_key": liqpay.DefaultPublicKey, "liqpay_private_key": liqpay.DefaultPrivateKey, "via_client_id": "system", "via_client_secret": "system123"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return api.New(api.Config{Engine: eng})
}

// serveFuzz sends one request and checks the answer: never a 5xx, always a
// JSON body, never an echo of a card number it was given.
func serveFuzz(t *testing.T, h http.Handler, method, path, contentType string, body []byte) {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s answered %d: %s", method, path, rec.Code, rec.Body)
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s %s answered a body that is not JSON: %q", method, path, rec.Body)
	}
	if bytes.Contains(body, []byte("4242424242424242")) && strings.Contains(rec.Body.String(), "4242424242424242") {
		t.Fatalf("the answer echoes the card number: %s", rec.Body)
	}
}

func FuzzAPI_submit(f *testing.F) {
	for _, seed := range []string{
		`{"ref": "r1", "data": {"phone": "380950000001", "amount": "7.34", "currency": "UAH", "description": "d", "order_id": "o1", "card": "4242424242424242", "card_exp_month": "12", "card_exp_year": "29", "card_cvv": "123", "ip": "127.0.0.1"}}`,
		`{"ref": "r2", "data": {"amount": 1e999}}`,
		`{"data": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"ref": "", "data": null}`, `{"unknown": 1}`, `[]`, `"x"`, ``,
	} {
		f.Add(seed)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body string) {
		serveFuzz(t, h, http.MethodPost, "/api/v1/processes/liqpay-hold/tasks", "application/json", []byte(body))
	})
}

func FuzzAPI_callback(f *testing.F) {
	data, sig, _ := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{"status": "hold_wait", "order_id": "o1", "obj_id": "01a20000-0000-7000-8000-000000000000"})
	for _, seed := range []struct{ ct, body string }{
		{"application/json", `{"status": "hold_wait"}`},
		{"application/x-www-form-urlencoded", "data=" + data + "&signature=" + sig},
		{"application/x-www-form-urlencoded", "data=%%%&signature="},
		{"text/plain", "\x00\xff"},
	} {
		f.Add(seed.ct, seed.body)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, contentType, body string) {
		for _, path := range []string{
			"/callbacks/not-a-token",
			"/api/v1/processes/liqpay-hold/nodes/receive_callback/callback",
			"/api/v1/processes/liqpay-hold/tasks/some-ref/callback",
		} {
			serveFuzz(t, h, http.MethodPost, path, contentType, []byte(body))
		}
	})
}

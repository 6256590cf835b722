package liqpay_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// Signing a request the way every LiqPay SDK does.
func ExampleEncode() {
	data, signature, err := liqpay.Encode("a4825234f4bae72a0be04eafe9e8e2bada209255",
		json.RawMessage(`{"public_key":"i00000000","version":"3","action":"pay","amount":"3","currency":"UAH","description":"test","order_id":"000001"}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(data[:40] + "...")
	fmt.Println(signature)
	// Output:
	// eyJwdWJsaWNfa2V5IjoiaTAwMDAwMDAwIiwidmVy...
	// wR+UZDC4jjeL/qUOvIsofIWpZh8=
}

// Mounting the sandbox under a prefix and holding funds on a test card.
func ExampleNew() {
	sandbox := liqpay.New(liqpay.Config{})
	defer sandbox.Close()
	mux := http.NewServeMux()
	mux.Handle("/sandbox/liqpay/", http.StripPrefix("/sandbox/liqpay", sandbox))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	data, signature, _ := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{
		"version": 3, "public_key": liqpay.DefaultPublicKey, "action": "hold",
		"amount": "100", "currency": "UAH", "description": "deposit", "order_id": "order-42",
		"card": liqpay.CardSuccess, "card_exp_month": "12", "card_exp_year": "30", "card_cvv": "123",
		"phone": "380950000001",
	})
	resp, err := http.PostForm(srv.URL+"/sandbox/liqpay/api/request", url.Values{"data": {data}, "signature": {signature}})
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var reply struct {
		Result string `json:"result"`
		Status string `json:"status"`
		Mask   string `json:"sender_card_mask2"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		panic(err)
	}
	fmt.Println(reply.Result, reply.Status, reply.Mask)
	// Output: ok hold_wait 424242*42
}

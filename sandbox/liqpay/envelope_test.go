package liqpay_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// The documented test vector (holds.md §1.1).
const (
	vectorPrivateKey = "a4825234f4bae72a0be04eafe9e8e2bada209255"
	vectorJSON       = `{"public_key":"i00000000","version":"3","action":"pay","amount":"3","currency":"UAH","description":"test","order_id":"000001"}`
	vectorData       = "eyJwdWJsaWNfa2V5IjoiaTAwMDAwMDAwIiwidmVyc2lvbiI6IjMiLCJhY3Rpb24iOiJwYXkiLCJhbW91bnQiOiIzIiwiY3VycmVuY3kiOiJVQUgiLCJkZXNjcmlwdGlvbiI6InRlc3QiLCJvcmRlcl9pZCI6IjAwMDAwMSJ9"
	vectorSignature  = "wR+UZDC4jjeL/qUOvIsofIWpZh8="
)

func TestSign_matchesTheDocumentedTestVector(t *testing.T) {
	t.Parallel()
	if got := liqpay.Sign(vectorPrivateKey, vectorData); got != vectorSignature {
		t.Fatalf("Sign = %q, want %q", got, vectorSignature)
	}
}

func TestEncode_producesTheDocumentedTestVector(t *testing.T) {
	t.Parallel()
	data, signature, err := liqpay.Encode(vectorPrivateKey, json.RawMessage(vectorJSON))
	if err != nil {
		t.Fatal(err)
	}
	if data != vectorData || signature != vectorSignature {
		t.Fatalf("Encode = (%q, %q), want (%q, %q)", data, signature, vectorData, vectorSignature)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	t.Run("verifies the test vector and returns its parameters", func(t *testing.T) {
		t.Parallel()
		got, err := liqpay.Decode(vectorPrivateKey, vectorData, vectorSignature)
		if err != nil {
			t.Fatal(err)
		}
		if got["action"] != "pay" || got["order_id"] != "000001" || got["version"] != "3" {
			t.Fatalf("Decode = %v", got)
		}
	})
	t.Run("keeps numbers exact as json.Number", func(t *testing.T) {
		t.Parallel()
		data, sig, _ := liqpay.Encode("k", json.RawMessage(`{"amount":7.34}`))
		got, err := liqpay.Decode("k", data, sig)
		if err != nil {
			t.Fatal(err)
		}
		if got["amount"] != json.Number("7.34") {
			t.Fatalf("amount = %#v, want json.Number 7.34", got["amount"])
		}
	})
	t.Run("rejects a wrong key, a wrong or missing signature", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct{ key, sig string }{
			{"other", vectorSignature},
			{vectorPrivateKey, "wR+UZDC4jjeL/qUOvIsofIWpZh9="},
			{vectorPrivateKey, ""},
		} {
			if _, err := liqpay.Decode(c.key, vectorData, c.sig); !errors.Is(err, liqpay.ErrInvalidSignature) {
				t.Errorf("Decode(%q, data, %q) error = %v, want ErrInvalidSignature", c.key, c.sig, err)
			}
		}
	})
	t.Run("rejects data that is not Base64 JSON", func(t *testing.T) {
		t.Parallel()
		for _, data := range []string{"not base64!", "bm90IGpzb24=", "WzFd", "e30ge30="} {
			if _, err := liqpay.Decode("k", data, liqpay.Sign("k", data)); !errors.Is(err, liqpay.ErrMalformed) {
				t.Errorf("Decode(%q) error = %v, want ErrMalformed", data, err)
			}
		}
	})
}

func TestParseFaults(t *testing.T) {
	t.Parallel()
	t.Run("reads every knob and renders it back", func(t *testing.T) {
		t.Parallel()
		in := "latency=200ms,http500,timeout,drop_callback,duplicate_callback,delay_callback=1s,bad_signature_callback,pending=2s,reorder_callbacks"
		f, err := liqpay.ParseFaults(" " + in + ", ")
		if err != nil {
			t.Fatal(err)
		}
		if got := f.String(); got != in {
			t.Fatalf("String = %q, want %q", got, in)
		}
	})
	t.Run("bare pending stays pending for ever", func(t *testing.T) {
		t.Parallel()
		f, err := liqpay.ParseFaults("pending")
		if err != nil || !f.Pending || f.PendingFor != 0 {
			t.Fatalf("ParseFaults(pending) = %+v, %v", f, err)
		}
	})
	t.Run("rejects unknown knobs and bad durations", func(t *testing.T) {
		t.Parallel()
		for _, in := range []string{"slow", "latency", "latency=fast", "latency=-1s", "http500=1s", "pending=0s"} {
			if _, err := liqpay.ParseFaults(in); err == nil {
				t.Errorf("ParseFaults(%q) succeeded, want an error", in)
			}
		}
	})
}

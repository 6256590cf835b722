package liqpay

import (
	"bytes"
	"encoding/json"
	"math/big"
	"reflect"
	"testing"
	"time"
)

// FuzzMarshal holds marshal to json.Marshal on the objects encoding/json
// decodes: the bytes are the same, or both fail.
func FuzzMarshal(f *testing.F) {
	for _, s := range []string{
		`{"result":"ok","payment_id":1000000001,"amount":7.34,"is_3ds":false,"err_code":null,"description":"Оплата №5"}`,
		`{"s":"<b>&amp;</b>","t":"a\"b","u":"\u2028","v":"\u0001"}`, `{"nested":{"a":1}}`, `{"list":[1]}`, `{}`, `[]`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		checkMarshal(t, v)
	})
}

func checkMarshal(t *testing.T, v any) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	got, err := marshal(v)
	if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("marshal(%#v) = %s, %v; json.Marshal gives %s, %v", v, got, err, want, wantErr)
	}
}

func TestMarshal(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1700000000000)
	p := &payment{key: orderKey{DefaultPublicKey, "o-1"}, id: 1000000001, desc: "Оплата <замовлення> & co", currency: "UAH",
		amount: big.NewRat(734, 100), captured: big.NewRat(5, 1), refunded: big.NewRat(1, 2), status: statusOTPVerify,
		token: "tok", sandbox: true, created: now, ended: now, completedAt: now, refundedAt: now, errCode: "err_sms_otp"}
	for _, v := range []any{
		reply(p), refundReply(p), errorReply(errCode("err_wrong", "bad")), p.object(),
		map[string]any{"n": json.Number("1e400"), "bad": json.Number("1.")}, map[string]any{"empty": json.Number("")},
		map[string]any{"f": 1.5}, map[string]any{"u": "\xff"}, map[string]any(nil), json.RawMessage(`{"b":1,"a":2}`),
	} {
		checkMarshal(t, v)
	}
	if _, ok := appendFlatObject(nil, reply(&payment{amount: big.NewRat(1, 1)})); !ok {
		t.Error("marshal leaves a plain reply to json.Marshal")
	}
}

// FuzzDecodeFlat holds decodeFlat to json.Decoder with UseNumber: whatever
// it reads, encoding/json reads the same, with nothing after it.
func FuzzDecodeFlat(f *testing.F) {
	for _, s := range []string{
		`{"version":3,"public_key":"i00000000","action":"hold","amount":"1.50","is":true,"no":false,"n":null,"f":-1.5e+3}`,
		` {"a":"Оплата","a":"b"} `, `{}`, `{"a":{}}`, `{"a":[1]}`, `{"a":"\n"}`, `{"a":1}x`, `{"a":1,}`, `{"a":01}`,
		`{"a":1.}`, `{"a":-}`, `{"a":"x"`, `[]`, "{\"a\":\"\xff\"}", `{"a" :  tru}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := decodeFlat(b)
		if !ok {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want map[string]any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("decodeFlat read %q, encoding/json refuses it: %v", b, err)
		}
		if _, err := dec.Token(); err == nil {
			t.Fatalf("decodeFlat read %q, encoding/json finds more after it", b)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeFlat(%q) = %#v, encoding/json gives %#v", b, got, want)
		}
	})
}

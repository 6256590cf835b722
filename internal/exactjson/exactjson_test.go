package exactjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// jsonSeeds are bodies as providers send them, and the edges of the
// grammar.
var jsonSeeds = []string{
	`{"result":"ok","payment_id":1000123,"action":"hold","status":"hold_wait","version":3,"type":"hold",` +
		`"paytype":"card","public_key":"sandbox_i00000000","acq_id":414963,"order_id":"ord-1",` +
		`"liqpay_order_id":"ABCD1234","description":"bench hold","sender_card_mask2":"424242*42",` +
		`"amount":7.34,"currency":"UAH","receiver_commission":0.2,"is_3ds":false,"create_date":1700000000000,"mpi_eci":"7"}`,
	`{"a":{"b":[1,2,{"c":null}],"d":[]},"e":{},"f":-0.5e+10,"g":true}`,
	` {"dup":1,"dup":{"x":2}} `,
	`{"s":"Оплата замовлення №5"}`,
	`{"s":"a\"b","t":"\u003c"}`,
	`{"a":1} {"b":2}`,
	`{"a":1}}`,
	`[1,"two",3.0E-2,false]`,
	`"text"`, `12`, `-0`, `01`, `1.`, `.5`, `1e`, `-`, `null`, `nul`, `truex`, `{"a" 1}`, `{"a":1,}`, `[1,]`,
	`{"k":"\x01"}`, "{\"k\":\"\xff\"}", "{\"k\":\"\u2028\"}", `{`, `}`, ``, `   `, "\ufeff{}",
}

// FuzzDecode holds Decode to json.Decoder with UseNumber: whatever it
// reads, encoding/json reads the same and finds nothing after it.
func FuzzDecode(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := Decode(b)
		if !ok {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("Decode read %q, encoding/json refuses it: %v", b, err)
		}
		if _, err := dec.Token(); err == nil {
			t.Fatalf("Decode read %q, encoding/json finds more after the value", b)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q) = %#v, encoding/json gives %#v", b, got, want)
		}
	})
}

// FuzzAppend holds Append to json.Marshal on what encoding/json
// decodes: whatever it writes, json.Marshal writes too.
func FuzzAppend(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		checkAppendJSON(t, v)
	})
}

func checkAppendJSON(t *testing.T, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	got, ok := Append(nil, v)
	switch {
	case !ok:
	case err != nil:
		t.Fatalf("Append(%#v) = %s, json.Marshal fails: %v", v, got, err)
	case !bytes.Equal(got, want):
		t.Fatalf("Append(%#v) = %s, json.Marshal gives %s", v, got, want)
	}
}

func TestAppendJSON(t *testing.T) {
	t.Parallel()
	for _, v := range []any{
		map[string]any{"b": 1, "a": int64(-2), "c": []any{json.Number("1.50"), nil, true, "x"}, "d": map[string]any{}},
		map[string]any(nil), []any(nil), []any{}, json.Number(""), json.Number("1.2.3"), json.Number("-0.0e-0"),
		map[string]any{"html": "<b>&</b>"}, map[string]any{"ctl": "a\nb"}, map[string]any{"uni": "грн ₴"},
		map[string]any{"bad": "\xff"}, map[string]any{"sep": "a\u2028b"}, map[string]any{"f": 1.5}, uint64(1 << 63), int64(-1 << 63),
		map[string]any{"many": map[string]any{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9, "j": 10,
			"k": 11, "l": 12, "m": 13, "n": 14, "o": 15, "p": 16, "q": 17, "r": 18, "s": 19, "t": 20, "u": 21, "v": 22,
			"w": 23, "x": 24, "y": 25, "z": 26, "aa": 27, "ab": 28, "ac": 29, "ad": 30, "ae": 31, "af": 32, "ag": 33}},
	} {
		checkAppendJSON(t, v)
	}
	cycle := map[string]any{}
	cycle["self"] = cycle
	if _, err := Marshal(cycle); err == nil {
		t.Error("Marshal encodes a cycle")
	}
	if _, ok := Append(nil, map[string]any{"ok": "plain"}); !ok {
		t.Error("Append refuses a plain object")
	}
}

func BenchmarkDecode(b *testing.B) {
	body := []byte(jsonSeeds[0])
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := Decode(body); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

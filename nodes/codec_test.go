package nodes

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"
)

// FuzzLiqPayFields holds liqpayFields to url.ParseQuery.
func FuzzLiqPayFields(f *testing.F) {
	for _, s := range []string{
		"data=eyJhIjoxfQ%3D%3D&signature=abc%2B%2F%3D", "signature=x&data=y&data=z", "data=a+b%20c&x=%zz",
		"data=1;signature=2", "d%61ta=1", "&&data=&signature=s", "data", "=x&data=1", "data=%4", "data=%41",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		data, sig, ok := liqpayFields(b)
		if !ok {
			return
		}
		form, err := url.ParseQuery(string(b))
		if err != nil {
			t.Fatalf("liqpayFields read %q, url.ParseQuery refuses it: %v", b, err)
		}
		if string(data) != form.Get("data") || string(sig) != form.Get("signature") {
			t.Fatalf("liqpayFields(%q) = %q, %q; url.ParseQuery gives %q, %q", b, data, sig, form.Get("data"), form.Get("signature"))
		}
	})
}

func TestLiqPayEncode_asURLValues(t *testing.T) {
	t.Parallel()
	params := map[string]any{"action": "hold", "amount": json.Number("7.34"), "description": "a <b> & ~c"}
	got, err := liqpayEncode("private", params)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(params)
	form, err := url.ParseQuery(string(got))
	if err != nil {
		t.Fatal(err)
	}
	data := form.Get("data")
	sig := liqpaySign("private", []byte(data))
	want := url.Values{"data": {data}, "signature": {string(sig[:])}}.Encode()
	if string(got) != want {
		t.Errorf("form %s, want %s", got, want)
	}
	decoded, err := liqpayDecode("private", got)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(decoded); !bytes.Equal(again, js) {
		t.Errorf("round trip %s, want %s", again, js)
	}
}

func FuzzAppendQueryEscape(f *testing.F) {
	f.Add([]byte("eyJhIjoxfQ==+/ -_.~\x00\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := string(appendQueryEscape(nil, b)), url.QueryEscape(string(b)); got != want {
			t.Fatalf("appendQueryEscape(%q) = %q, url.QueryEscape gives %q", b, got, want)
		}
	})
}

func FuzzQueryUnescape(f *testing.F) {
	for _, s := range []string{"eyJhIjoxfQ%3D%3D", "a+b%20c", "%", "%4", "%zz", "x%41", "%41%42+", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := queryUnescape(b)
		want, err := url.QueryUnescape(string(b))
		if ok != (err == nil) || ok && string(got) != want {
			t.Fatalf("queryUnescape(%q) = %q, %v; url.QueryUnescape gives %q, %v", b, got, ok, want, err)
		}
	})
}

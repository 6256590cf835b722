package api

import (
	"reflect"
	"testing"
)

// FuzzServer_plainSubmit holds the submit's shortcut to decodeBytes: a body
// it reads, decodeBytes reads alike.
func FuzzServer_plainSubmit(f *testing.F) {
	for _, seed := range []string{
		`{"ref":"r1","data":{"phone":"380950000001","amount":7.34,"card":"4242424242424242","n":[1,{"x":null}]}}`,
		` {"data":{}} `, `{"ref":"a","ref":"b"}`, `{"data":{"a":1},"data":{"b":2}}`, `{"data":null}`, `{"ref":null}`,
		`{"Ref":"x"}`, `{"ref":1}`, `{"data":[]}`, `{"other":1}`, `{}`, `{"data":{"s":"\u00e9"}}`, `{"ref":"x"} {}`,
		`{"data":{"a":{"b":{"c":{"d":1}}}}}`,
	} {
		f.Add([]byte(seed))
	}
	s := &server{maxDepth: 3}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := s.plainSubmit(b)
		if !ok {
			return
		}
		var want submitRequest
		if err := s.decodeBytes(b, &want, false); err != nil {
			t.Fatalf("plainSubmit read %q, decodeBytes refuses it: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("plainSubmit(%q) = %#v, decodeBytes gives %#v", b, got, want)
		}
	})
}

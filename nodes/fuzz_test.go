package nodes_test

import (
	"testing"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/sandbox/liqpay"
)

// FuzzCallback_Decode feeds arbitrary bodies to the callback decoder of
// every codec: no panic; a body is either decoded to an object or refused
// with an error.
func FuzzCallback_Decode(f *testing.F) {
	data, sig, _ := liqpay.Encode(liqpay.DefaultPrivateKey, map[string]any{"status": "hold_wait", "amount": "7.34"})
	for _, seed := range []string{`{"status": "ok"}`, "a=1&a=2&b=3", "data=" + data + "&signature=" + sig, "data=&signature=", `{"x": 1e99999}`, "\xff"} {
		f.Add("application/json", seed)
		f.Add("application/x-www-form-urlencoded", seed)
	}
	def := compile(f, flow("{}", `
  by_json:   {type: callback, timeout: 1m, on_timeout: done, next: done}
  by_form:   {type: callback, codec: form, timeout: 1m, on_timeout: done, next: done}
  by_liqpay: {type: callback, codec: {name: liqpay, private_key: liqpay_private_key}, timeout: 1m, on_timeout: done, next: done}
  done: {type: final, result: success}`))
	in := &nodes.Input{Secrets: map[string]string{"liqpay_private_key": liqpay.DefaultPrivateKey}}
	f.Fuzz(func(t *testing.T, contentType, body string) {
		for _, name := range []string{"by_json", "by_form", "by_liqpay"} {
			m, err := spec[*nodes.Callback](t, def, name).Decode(in, contentType, []byte(body))
			if err == nil && m == nil {
				t.Fatalf("%s: no error and no object for %q", name, body)
			}
		}
	})
}

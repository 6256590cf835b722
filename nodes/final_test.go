package nodes_test

import (
	"testing"

	"github.com/conveyor-dev/conveyor/nodes"
)

func TestFinal_Result(t *testing.T) {
	t.Parallel()
	def := compile(t, flow("{}", `  ok: {type: final, result: success}
  bad: {type: final, result: error}
`))
	for name, want := range map[string]string{"ok": nodes.ResultSuccess, "bad": nodes.ResultError} {
		f := spec[*nodes.Final](t, def, name)
		if f.Result() != want {
			t.Errorf("%s: Result = %q, want %q", name, f.Result(), want)
		}
		if len(f.Edges()) != 0 {
			t.Errorf("%s: Edges = %v, want none", name, f.Edges())
		}
	}
}

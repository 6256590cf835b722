package processes_test

import (
	"io/fs"
	"strconv"
	"testing"

	"github.com/conveyor-dev/conveyor/nodes"
	"github.com/conveyor-dev/conveyor/processes"
)

// benchProbe compiles a probe node for a benchmark.
func benchProbe(b *testing.B, probe string) *probeSpec {
	b.Helper()
	l := &processes.Loader{Kinds: processes.Kinds{"probe": probeKind{}}}
	def, err := l.Load("probe.yaml", []byte(probeFlow(exprInput, "[]", probe)))
	if err != nil {
		b.Fatalf("probe %s: %v", probe, err)
	}
	return def.Node("p").Spec.(*probeSpec)
}

// BenchmarkExpr_Eval evaluates a condition as the lifecycle's guards do:
// exact decimals, a nil-safe field and a membership test.
func BenchmarkExpr_Eval(b *testing.B) {
	e := benchProbe(b, "expr: "+strconv.Quote(`dec_cmp(amount, 0) > 0 && (note ?? "") == "" && status in ["ok", "held"] && n < 100`)).expr
	env := exprEnv()
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := e.Bool(env); err != nil || !ok {
			b.Fatalf("got %v, %v", ok, err)
		}
	}
}

// BenchmarkTemplate_Render renders a whole hole (the value kept as is) and
// a mixed template (rendered to a string).
func BenchmarkTemplate_Render(b *testing.B) {
	for name, src := range map[string]string{"whole": "{{ amount }}", "mixed": "{{ env.LIQPAY_URL }}/api/request?task={{ task.id }}&n={{ n + 1 }}"} {
		b.Run(name, func(b *testing.B) {
			t := benchProbe(b, "template: "+strconv.Quote(src)).tmpl
			env := exprEnv()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := t.Render(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoader_Load compiles the biggest shipped flow: what a restart
// pays per stored version a task still runs on.
func BenchmarkLoader_Load(b *testing.B) {
	src, err := fs.ReadFile(processes.Shipped(), "liqpay-hold-lifecycle.yaml")
	if err != nil {
		b.Fatal(err)
	}
	l := &processes.Loader{Kinds: nodes.Kinds()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Load("liqpay-hold-lifecycle.yaml", src); err != nil {
			b.Fatal(err)
		}
	}
}

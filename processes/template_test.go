package processes_test

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conveyor-dev/conveyor/processes"
)

// compileTemplate compiles src as a template of a probe node, for task data.
func compileTemplate(t *testing.T, src string) *processes.Template {
	t.Helper()
	tmpl := mustProbe(t, exprInput, "template: "+strconv.Quote(src)).tmpl
	if tmpl == nil {
		t.Fatalf("template %s did not compile", src)
	}
	return tmpl
}

func TestTemplate_Render(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		want      any
	}{
		{"whole hole keeps a json.Number", "{{ amount }}", json.Number("5.00")},
		{"whole hole keeps an integer", "{{ n + 1 }}", 42},
		{"whole hole keeps a boolean", "{{ status == 'ok' }}", true},
		{"whole hole keeps an object", "{{ meta }}", map[string]any{"source": "test"}},
		{"whole hole of an absent field is nil", "{{ note }}", nil},
		{"spaces around a whole hole do not matter", "{{amount}}", json.Number("5.00")},
		{"mixed renders a string", "amount {{ amount }}", "amount 5.00"},
		{"two holes render a string", "{{ n }}{{ n }}", "4141"},
		{"nil renders empty", "[{{ note }}]", "[]"},
		{"object renders JSON", "meta={{ meta }}", `meta={"source":"test"}`},
		{"boolean renders its word", "ok={{ status == 'ok' }}", "ok=true"},
		{"no holes is the text", "plain text", "plain text"},
		{"reserved roots", "{{ env.LIQPAY_URL }}/api?task={{ task.id }}", "https://liqpay.example/api?task=t1"},
		{"decimal helper", "{{ from_minor(to_minor(amount, 2) + 1, 2) }}", "5.01"},
		{"single braces are text", "{a} {{ status }} }", "{a} ok }"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmpl := compileTemplate(t, tt.src)
			if tmpl.Src != tt.src {
				t.Errorf("Src = %q, want %q", tmpl.Src, tt.src)
			}
			got, err := tmpl.Render(exprEnv())
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Render(%q) (-want +got):\n%s", tt.src, diff)
			}
		})
	}
}

func TestTemplate_String(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]string{
		"{{ amount }}":         "5.00",
		"{{ note }}":           "",
		"{{ n }}":              "41",
		"{{ meta }}":           `{"source":"test"}`,
		"x{{ task.attempt }}y": "x1y",
	} {
		got, err := compileTemplate(t, src).String(exprEnv())
		if err != nil || got != want {
			t.Errorf("String(%q) = %q, %v; want %q", src, got, err, want)
		}
	}
}

func TestTemplate_Render_error(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"{{ int(status) }}", "x {{ int(status) }}"} {
		_, err := compileTemplate(t, src).Render(exprEnv())
		if err == nil || !strings.Contains(err.Error(), "int(status)") {
			t.Errorf("Render(%q): err = %v, want one naming the expression", src, err)
		}
		if _, err := compileTemplate(t, src).String(exprEnv()); err == nil {
			t.Errorf("String(%q): no error", src)
		}
	}
}

func TestStringify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		want string
	}{
		{nil, ""},
		{"text", "text"},
		{json.Number("7.340"), "7.340"},
		{42, "42"},
		{int64(-3), "-3"},
		{true, "true"},
		{map[string]any{"b": 1, "a": "x"}, `{"a":"x","b":1}`},
		{[]any{1, "two", nil}, `[1,"two",null]`},
		{time.Duration(90) * time.Second, "1m30s"}, // a fmt.Stringer
		{&url.URL{Scheme: "https", Host: "h"}, "https://h"},
	}
	for _, tt := range tests {
		if got := processes.Stringify(tt.in); got != tt.want {
			t.Errorf("Stringify(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestValue_Render specifies value trees (request bodies, set values):
// mappings keep their key order and leave out keys whose value renders to
// nil, so optional fields that were not given are not sent.
func TestValue_Render(t *testing.T) {
	t.Parallel()
	v := mustProbe(t, exprInput, `value: {a: "{{ note }}", b: 1, c: true, d: null, e: [1, "{{ note }}", 2.50], f: {g: "{{ amount }}", h: "{{ note }}"}, i: plain, j: "n={{ n }}", k: '{{ n }}'}`).value
	if v == nil {
		t.Fatal("no value")
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d", "e", "f", "i", "j", "k"}, v.Keys()); diff != "" {
		t.Errorf("Keys (-want +got):\n%s", diff)
	}
	got, err := v.Render(exprEnv())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"b": json.Number("1"),
		"c": true,
		"e": []any{json.Number("1"), nil, json.Number("2.50")},
		"f": map[string]any{"g": json.Number("5.00")},
		"i": "plain",
		"j": "n=41",
		"k": int64(41),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Render (-want +got):\n%s", diff)
	}
}

func TestValue_Render_error(t *testing.T) {
	t.Parallel()
	for _, probe := range []string{
		`value: {a: "{{ int(status) }}"}`,
		`value: ["{{ int(status) }}"]`,
		`value: {a: {b: "{{ int(status) }}"}}`,
	} {
		if _, err := mustProbe(t, exprInput, probe).value.Render(exprEnv()); err == nil {
			t.Errorf("%s: Render did not fail", probe)
		}
	}
}

// TestNodeContext_Template specifies where sensitive fields and secrets may
// go: card data only into request bodies (to the provider), secrets only
// into request headers; URLs and task data get neither.
func TestNodeContext_Template(t *testing.T) {
	t.Parallel()
	tests := []struct {
		use, tmpl string
		want      string // the problem, "" for none
	}{
		{"body", "{{ card }}", ""},
		{"header", "Bearer {{ secrets.token }}", ""},
		{"header", "{{ status }}", ""},
		{"url", "https://x/{{ status }}", ""},
		{"data", "{{ status }}", ""},
		{"url", "https://x/{{ card }}", `sensitive field "card" (pan) must not be used in a URL: it would leak`},
		{"header", "{{ card }}", `sensitive field "card" (pan) must not be used in a request header: it would leak`},
		{"data", "x {{ cvv }}", `sensitive field "cvv" (secret) must not be used in task data: it would leak`},
		{"body", "{{ secrets.token }}", "secrets may only be read in request headers"},
		{"url", "{{ secrets.token }}", "secrets may only be read in request headers"},
		{"data", "{{ secrets.token }}", "secrets may only be read in request headers"},
		{"header", "{{ secrets.tokn }}", `unknown secret "tokn": declare it under secrets`},
		{"data", "{{ http.status }}", "http is only available in the cases of an api node"},
		{"data", "a {{ b", `unclosed {{ in template "a {{ b"`},
		{"data", "a {{  }} b", `empty {{ }} in template "a {{  }} b"`},
		{"data", "{{ nope }}", `unknown field "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.use+" "+tt.tmpl, func(t *testing.T) {
			t.Parallel()
			input := `{status: {type: string}, card: {type: string, sensitive: pan}, cvv: {type: string, sensitive: secret}}`
			spec, node, err := loadProbe(t, input, "[token]", "use: "+tt.use+", template: "+strconv.Quote(tt.tmpl))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("problems: %v", err)
				}
				if spec.tmpl == nil {
					t.Fatal("no template")
				}
				if strings.Contains(tt.tmpl, "card") && !cmp.Equal(node.Sensitive, []string{"card"}) {
					t.Errorf("node.Sensitive = %v, want [card]: the engine erases what nodes read", node.Sensitive)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("problems: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

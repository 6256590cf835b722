package processes_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyor-dev/conveyor/nodes"
)

// TestDocs keeps docs/language.md honest about what can drift: its complete
// example is the shipped flow, its graph is the golden, and every node kind
// has a section.
func TestDocs(t *testing.T) {
	t.Parallel()
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	doc := read("docs/language.md")
	block := func(fence string) string {
		t.Helper()
		_, rest, ok := strings.Cut(doc, "\n```"+fence+"\n")
		if !ok {
			t.Fatalf("docs/language.md has no ```%s block", fence)
		}
		body, _, _ := strings.Cut(rest, "```\n")
		return body
	}
	if got, want := block("yaml"), read("processes/flows/liqpay-hold.yaml"); got != want {
		t.Error("the complete example in docs/language.md is not processes/flows/liqpay-hold.yaml: copy the file in")
	}
	if got, want := block("mermaid"), read("testdata/flows/liqpay-hold.mermaid.golden"); got != want {
		t.Error("the graph in docs/language.md is not testdata/flows/liqpay-hold.mermaid.golden: copy the golden in")
	}
	for kind := range nodes.Kinds() {
		if !strings.Contains(doc, "\n### "+kind+"\n") {
			t.Errorf("docs/language.md has no section for node kind %s", kind)
		}
	}
}

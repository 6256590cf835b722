package processes_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"

	"github.com/conveyor-dev/conveyor/processes"
)

// flowSchema compiles the embedded schema, which must itself be valid.
func flowSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(processes.JSONSchema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource("conveyor.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("conveyor.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

// yamlInstance decodes a flow file as an editor's YAML extension does, into
// JSON values.
func yamlInstance(t *testing.T, name string) any {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestJSONSchema_good(t *testing.T) {
	t.Parallel()
	s := flowSchema(t)
	good, _ := filepath.Glob(filepath.Join(root, "testdata/flows/good/*.yaml"))
	shipped, _ := filepath.Glob(filepath.Join(root, "processes/flows/*.yaml"))
	for _, f := range append(good, shipped...) {
		name, _ := filepath.Rel(root, f)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := s.Validate(yamlInstance(t, name)); err != nil {
				t.Errorf("a good flow fails the schema:\n%v", err)
			}
		})
	}
}

func TestJSONSchema_broken(t *testing.T) {
	t.Parallel()
	s := flowSchema(t)
	tests := []struct {
		file string
		want string // a path the schema's error must name
	}{
		{"unknown-key.yaml", "titel"},
		{"unknown-node-type.yaml", "/nodes/hook/type"},
		{"missing-start.yaml", "start"},
		{"final-bad-result.yaml", "/nodes/ok/result"},
		{"waiting-without-timeout.yaml", "/nodes/wait_callback"},
		{"bad-duration.yaml", "/nodes/call/timeout"},
		{"bad-retry.yaml", "/nodes/call/retry"},
		{"condition-no-cases.yaml", "/nodes/route"},
		{"input-bad-type.yaml", "/input/amount/type"},
		{"url-host-from-data.yaml", "/nodes/a/request/url"},
		{"node-common-keys.yaml", "/nodes/first/alarm/threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			err := s.Validate(yamlInstance(t, "testdata/flows/broken/"+tt.file))
			if err == nil {
				t.Fatal("a broken flow passes the schema")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not mention %s:\n%v", tt.want, err)
			}
		})
	}
}

func TestJSONSchema(t *testing.T) {
	t.Parallel()
	a := processes.JSONSchema()
	a[0] = 'x'
	if b := processes.JSONSchema(); b[0] != '{' {
		t.Error("JSONSchema returns the embedded bytes themselves: a caller can change them")
	}
	var doc map[string]any
	if err := json.Unmarshal(processes.JSONSchema(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v, want draft 2020-12", doc["$schema"])
	}
}

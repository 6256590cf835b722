package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPI_matchesRoutes keeps openapi.json true: every route of the
// table has its path and method in the document and every operation of the
// document is a route; routes that need the token say so and document 401,
// public ones override the global security with none.
func TestOpenAPI_matchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI  string                                `json:"openapi"`
		Security []map[string][]string                 `json:"security"`
		Paths    map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q, want 3.x", doc.OpenAPI)
	}
	type operation struct {
		Security  *[]map[string][]string     `json:"security"`
		Responses map[string]json.RawMessage `json:"responses"`
	}
	inTable := map[string]bool{}
	for _, rt := range routes {
		key := strings.ToLower(rt.method) + " " + rt.path
		inTable[key] = true
		raw, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("route %s is not in openapi.json", rt.pattern())
			continue
		}
		var op operation
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if op.Security == nil {
			t.Errorf("%s: say its security explicitly", key)
			continue
		}
		needsToken := len(*op.Security) > 0
		if needsToken != rt.auth {
			t.Errorf("%s: document says bearer %v, the route table %v", key, needsToken, rt.auth)
		}
		if _, ok := op.Responses["401"]; rt.auth && !ok {
			t.Errorf("%s: needs the token but documents no 401", key)
		}
		for code := range op.Responses {
			if len(code) != 3 || !strings.ContainsAny(code[:1], "2345") {
				t.Errorf("%s: odd response code %q", key, code)
			}
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			if !inTable[method+" "+path] {
				t.Errorf("openapi.json documents %s %s, which is no route", strings.ToUpper(method), path)
			}
		}
	}
}

// TestOpenAPI_errorCodes checks that the Error schema lists exactly the
// codes of the status table.
func TestOpenAPI_errorCodes(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Error struct {
							Properties struct {
								Code struct {
									Enum []string `json:"enum"`
								} `json:"code"`
							} `json:"properties"`
						} `json:"error"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	documented := doc.Components.Schemas.Error.Properties.Error.Properties.Code.Enum
	var codes []string
	for code := range statuses {
		if code != "not_waiting" { // a callback answer, shown as CallbackResult
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
	slices.Sort(documented)
	if !slices.Equal(codes, documented) {
		t.Errorf("Error.code enum %v, status table %v", documented, codes)
	}
}

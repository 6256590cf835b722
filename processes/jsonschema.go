package processes

import _ "embed"

//go:embed conveyor.schema.json
var jsonSchema []byte

// JSONSchema returns a JSON Schema (draft 2020-12) of the flow language, for
// editors to complete and check flows as they are written (see
// docs/language.md). It checks shapes only: names, keys, types and required
// keys; the loader checks the rest (expressions, edges, reachability, leaks).
// The slice is a copy the caller may keep.
func JSONSchema() []byte { return append([]byte(nil), jsonSchema...) }

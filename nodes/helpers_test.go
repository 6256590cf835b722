package nodes_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// equalJSON compares two values as JSON would see them.
func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// diff reports a difference between want and got with a heading.
func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

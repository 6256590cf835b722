package bench

import (
	"embed"
	"os"
	"path/filepath"
)

// flows are the benchmark's own processes: bench-internal (set and
// condition nodes only) and bench-wait (a callback node with a deadline
// from the data).
//
//go:embed flows/*.yaml
var flows embed.FS

// writeFlow copies the embedded flow name (e.g. "internal.yaml") into a
// fresh directory under dir, which the service then loads as its
// --processes directory.
func writeFlow(dir, name string) (string, error) {
	src, err := flows.ReadFile("flows/" + name)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "flows")
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", err
	}
	return out, os.WriteFile(filepath.Join(out, name), src, 0o644)
}

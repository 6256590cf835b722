package processes

import (
	"embed"
	"io/fs"
)

//go:embed flows/*.yaml
var shipped embed.FS

// Shipped returns the flows built into the binary (processes/flows).
func Shipped() fs.FS {
	sub, _ := fs.Sub(shipped, "flows")
	return sub
}

//go:build !linux

package bench

import (
	"os"
	"time"
)

// fdatasync falls back to a full sync where the system has no fdatasync.
func fdatasync(f *os.File) error { return f.Sync() }

// processCPU is not measured outside Linux.
func processCPU() (time.Duration, bool) { return 0, false }

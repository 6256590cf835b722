//go:build !linux

package bolt

import "errors"

// populate is not implemented off Linux: the map warms as requests touch it.
func populate(addr, n uintptr) error { return errors.ErrUnsupported }

// physicalMemory is unknown off Linux.
func physicalMemory() int64 { return 0 }

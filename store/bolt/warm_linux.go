package bolt

import (
	"syscall"
)

// madvPopulateRead is MADV_POPULATE_READ (Linux 5.14): fault in the page
// tables of a range as reads would, without reading the data into user space.
const madvPopulateRead = 22

// populate faults in [addr, addr+n) of the file's map. Older kernels answer
// EINVAL, and the map stays cold as it always was.
func populate(addr, n uintptr) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, n, madvPopulateRead); errno != 0 {
		return errno
	}
	return nil
}

// physicalMemory is the machine's RAM in bytes, or 0 when unknown.
func physicalMemory() int64 {
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

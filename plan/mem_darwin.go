package plan

import "golang.org/x/sys/unix"

// physicalMemory is sysctl hw.memsize (0 when it cannot be read).
func physicalMemory() int64 {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		return 0
	}
	return int64(n)
}

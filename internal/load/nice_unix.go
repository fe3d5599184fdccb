//go:build unix

package load

import "syscall"

// lowerPriority sets this process's nice value.
func lowerPriority(nice int) error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, 0, nice)
}

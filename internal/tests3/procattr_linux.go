package tests3

import "syscall"

// procAttr has the kernel stop the server if the test binary dies without
// Main's cleanup, so no server outlives a killed test run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

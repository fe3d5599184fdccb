package testproc

import "syscall"

// ProcAttr runs a server process as cred (nil: as this process) and has
// the kernel send it stop if the test binary dies without its helper's
// cleanup, so no server outlives a killed test run.
func ProcAttr(cred *syscall.Credential, stop syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: stop}
}

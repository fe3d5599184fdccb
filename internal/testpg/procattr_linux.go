package testpg

import "syscall"

// procAttr runs a server process as cred (nil: as this process) and has the
// kernel stop it (fast shutdown) if the test binary dies without Main's
// cleanup, so no cluster outlives a killed test run.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT}
}

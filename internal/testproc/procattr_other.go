//go:build unix && !linux

package testproc

import "syscall"

// ProcAttr runs a server process as cred (nil: as this process). Outside
// Linux there is no parent-death signal, so stop is unused: the helper's
// cleanup stops the server.
func ProcAttr(cred *syscall.Credential, stop syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}

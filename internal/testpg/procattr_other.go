//go:build unix && !linux

package testpg

import "syscall"

// procAttr runs a server process as cred (nil: as this process).
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}

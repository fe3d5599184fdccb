//go:build unix && !linux

package tests3

import "syscall"

// procAttr: outside Linux there is no parent-death signal; Main stops the
// server.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

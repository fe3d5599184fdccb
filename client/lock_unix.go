//go:build unix

package client

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes the state directory's lock: an exclusive, non-blocking
// flock on dir/.lock, which the kernel releases when the file is closed or
// the process ends, however it ends (a crash leaves no stale lock). The
// holder writes its pid into the file so a refused process can name it. A
// file system without flock (some network file systems) falls back to the
// portable lock of lock_other.go.
func lockDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(lockPath(dir), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
	case errors.Is(err, syscall.EWOULDBLOCK):
		pid := readPID(f)
		f.Close()
		return nil, &LockedError{Dir: dir, PID: pid}
	case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EOPNOTSUPP):
		f.Close()
		return lockDirExclusive(dir)
	default:
		f.Close()
		return nil, err
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, err
	}
	return &dirLock{f: f}, nil
}

package client

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrLocked is wrapped by LockedError: the device state is in use by
// another process.
var ErrLocked = errors.New("the device state is in use by another process")

// LockedError reports a state directory that another process holds. One
// device state is used by one process at a time: two processes that each
// cached the same sending chain would encrypt two messages under one
// message key and nonce (protocol.md §8.2).
type LockedError struct {
	Dir   string
	PID   int    // the holder's process id, 0 if unknown
	Stale string // for the portable lock: the file to remove if no such process runs
}

func (e *LockedError) Error() string {
	who := "another sandi process"
	if e.PID > 0 {
		who += " (pid " + strconv.Itoa(e.PID) + ")"
	}
	msg := who + " is using " + e.Dir + ": close it first"
	if e.Stale != "" {
		msg += " (if no such process runs, remove " + e.Stale + ")"
	}
	return msg
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// dirLock is a held state-directory lock.
type dirLock struct {
	f      *os.File
	remove string // the portable lock's file, removed on release
}

func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if l.remove != "" {
		if rerr := os.Remove(l.remove); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

func lockPath(dir string) string { return filepath.Join(dir, ".lock") }

// lockDirExclusive is the portable lock: dir/.lock-pid created with
// O_EXCL and removed on release.
func lockDirExclusive(dir string) (*dirLock, error) {
	p := filepath.Join(dir, ".lock-pid")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		pid := 0
		if g, err := os.Open(p); err == nil {
			pid = readPID(g)
			g.Close()
		}
		return nil, &LockedError{Dir: dir, PID: pid, Stale: p}
	}
	if err != nil {
		return nil, err
	}
	if err := writePID(f); err != nil {
		f.Close()
		os.Remove(p)
		return nil, err
	}
	return &dirLock{f: f, remove: p}, nil
}

func readPID(f *os.File) int {
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0); err != nil {
		return err
	}
	return nil
}

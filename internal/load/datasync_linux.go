package load

import (
	"os"
	"syscall"
)

// datasync syncs f's data and size, not its timestamps (fdatasync(2)), as
// the SQLite store's commits do on Linux.
func datasync(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

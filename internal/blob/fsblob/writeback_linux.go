package fsblob

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing n bytes of f at off to
// the disk, without waiting for them (sync_file_range with
// SYNC_FILE_RANGE_WRITE). It is advice: the part's fsync still makes it
// durable, and an error only leaves the writeback to that fsync.
var startWriteback = func(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

//go:build !linux

package fsblob

import "os"

// startWriteback does nothing here: the part's fsync writes it all.
var startWriteback = func(f *os.File, off, n int64) {}

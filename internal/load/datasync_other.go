//go:build !linux

package load

import "os"

// datasync syncs f (fsync(2), or the system's equivalent).
func datasync(f *os.File) error { return f.Sync() }

//go:build !unix

package client

// lockDir takes the state directory's lock. Without flock (this build's
// system has none that Go's standard library reaches) it is the portable
// lock of lockDirExclusive: a file created exclusively and removed by
// Close. A process that dies without Close leaves it behind, and the next
// process is refused until the user removes it (the error says which file).
func lockDir(dir string) (*dirLock, error) { return lockDirExclusive(dir) }

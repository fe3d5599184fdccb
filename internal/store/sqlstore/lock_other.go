//go:build !unix

package sqlstore

import "os"

// lockFile is not implemented here: the store then runs without a memo.
func lockFile(*os.File) error { return errNoLock }

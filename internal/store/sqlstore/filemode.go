package sqlstore

import (
	"errors"
	"io/fs"
	"os"
	"strings"
)

// createPrivate creates the SQLite database file at path, empty and
// readable by its owner only (0600), if it does not exist yet. SQLite
// would create it 0644 (less the umask), readable by every local user
// whenever the directory is, and gives the files it adds beside it (the
// WAL, the shared-memory index) the database file's mode. An empty file
// is a new database to SQLite. A read-only or in-memory url creates
// nothing.
func createPrivate(url, path string) error {
	if path == "" || strings.Contains(url, "mode=ro") || strings.Contains(url, "mode=memory") {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

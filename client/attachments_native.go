//go:build !js

package client

import (
	"os"
	"path/filepath"
	"time"
)

// blobRange is the size of one ranged GET of a download: few requests,
// each short enough to resume from on a slow link.
const blobRange = 32 << 20

// fileSpool is a spool in a file.
type fileSpool struct{ *os.File }

func (f fileSpool) Remove() error {
	if err := os.Remove(f.Name()); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// spoolAge is how long a download left unfinished is kept to resume.
const spoolAge = 7 * 24 * time.Hour

// openSpool opens the spool of blob, with what an earlier attempt fetched
// (have bytes), read from its start. With a DirStorage it is the file
// .tmp-dl-BLOB in the state directory (which Storage.List skips), kept
// between attempts; spools older than a week are removed. Otherwise it is
// a new file in the system's temporary directory.
func (c *Client) openSpool(blob string) (spool, int64, error) {
	ds, ok := c.st.(*DirStorage)
	if !ok {
		f, err := os.CreateTemp("", "sandi-download-*")
		return fileSpool{f}, 0, err
	}
	dropOldSpools(ds)
	f, err := os.OpenFile(filepath.Join(ds.dir, ".tmp-dl-"+blob), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return fileSpool{f}, fi.Size(), nil
}

// dropOldSpools removes the spools of a state directory older than
// spoolAge.
func dropOldSpools(ds *DirStorage) {
	old, _ := filepath.Glob(filepath.Join(ds.dir, ".tmp-dl-*"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > spoolAge {
			os.Remove(p)
		}
	}
}

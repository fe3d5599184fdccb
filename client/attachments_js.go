//go:build js

package client

import (
	"errors"
	"io"
)

// blobRange is the size of one ranged GET of a download: fetch holds an
// answer's whole body in memory.
const blobRange = 8 << 20

// spool holds a download's ciphertext until its digest is checked.
type spool interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	Seek(int64, int) (int64, error)
	Truncate(int64) error
	Close() error
	Remove() error
}

// maxMemSpool bounds a download in a browser, which spools to memory.
const maxMemSpool = 512 << 20

// memSpool is a spool in memory.
type memSpool struct {
	b   []byte
	off int
}

func (m *memSpool) Read(p []byte) (int, error) {
	if m.off >= len(m.b) {
		return 0, io.EOF
	}
	n := copy(p, m.b[m.off:])
	m.off += n
	return n, nil
}

func (m *memSpool) Write(p []byte) (int, error) {
	if m.off+len(p) > maxMemSpool {
		return 0, errors.New("an attachment this large cannot be downloaded in a browser")
	}
	m.b = append(m.b[:m.off], p...)
	m.off += len(p)
	return len(p), nil
}

func (m *memSpool) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekStart || off < 0 || off > int64(len(m.b)) {
		return 0, errors.New("memSpool: bad seek")
	}
	m.off = int(off)
	return off, nil
}

func (m *memSpool) Truncate(n int64) error { m.b = m.b[:n]; return nil }
func (m *memSpool) Close() error           { return nil }
func (m *memSpool) Remove() error          { m.b = nil; return nil }

// openSpool returns an empty spool in memory: a page does not resume a
// download across reloads.
func (c *Client) openSpool(string) (spool, int64, error) { return &memSpool{}, 0, nil }

// fillImageMeta makes no thumbnail in a browser: the page does, with its
// own image decoders, and the module stays small.
func fillImageMeta(*AttachmentMeta, *io.SectionReader) {}

// Package fsblob is the blob.Store on the local file system, under the
// data directory: the embedded default.
//
// Layout, under the store's directory (0700, files 0600, as the rest of
// the data directory):
//
//	uploads/<id>   an upload in progress: part n at offset n*blob.PartSize
//	objects/<id>   a committed object
//
// Both directories are on one file system, so Commit is a rename: it
// syncs the upload file, renames it into objects/ and syncs both
// directories; a crash leaves the upload or the object, never a part of
// an object. WritePart writes with pwrite at its offset and syncs before
// it returns. Memory is flat: a part is copied through a small buffer,
// never held whole. State is unused (always "").
package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/ctxio"
)

// Store is a blob.Store in a directory.
type Store struct {
	dir     string
	uploads string
	objects string

	mu    sync.Mutex
	locks map[string]*idLock

	// syncs bounds the parts being synced to the disk at once (see
	// WritePart).
	syncs chan struct{}
}

// maxSyncs is how many parts are synced to the disk at once. Many at
// once gain nothing (the disk writes one stream at a time) but queue
// hundreds of MiB in front of the database's own syncs, which every send
// waits for: with 64 uploads, each a commit of the sends waited for the
// parts queued before it.
const maxSyncs = 2

// idLock orders the operations on one id: parts are written under a read
// lock, Commit and Delete hold the write lock, so a part being written
// when the upload is committed finishes first, and none is written into
// a committed object. Each part also has a lock of its own (key "id/n"),
// so that two writes of one part do not interleave.
type idLock struct {
	sync.RWMutex
	refs int
}

var _ blob.Store = (*Store)(nil)

// New opens (creating it if needed) the store in dir.
func New(dir string) (*Store, error) {
	s := &Store{dir: dir, uploads: filepath.Join(dir, "uploads"), objects: filepath.Join(dir, "objects"), locks: map[string]*idLock{}, syncs: make(chan struct{}, maxSyncs)}
	for _, d := range []string{dir, s.uploads, s.objects} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("fsblob: %w", err)
		}
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// lock takes id's lock (exclusive or shared) and returns its release.
func (s *Store) lock(id string, exclusive bool) func() {
	s.mu.Lock()
	l := s.locks[id]
	if l == nil {
		l = &idLock{}
		s.locks[id] = l
	}
	l.refs++
	s.mu.Unlock()
	if exclusive {
		l.Lock()
	} else {
		l.RLock()
	}
	return func() {
		if exclusive {
			l.Unlock()
		} else {
			l.RUnlock()
		}
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.locks, id)
		}
		s.mu.Unlock()
	}
}

// validID accepts the ids the server makes: 32 lower-case hex digits.
func validID(id string) error {
	if len(id) != 32 {
		return fmt.Errorf("fsblob: bad id %q", id)
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("fsblob: bad id %q", id)
		}
	}
	return nil
}

// fsErr turns a full disk (or quota) into blob.ErrFull.
func fsErr(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("fsblob: %s: %w (%v)", op, blob.ErrFull, err)
	}
	return fmt.Errorf("fsblob: %s: %w", op, err)
}

// syncDir makes a directory's entries (a created or renamed file) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Begin implements blob.Store: it creates an empty upload file.
func (s *Store) Begin(ctx context.Context, id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	defer s.lock(id, true)()
	if _, err := os.Stat(filepath.Join(s.objects, id)); err == nil {
		return "", fmt.Errorf("fsblob: begin %s: the object exists", id)
	}
	f, err := os.OpenFile(filepath.Join(s.uploads, id), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fsErr("begin", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(s.uploads)
	}
	if err != nil {
		return "", fsErr("begin", err)
	}
	return "", nil
}

// copyBuf is the size of the buffer a part is copied through.
const copyBuf = 64 << 10

var bufs = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// Local implements blob.Local: the parts go to this machine's disk.
func (s *Store) Local() bool { return true }

// WritePart implements blob.Store. A short body is an error; the bytes
// it wrote stay in the upload file but are not a part until a whole
// write of it succeeds (the caller records which parts are whole).
func (s *Store) WritePart(ctx context.Context, id, state string, n int, r io.Reader, size int64) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	if n < 0 || size < 1 || size > blob.PartSize {
		return "", fmt.Errorf("fsblob: part %d of %d bytes is out of range", n, size)
	}
	defer s.lock(id, false)()
	// Two writes of one part at once would interleave: one at a time.
	defer s.lock(id+"/"+strconv.Itoa(n), true)()
	f, err := os.OpenFile(filepath.Join(s.uploads, id), os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("fsblob: upload %s: %w", id, blob.ErrNotFound)
	}
	if err != nil {
		return "", fsErr("write part", err)
	}
	defer f.Close()
	buf := bufs.Get().(*[]byte)
	defer bufs.Put(buf)
	off := int64(n) * blob.PartSize
	w := &writeback{w: io.NewOffsetWriter(f, off), f: f, start: off, at: off}
	written, err := io.CopyBuffer(w, io.LimitReader(ctxio.Reader(ctx, r), size), *buf)
	if err != nil {
		return "", fsErr("write part", err)
	}
	if written != size {
		return "", fmt.Errorf("fsblob: part %d: %d bytes of %d: %w", n, written, size, io.ErrUnexpectedEOF)
	}
	select {
	case s.syncs <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	err = f.Sync()
	<-s.syncs
	if err != nil {
		return "", fsErr("sync part", err)
	}
	return state, nil
}

// writebackEvery is how many bytes of a part are written before their
// writeback to the disk begins. A part's 8 MiB otherwise stay dirty in
// memory until its fsync, which then writes them all at once, and a
// database commit on the same disk (a message send's) waits behind that
// flush: 6 ms at the p99 of text sends beside paced uploads, against 2.4
// to 2.9 ms with the blobs on another device (docs/performance.md,
// thirteenth round).
const writebackEvery = 1 << 20

// writeback writes to w, the part's place in f, and starts the writeback
// of every writebackEvery bytes written (startWriteback) so that the
// part's fsync finds little left to write.
type writeback struct {
	w         io.Writer
	f         *os.File
	start, at int64 // file offsets: the first byte not handed to writeback, the next byte written
}

func (b *writeback) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	b.at += int64(n)
	if b.at-b.start >= writebackEvery {
		startWriteback(b.f, b.start, b.at-b.start)
		b.start = b.at
	}
	return n, err
}

// Commit implements blob.Store: the upload file, which must hold exactly
// size bytes, is synced and renamed into objects/.
func (s *Store) Commit(ctx context.Context, id, state string, parts int, size int64) error {
	if err := validID(id); err != nil {
		return err
	}
	if want := (size + blob.PartSize - 1) / blob.PartSize; size < 1 || int64(parts) != want {
		return fmt.Errorf("fsblob: commit %s: %d parts for %d bytes", id, parts, size)
	}
	defer s.lock(id, true)()
	obj := filepath.Join(s.objects, id)
	if fi, err := os.Stat(obj); err == nil {
		if fi.Size() != size {
			return fmt.Errorf("fsblob: commit %s: committed with %d bytes, not %d", id, fi.Size(), size)
		}
		return nil
	}
	up := filepath.Join(s.uploads, id)
	f, err := os.OpenFile(up, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsblob: upload %s: %w", id, blob.ErrNotFound)
	}
	if err != nil {
		return fsErr("commit", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != size {
		err = fmt.Errorf("the upload holds %d bytes, not %d", fi.Size(), size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fsErr("commit "+id, err)
	}
	if err := os.Rename(up, obj); err != nil {
		return fsErr("commit", err)
	}
	if err := syncDir(s.objects); err != nil {
		return fsErr("commit", err)
	}
	if err := syncDir(s.uploads); err != nil {
		return fsErr("commit", err)
	}
	return nil
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, id string, off, length int64) (io.ReadCloser, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.objects, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("fsblob: object %s: %w", id, blob.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fsblob: open: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fsblob: open: %w", err)
	}
	if length < 0 {
		length = fi.Size() - off
	}
	if off < 0 || length < 0 || off+length > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("fsblob: open %s: range %d+%d outside its %d bytes", id, off, length, fi.Size())
	}
	return readCloser{io.NewSectionReader(f, off, length), f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, id, state string) error {
	if err := validID(id); err != nil {
		return err
	}
	defer s.lock(id, true)()
	for _, p := range []string{filepath.Join(s.objects, id), filepath.Join(s.uploads, id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("fsblob: delete: %w", err)
		}
	}
	return nil
}

// Walk calls fn with the id of every upload and object last modified
// before before (an id may come twice, once as each), for a sweep of the
// files no database row names any more. fn's error stops the walk.
func (s *Store) Walk(ctx context.Context, before time.Time, fn func(id string) error) error {
	for _, dir := range []string{s.uploads, s.objects} {
		d, err := os.Open(dir)
		if err != nil {
			return fmt.Errorf("fsblob: walk: %w", err)
		}
		for {
			ents, err := d.ReadDir(256)
			for _, e := range ents {
				if ctx.Err() != nil {
					d.Close()
					return ctx.Err()
				}
				if validID(e.Name()) != nil {
					continue
				}
				fi, ierr := e.Info()
				if ierr != nil || !fi.ModTime().Before(before) {
					continue
				}
				if ferr := fn(e.Name()); ferr != nil {
					d.Close()
					return ferr
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				d.Close()
				return fmt.Errorf("fsblob: walk: %w", err)
			}
		}
		d.Close()
	}
	return nil
}

// Ping implements blob.Pinger: both directories are there (a file system
// unmounted or gone from under the server is unavailable).
func (s *Store) Ping(ctx context.Context) error {
	for _, d := range []string{s.uploads, s.objects} {
		fi, err := os.Stat(d)
		if err == nil && !fi.IsDir() {
			err = errors.New("not a directory")
		}
		if err != nil {
			return fmt.Errorf("fsblob: %s: %w (%v)", d, blob.ErrUnavailable, err)
		}
	}
	return nil
}

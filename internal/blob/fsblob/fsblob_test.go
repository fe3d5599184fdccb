package fsblob

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/blob/blobtest"
)

// begin opens a store in a fresh directory and begins an upload of a new
// id on it.
func begin(t *testing.T) (s *Store, id, state string) {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id = blobtest.NewID()
	if state, err = s.Begin(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	return s, id, state
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func read(t *testing.T, s *Store, id string, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := s.Open(context.Background(), id, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestUploadCommitRead writes a two-part upload out of order, across a
// reopen of the store, checks that nothing is readable before Commit and
// everything after, in whole and in ranges, and that the files and
// directories are private.
func TestUploadCommitRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/blobs"
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := blobtest.NewID()
	data := randBytes(blob.PartSize + 1000)
	st, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.WritePart(ctx, id, st, 1, bytes.NewReader(data[blob.PartSize:]), 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, s, id, 0, -1); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("read before commit: %v, want ErrNotFound", err)
	}
	// A restart between parts: the upload continues.
	if s, err = New(dir); err != nil {
		t.Fatal(err)
	}
	if st, err = s.WritePart(ctx, id, st, 0, bytes.NewReader(data), blob.PartSize); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, id, st, 2, int64(len(data)-1)); err == nil {
		t.Fatal("commit with the wrong size succeeded")
	}
	if _, err := read(t, s, id, 0, -1); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("read after a refused commit: %v, want ErrNotFound", err)
	}
	if err := s.Commit(ctx, id, st, 2, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, id, st, 2, int64(len(data))); err != nil {
		t.Fatalf("second commit: %v", err)
	}
	got, err := read(t, s, id, 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %d bytes, %v; want the %d written", len(got), err, len(data))
	}
	for _, r := range [][2]int64{{0, 1}, {blob.PartSize - 10, 20}, {int64(len(data)) - 1, 1}, {100, -1}} {
		want := data[r[0]:]
		if r[1] >= 0 {
			want = want[:r[1]]
		}
		if got, err := read(t, s, id, r[0], r[1]); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("range %v: %d bytes, %v", r, len(got), err)
		}
	}
	if _, err := read(t, s, id, int64(len(data)), 1); err == nil {
		t.Fatal("a range past the end was opened")
	}
	// A part written after the commit changes nothing.
	if _, err := s.WritePart(ctx, id, st, 0, bytes.NewReader(make([]byte, 10)), 10); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("write after commit: %v, want ErrNotFound", err)
	}
	if got, _ := read(t, s, id, 0, -1); !bytes.Equal(got, data) {
		t.Fatal("the object changed after a write following its commit")
	}
	for _, p := range []string{dir, s.uploads, s.objects, filepath.Join(s.objects, id)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	if err := s.Delete(ctx, id, st); err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, s, id, 0, -1); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("read after delete: %v", err)
	}
	if err := s.Delete(ctx, id, st); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

// TestShortPart: a body shorter than the part is an error, and a whole
// rewrite replaces what it left.
func TestShortPart(t *testing.T) {
	ctx := context.Background()
	s, id, st := begin(t)
	data := randBytes(5000)
	if _, err := s.WritePart(ctx, id, st, 0, bytes.NewReader(randBytes(3000)), 5000); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short part: %v, want ErrUnexpectedEOF", err)
	}
	if err := s.Commit(ctx, id, st, 1, 5000); err == nil {
		t.Fatal("committed an upload that holds a short part only")
	}
	if _, err := s.WritePart(ctx, id, st, 0, bytes.NewReader(data), 5000); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, id, st, 1, 5000); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(t, s, id, 0, -1); !bytes.Equal(got, data) {
		t.Fatal("rewritten part not read back")
	}
	for _, bad := range []string{"", "../../etc/passwd", strings.Repeat("A", 32), strings.Repeat("0", 31)} {
		if _, err := s.Begin(ctx, bad); err == nil {
			t.Errorf("Begin(%q) accepted", bad)
		}
	}
	if _, err := s.WritePart(ctx, blobtest.NewID(), "", 0, bytes.NewReader(data), 5000); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("part of an unknown upload: %v, want ErrNotFound", err)
	}
}

// TestWalk lists the uploads and objects older than a time.
func TestWalk(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	up, obj := blobtest.NewID(), blobtest.NewID()
	s.Begin(ctx, up)
	s.Begin(ctx, obj)
	s.WritePart(ctx, obj, "", 0, bytes.NewReader([]byte("x")), 1)
	if err := s.Commit(ctx, obj, "", 1, 1); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	collect := func(id string) error { seen[id] = true; return nil }
	if err := s.Walk(ctx, time.Now().Add(-time.Hour), collect); err != nil || len(seen) != 0 {
		t.Fatalf("walk of files older than an hour: %v, %v", seen, err)
	}
	if err := s.Walk(ctx, time.Now().Add(time.Hour), collect); err != nil || len(seen) != 2 || !seen[up] || !seen[obj] {
		t.Fatalf("walk: %v, %v; want %s and %s", seen, err, up, obj)
	}
}

// TestFull: a part that does not fit on the disk is blob.ErrFull. It
// mounts a small tmpfs and needs root and mount(8).
func TestFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("the disk-full test mounts a small tmpfs and needs root and mount(8) (uid %d): %v\n%s", os.Getuid(), err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	ctx := context.Background()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := blobtest.NewID()
	st, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WritePart(ctx, id, st, 0, bytes.NewReader(make([]byte, 4<<20)), 4<<20); !errors.Is(err, blob.ErrFull) {
		t.Fatalf("part larger than the disk: %v, want ErrFull", err)
	}
}

// TestConcurrentPartWrites: two writes of one part at once leave one of
// them whole, never a mix.
func TestConcurrentPartWrites(t *testing.T) {
	ctx := context.Background()
	s, id, st := begin(t)
	const size = 16 * copyBuf
	a, b := bytes.Repeat([]byte{'a'}, size), bytes.Repeat([]byte{'b'}, size)
	errs := make(chan error, 2)
	for _, data := range [][]byte{a, b} {
		pr, pw := io.Pipe()
		go func() {
			for off := 0; off < size; off += copyBuf {
				pw.Write(data[off : off+copyBuf])
				time.Sleep(time.Millisecond)
			}
			pw.Close()
		}()
		go func() {
			_, err := s.WritePart(ctx, id, st, 0, pr, size)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(ctx, id, st, 1, size); err != nil {
		t.Fatal(err)
	}
	got, _ := read(t, s, id, 0, -1)
	if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
		t.Fatalf("the part is a mix of two writes: %q…", got[:64])
	}
}

// TestPingGone: a store whose directory went from under it (a file system
// unmounted, a directory deleted) is not ready.
func TestPingGone(t *testing.T) {
	s, err := New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(s.Dir()); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Ping of a removed store: %v, want blob.ErrUnavailable", err)
	}
}

// TestPartWriteback: a part's bytes are handed to the disk's writeback
// every writebackEvery bytes as they are written, each range once and in
// order, within the part's place in the file, and the part reads back
// whole.
func TestPartWriteback(t *testing.T) {
	type span struct{ off, n int64 }
	var got []span
	old := startWriteback
	startWriteback = func(f *os.File, off, n int64) { got = append(got, span{off, n}); old(f, off, n) }
	t.Cleanup(func() { startWriteback = old })
	ctx := context.Background()
	s, err := New(t.TempDir() + "/blobs")
	if err != nil {
		t.Fatal(err)
	}
	id := blobtest.NewID()
	size := int64(2*writebackEvery + writebackEvery/2)
	data := randBytes(blob.PartSize + int(size))
	st, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.WritePart(ctx, id, st, 1, bytes.NewReader(data[blob.PartSize:]), size); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (span{blob.PartSize, writebackEvery}) || got[1].off != blob.PartSize+writebackEvery || got[1].n < writebackEvery || got[1].off+got[1].n > blob.PartSize+size {
		t.Fatalf("writeback of part 1 (%d bytes at %d): %v; want two ranges of at least %d bytes from its start", size, blob.PartSize, got, writebackEvery)
	}
	if st, err = s.WritePart(ctx, id, st, 0, bytes.NewReader(data), blob.PartSize); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, id, st, 2, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if b, err := read(t, s, id, 0, -1); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("read back: %d bytes, %v", len(b), err)
	}
}

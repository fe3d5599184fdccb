package attach_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"sandi.dev/protocol/attach"
)

// pattern returns n bytes of a fixed pattern.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func encrypt(t testing.TB, key, pt []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := attach.NewWriter(&buf, key)
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes, so chunk boundaries fall inside them.
	for p := pt; len(p) > 0; {
		n := min(len(p), 7777)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decrypt(key, ct []byte) ([]byte, error) {
	r, err := attach.NewReader(bytes.NewReader(ct), key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// chunkOffsets returns where each chunk of a ciphertext starts, and its end.
func chunkOffsets(size int) []int {
	var offs []int
	for o := attach.HeaderSize; o < size; o += attach.ChunkSize + attach.Overhead {
		offs = append(offs, o)
	}
	return append(offs, size)
}

func TestRoundTrip(t *testing.T) {
	key := attach.NewKey()
	for _, n := range []int{0, 1, 100, attach.ChunkSize - 1, attach.ChunkSize, attach.ChunkSize + 1, 3*attach.ChunkSize + 12345} {
		pt := pattern(n)
		ct := encrypt(t, key, pt)
		if int64(len(ct)) != attach.EncryptedSize(int64(n)) {
			t.Errorf("%d bytes: ciphertext of %d bytes, EncryptedSize says %d", n, len(ct), attach.EncryptedSize(int64(n)))
		}
		if got := attach.PlaintextSize(int64(len(ct))); got != int64(n) {
			t.Errorf("%d bytes: PlaintextSize(%d) = %d", n, len(ct), got)
		}
		got, err := decrypt(key, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%d bytes: decrypt: %v (%d bytes back)", n, err, len(got))
		}
		// Deterministic under one key: the same file gives the same bytes.
		if again := encrypt(t, key, pt); !bytes.Equal(again, ct) {
			t.Errorf("%d bytes: a second encryption under the same key differs", n)
		}
	}
	for c := range int64(3 * (attach.ChunkSize + attach.Overhead)) {
		if n := attach.PlaintextSize(c); n >= 0 && attach.EncryptedSize(n) != c {
			t.Fatalf("PlaintextSize(%d) = %d, whose EncryptedSize is %d", c, n, attach.EncryptedSize(n))
		}
	}
}

// TestRefused: every way of cutting, moving, repeating, extending or
// keying a ciphertext wrongly is refused, and no plaintext of a refused
// chunk comes out.
func TestRefused(t *testing.T) {
	key := attach.NewKey()
	pt := pattern(3*attach.ChunkSize + 100) // chunks 0, 1, 2 full; 3 last
	ct := encrypt(t, key, pt)
	offs := chunkOffsets(len(ct))
	chunk := func(i int) []byte { return ct[offs[i]:offs[i+1]] }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	hdr := ct[:attach.HeaderSize]
	flip := func(i int) []byte {
		b := bytes.Clone(ct)
		b[i] ^= 1
		return b
	}
	// An empty file's ciphertext, and a stream whose last chunk was sealed
	// as a middle one (a full chunk then nothing).
	empty := encrypt(t, key, nil)
	full := encrypt(t, key, pattern(attach.ChunkSize))

	cases := []struct {
		name string
		ct   []byte
		key  []byte
		want error
	}{
		{"nothing", nil, key, attach.ErrTruncated},
		{"header cut", hdr[:3], key, attach.ErrTruncated},
		{"header only", hdr, key, attach.ErrTruncated},
		{"other version", join([]byte{2}, ct[1:]), key, attach.ErrHeader},
		{"other chunk size", flip(3), key, attach.ErrHeader},
		{"last chunk dropped", ct[:offs[3]], key, attach.ErrTruncated},
		{"cut inside the last chunk", ct[:len(ct)-1], key, attach.ErrChunk},
		{"cut inside a middle chunk", ct[:offs[1]+100], key, attach.ErrChunk},
		{"cut to a tag's length", ct[:offs[3]+10], key, attach.ErrTruncated},
		{"middle chunk dropped", join(hdr, chunk(0), chunk(2), chunk(3)), key, attach.ErrChunk},
		{"chunks swapped", join(hdr, chunk(1), chunk(0), chunk(2), chunk(3)), key, attach.ErrChunk},
		{"chunk repeated", join(hdr, chunk(0), chunk(0), chunk(1), chunk(2), chunk(3)), key, attach.ErrChunk},
		{"byte appended", join(ct, []byte{0}), key, attach.ErrChunk},
		{"chunk appended", join(ct, chunk(3)), key, attach.ErrChunk},
		{"a stream appended", join(ct, empty[attach.HeaderSize:]), key, attach.ErrChunk},
		{"byte flipped in chunk 0", flip(offs[0] + 5), key, attach.ErrChunk},
		{"tag flipped in chunk 2", flip(offs[3] - 1), key, attach.ErrChunk},
		{"byte flipped in the last chunk", flip(len(ct) - 20), key, attach.ErrChunk},
		{"last chunk of an empty file dropped", empty[:attach.HeaderSize], key, attach.ErrTruncated},
		{"last chunk of a full-chunk file dropped", full[:len(full)-attach.Overhead], key, attach.ErrTruncated},
		{"middle chunk as the last", full[:attach.HeaderSize+attach.ChunkSize+attach.Overhead], key, attach.ErrTruncated},
		{"wrong key", ct, attach.NewKey(), attach.ErrChunk},
		{"short key", ct, key[:31], attach.ErrKeySize},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := attach.NewReader(bytes.NewReader(c.ct), c.key)
			var got []byte
			if err == nil {
				got, err = io.ReadAll(r)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			// What came out before the error is a prefix of the file, made
			// only of chunks that opened.
			if !bytes.HasPrefix(pt, got) && len(got) > 0 {
				t.Fatalf("%d bytes came out that are not the file's", len(got))
			}
			if len(got)%attach.ChunkSize != 0 {
				t.Fatalf("%d bytes came out: part of a chunk", len(got))
			}
		})
	}
}

// TestFlatMemory: encrypting and decrypting 16 MiB allocates about one
// chunk buffer each, not the file.
func TestFlatMemory(t *testing.T) {
	const size = 16 << 20
	key := attach.NewKey()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	pr, pw := io.Pipe()
	go func() {
		w, err := attach.NewWriter(pw, key)
		if err == nil {
			_, err = io.CopyN(w, zeros{}, size)
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	r, err := attach.NewReader(pr, key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != size {
		t.Fatalf("decrypted %d bytes: %v", n, err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("allocated %d bytes to encrypt and decrypt %d", alloc, size)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestWriterErrors(t *testing.T) {
	if _, err := attach.NewWriter(io.Discard, make([]byte, 16)); !errors.Is(err, attach.ErrKeySize) {
		t.Fatalf("16-byte key: %v", err)
	}
	w, err := attach.NewWriter(io.Discard, attach.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("late")); err == nil {
		t.Fatal("a write after Close was accepted")
	}
	// A failing destination fails the write that fills a chunk, and every
	// write after.
	fw, err := attach.NewWriter(&failAfter{n: attach.HeaderSize}, attach.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(pattern(attach.ChunkSize)); err == nil {
		t.Fatal("the failed chunk write was not reported")
	}
	if err := fw.Close(); err == nil {
		t.Fatal("Close after a failed write succeeded")
	}
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

func BenchmarkEncrypt(b *testing.B) {
	key := attach.NewKey()
	buf := pattern(1 << 20)
	b.SetBytes(int64(len(buf)))
	w, err := attach.NewWriter(io.Discard, key)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	key := attach.NewKey()
	ct := encrypt(b, key, pattern(8<<20))
	b.SetBytes(8 << 20)
	for b.Loop() {
		r, err := attach.NewReader(bytes.NewReader(ct), key)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpener: an Opener opens each chunk of a ciphertext at its index and
// flag, from any chunk on (a resumed download), giving the reader's
// plaintext; a chunk at another index, a middle chunk opened as the last
// or the last as a middle one, a chunk of a full chunk's size opened as
// the last, and another header are refused.
func TestOpener(t *testing.T) {
	key := bytes.Repeat([]byte{3}, attach.KeySize)
	pt := pattern(3*attach.ChunkSize + 100)
	ct := encrypt(t, key, pt)
	if err := attach.CheckHeader(ct[:attach.HeaderSize]); err != nil {
		t.Fatal(err)
	}
	if err := attach.CheckHeader([]byte{2, 0, 1, 0, 0}); !errors.Is(err, attach.ErrHeader) {
		t.Fatalf("another header: %v", err)
	}
	o, err := attach.NewOpener(key)
	if err != nil {
		t.Fatal(err)
	}
	offs := chunkOffsets(len(ct))
	chunk := func(i int) []byte { return ct[offs[i]:offs[i+1]] }
	last := len(offs) - 2
	var got []byte
	for i := 1; i <= last; i++ { // from chunk 1, as a resume would
		if got, err = o.Open(got, chunk(i), uint64(i), i == last); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	if !bytes.Equal(got, pt[attach.ChunkSize:]) {
		t.Fatal("the chunks from 1 on do not give the plaintext from 64 KiB on")
	}
	for _, c := range []struct {
		name  string
		i     int
		index uint64
		last  bool
	}{
		{"another index", 1, 2, false},
		{"a middle chunk as the last", 1, 1, true},
		{"the last chunk as a middle one", last, uint64(last), false},
		{"a full chunk as the last", 0, 0, true},
	} {
		if _, err := o.Open(nil, bytes.Clone(chunk(c.i)), c.index, c.last); !errors.Is(err, attach.ErrChunk) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

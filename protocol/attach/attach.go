// Package attach encrypts attachment files for sandi (protocol.md §13): a
// file becomes a short header and a stream of chunks of 64 KiB of
// plaintext, each sealed with ChaCha20-Poly1305 under a key derived from a
// fresh random file key, with a nonce that binds the chunk's index and
// whether it is the last one (the STREAM construction). A chunk cannot be
// moved, dropped, repeated or cut off, and nothing can follow the last one,
// without the reader refusing the stream.
//
// Both directions are streams with flat memory: one chunk buffer each,
// whatever the file size. The package is pure (no I/O of its own, no
// clock) and builds for GOOS=js GOARCH=wasm. Receivers check the SHA-256
// digest of the whole ciphertext, carried in the message that shares the
// file, before they decrypt (§13.4); that is the caller's part.
package attach

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"

	"sandi.dev/protocol"
)

// Sizes of version 1 (§13.1).
const (
	// Version is the header's version byte.
	Version = 1
	// KeySize is the size of a file key.
	KeySize = 32
	// ChunkSize is the plaintext of every chunk but the last, which holds
	// 0 to ChunkSize-1 bytes.
	ChunkSize = 64 << 10
	// HeaderSize is the size of the header: version (u8) and chunk size
	// (u32).
	HeaderSize = 5
	// Overhead is what sealing adds to each chunk (the Poly1305 tag).
	Overhead = chacha20poly1305.Overhead
	// DigestSize is the size of the SHA-256 digest of a ciphertext.
	DigestSize = sha256.Size
)

// Errors of a reader. A chunk that does not open is ErrChunk whatever the
// cause: the wrong key, a modified byte, chunks reordered, dropped or
// repeated, or data appended to the last chunk all look the same to
// ChaCha20-Poly1305.
var (
	ErrHeader    = errors.New("attachment: not a version 1 attachment header")
	ErrTruncated = errors.New("attachment: the ciphertext ends before its last chunk")
	ErrChunk     = errors.New("attachment: a chunk does not decrypt (wrong key, or the ciphertext was altered, reordered or extended)")
	ErrKeySize   = errors.New("attachment: a file key is 32 bytes")
)

// header is the header of version 1, the only one.
var header = func() [HeaderSize]byte {
	var h [HeaderSize]byte
	h[0] = Version
	binary.BigEndian.PutUint32(h[1:], ChunkSize)
	return h
}()

// NewKey draws a fresh file key. A key encrypts one file, once.
func NewKey() []byte {
	k := make([]byte, KeySize)
	protocol.Random(k)
	return k
}

// EncryptedSize is the ciphertext size of an n-byte file (n ≥ 0): the
// header, n bytes, and a tag for each of the n/ChunkSize + 1 chunks.
// It is -1 for a negative n.
func EncryptedSize(n int64) int64 {
	if n < 0 {
		return -1
	}
	return HeaderSize + n + Overhead*(n/ChunkSize+1)
}

// PlaintextSize is the inverse of EncryptedSize: the file size of a
// ciphertext of c bytes, or -1 if no file encrypts to c bytes.
func PlaintextSize(c int64) int64 {
	m := c - HeaderSize
	if m < Overhead {
		return -1
	}
	full := m / (ChunkSize + Overhead)
	last := m - full*(ChunkSize+Overhead)
	if last < Overhead {
		return -1
	}
	return full*ChunkSize + last - Overhead
}

// stream holds what a writer and a reader share: the AEAD under the
// payload key, the associated data and the index of the next chunk.
type stream struct {
	aead  cipher.AEAD
	ad    []byte
	index uint64
	nonce [chacha20poly1305.NonceSize]byte
}

// newStream derives the payload key (§13.2):
// HKDF-SHA256(file key, LabelAttachmentKey || header, 32).
func newStream(key []byte) (*stream, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	pk, err := hkdf.Key(sha256.New, key, nil, protocol.LabelAttachmentKey+string(header[:]), chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("attachment key: %w", err)
	}
	aead, err := chacha20poly1305.New(pk)
	if err != nil {
		return nil, fmt.Errorf("attachment key: %w", err)
	}
	return &stream{aead: aead, ad: append([]byte(protocol.LabelAttachmentChunk), header[:]...)}, nil
}

// next returns the nonce of the next chunk and counts it: 3 zero bytes,
// the index (u64), and 0x01 for the last chunk or 0x00 (§13.3).
func (s *stream) next(last bool) []byte {
	binary.BigEndian.PutUint64(s.nonce[3:11], s.index)
	s.nonce[11] = 0
	if last {
		s.nonce[11] = 1
	}
	s.index++
	return s.nonce[:]
}

// writer encrypts: NewWriter.
type writer struct {
	s      *stream
	w      io.Writer
	buf    []byte // plaintext of the chunk being filled; cap ChunkSize+Overhead
	err    error  // sticky
	closed bool
}

// NewWriter returns a writer that encrypts what is written to it under key
// (KeySize bytes, from NewKey) and writes the ciphertext to w, starting
// with the header, which it writes at once. Close seals the last chunk and
// must be called: without it the ciphertext is truncated. It does not
// close w.
func NewWriter(w io.Writer, key []byte) (io.WriteCloser, error) {
	s, err := newStream(key)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(header[:]); err != nil {
		return nil, err
	}
	return &writer{s: s, w: w, buf: make([]byte, 0, ChunkSize+Overhead)}, nil
}

// Write implements io.Writer. A chunk is sealed and written as soon as it
// holds ChunkSize bytes (the last chunk is always shorter).
func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("attachment: write after close")
	}
	n := 0
	for len(p) > 0 {
		if w.err != nil {
			return n, w.err
		}
		k := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		p, n = p[k:], n+k
		if len(w.buf) == ChunkSize {
			w.err = w.seal(false)
		}
	}
	return n, w.err
}

// seal encrypts the buffered chunk in place and writes it.
func (w *writer) seal(last bool) error {
	ct := w.s.aead.Seal(w.buf[:0], w.s.next(last), w.buf, w.s.ad)
	_, err := w.w.Write(ct)
	w.buf = w.buf[:0]
	return err
}

// Close seals and writes the last chunk (0 to ChunkSize-1 bytes; an empty
// file has one empty chunk).
func (w *writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err == nil {
		w.err = w.seal(true)
	}
	return w.err
}

// reader decrypts: NewReader.
type reader struct {
	s    *stream
	r    io.Reader
	buf  []byte // ciphertext of the current chunk, then its plaintext
	out  []byte // plaintext not yet read, within buf
	last bool   // the last chunk was opened
	err  error  // sticky
}

// NewReader reads the header from r and returns a reader of the
// plaintext. It returns an error wrapping ErrTruncated for a stream that
// ends before its last chunk and ErrChunk for a chunk that does not open;
// no plaintext of such a chunk is returned, but the chunks before it were.
// Callers that must not act on a partial file check the ciphertext's
// digest first (§13.4), or read to io.EOF before using any of it.
func NewReader(r io.Reader, key []byte) (io.Reader, error) {
	s, err := newStream(key)
	if err != nil {
		return nil, err
	}
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, ErrTruncated
		}
		return nil, err
	}
	if h != header {
		return nil, ErrHeader
	}
	return &reader{s: s, r: r, buf: make([]byte, ChunkSize+Overhead)}, nil
}

// Read implements io.Reader.
func (r *reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.last {
			return 0, io.EOF
		}
		r.err = r.open()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// open reads and opens the next chunk. A chunk of ChunkSize+Overhead bytes
// is never the last; a shorter one always is, and must end the stream.
func (r *reader) open() error {
	n, err := io.ReadFull(r.r, r.buf)
	switch {
	case err == io.EOF:
		return ErrTruncated
	case err == io.ErrUnexpectedEOF:
		r.last = true
	case err != nil:
		return err
	}
	if n < Overhead {
		return ErrTruncated
	}
	i := r.s.index
	pt, err := r.s.aead.Open(r.buf[:0], r.s.next(r.last), r.buf[:n], r.s.ad)
	if err != nil {
		return fmt.Errorf("%w: chunk %d", ErrChunk, i)
	}
	r.out = pt
	return nil
}

// Opener opens the chunks of one file's ciphertext one at a time, each at
// the index the caller gives: for a receiver that decrypts the chunks as
// they arrive and continues an interrupted download at a chunk boundary.
// The caller frames the chunks as §13.3 says (ChunkSize+Overhead bytes
// each, the last one shorter, after the header, checked with
// CheckHeader) and tells which chunk is the last; a chunk opened under
// the wrong index or flag does not open.
type Opener struct{ s *stream }

// NewOpener returns an Opener under key.
func NewOpener(key []byte) (*Opener, error) {
	s, err := newStream(key)
	if err != nil {
		return nil, err
	}
	return &Opener{s: s}, nil
}

// Open opens chunk (its ciphertext, with the tag) as chunk index of the
// stream, the last one if last, appending its plaintext to dst. A chunk
// that does not open is an error wrapping ErrChunk, and nothing of it is
// returned.
func (o *Opener) Open(dst, chunk []byte, index uint64, last bool) ([]byte, error) {
	if len(chunk) < Overhead || len(chunk) > ChunkSize+Overhead || len(chunk) == ChunkSize+Overhead && last {
		return nil, fmt.Errorf("%w: chunk %d of %d bytes", ErrChunk, index, len(chunk))
	}
	o.s.index = index
	pt, err := o.s.aead.Open(dst, o.s.next(last), chunk, o.s.ad)
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %d", ErrChunk, index)
	}
	return pt, nil
}

// CheckHeader checks the first HeaderSize bytes of a ciphertext: ErrHeader
// for any but version 1's.
func CheckHeader(h []byte) error {
	if len(h) != HeaderSize || [HeaderSize]byte(h) != header {
		return ErrHeader
	}
	return nil
}

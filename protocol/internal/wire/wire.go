// Package wire is the byte layer of sandi's encodings (protocol.md §2): big-endian
// integers, fixed-size fields written bare and variable fields behind a length
// prefix. A Reader is strict: it refuses short input, lengths over a stated cap
// and, through Done, trailing bytes.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed encoding")

// Builder appends encoded fields to a byte slice.
type Builder struct{ b []byte }

// NewBuilder returns a Builder with capacity for n bytes.
func NewBuilder(n int) *Builder { return &Builder{b: make([]byte, 0, n)} }

// Bytes returns the encoding built so far.
func (w *Builder) Bytes() []byte { return w.b }

// U8 appends one byte.
func (w *Builder) U8(v uint8) { w.b = append(w.b, v) }

// U16 appends a big-endian uint16.
func (w *Builder) U16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }

// U32 appends a big-endian uint32.
func (w *Builder) U32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }

// U64 appends a big-endian uint64.
func (w *Builder) U64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }

// Fixed appends p with no length prefix; the reader must know its size.
func (w *Builder) Fixed(p []byte) { w.b = append(w.b, p...) }

// Bytes16 appends p behind a uint16 length. It panics if p is longer than
// 65535 bytes: callers encode only values they have already bounded.
func (w *Builder) Bytes16(p []byte) {
	if len(p) > 0xffff {
		panic("wire: Bytes16 value too long")
	}
	w.U16(uint16(len(p)))
	w.Fixed(p)
}

// Bytes32 appends p behind a uint32 length.
func (w *Builder) Bytes32(p []byte) {
	if uint64(len(p)) > 0xffffffff {
		panic("wire: Bytes32 value too long")
	}
	w.U32(uint32(len(p)))
	w.Fixed(p)
}

// Reader consumes encoded fields. After the first error every method returns
// zero values and Err reports that first error.
type Reader struct {
	b   []byte
	err error
}

// NewReader reads from b. It does not copy b; Fixed and Bytes results alias it.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error met, if any.
func (r *Reader) Err() error { return r.err }

// Fail records err (if none is recorded yet) as a malformed-encoding error.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (r *Reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.Fail("%s: need %d bytes, have %d", what, n, len(r.b))
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

// U8 reads one byte.
func (r *Reader) U8(what string) uint8 {
	p := r.take(1, what)
	if p == nil {
		return 0
	}
	return p[0]
}

// U16 reads a big-endian uint16.
func (r *Reader) U16(what string) uint16 {
	p := r.take(2, what)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint16(p)
}

// U32 reads a big-endian uint32.
func (r *Reader) U32(what string) uint32 {
	p := r.take(4, what)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

// U64 reads a big-endian uint64.
func (r *Reader) U64(what string) uint64 {
	p := r.take(8, what)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

// Fixed reads exactly n bytes.
func (r *Reader) Fixed(n int, what string) []byte { return r.take(n, what) }

// FixedInto fills dst.
func (r *Reader) FixedInto(dst []byte, what string) {
	if p := r.take(len(dst), what); p != nil {
		copy(dst, p)
	}
}

// Bytes16 reads a uint16-prefixed value of at most max bytes.
func (r *Reader) Bytes16(max int, what string) []byte {
	n := int(r.U16(what))
	if r.err == nil && n > max {
		r.Fail("%s: length %d over limit %d", what, n, max)
	}
	return r.take(n, what)
}

// Bytes32 reads a uint32-prefixed value of at most max bytes.
func (r *Reader) Bytes32(max int, what string) []byte {
	n := uint64(r.U32(what))
	if r.err == nil && n > uint64(max) {
		r.Fail("%s: length %d over limit %d", what, n, max)
	}
	return r.take(int(n), what)
}

// Count reads a uint16 element count of at most max.
func (r *Reader) Count(max int, what string) int {
	n := int(r.U16(what))
	if r.err == nil && n > max {
		r.Fail("%s: count %d over limit %d", what, n, max)
		return 0
	}
	return n
}

// Remaining returns how many bytes are left unread.
func (r *Reader) Remaining() int { return len(r.b) }

// Done returns the first error, or an error if bytes remain unread.
func (r *Reader) Done() error {
	if r.err == nil && len(r.b) != 0 {
		r.Fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

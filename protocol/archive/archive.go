// Package archive is the serialized form of what a device holds, moved to
// another device of the account (a history transfer) or kept on the server
// as an encrypted backup (protocol.md §14). An archive is a header and a
// list of records, each a storage key and its value, in strictly ascending
// key order, closed by an end marker that counts them. It is written and
// read as a stream: memory is one record, whatever the archive's size.
// Encryption is the attachment stream of §13 (package attach); this package
// adds the backup's key derivation and the recovery key's text form.
//
// The package is pure (no I/O of its own, no clock) and builds for
// GOOS=js GOARCH=wasm.
package archive

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"sandi.dev/protocol"
)

// Label starts every archive (§14.1).
const Label = "sandi v1 archive"

// Version is the archive's version byte.
const Version = 1

// Kind says what an archive is for.
type Kind uint8

// The kinds of version 1.
const (
	// Transfer: made for a newly linked device; holds no identity key (the
	// link seals it, §11).
	Transfer Kind = 1
	// Backup: kept on the server under a recovery key; holds the identity
	// key.
	Backup Kind = 2
	// Segment: a later part of a backup, the changes since the previous
	// part (§14.4): each record's value is an operation (SegmentOp).
	Segment Kind = 3
)

func (k Kind) valid() bool { return k == Transfer || k == Backup || k == Segment }

// Caps of version 1 (§14.1).
const (
	// MaxKey is the longest record key.
	MaxKey = 255
	// MaxValue is the largest record value (64 MiB).
	MaxValue = 64 << 20
	// MaxRecords is the most records of one archive.
	MaxRecords = 1 << 20
	// HeaderSize is the size of the header: label, version, kind, user
	// id, creation time.
	HeaderSize = len(Label) + 1 + 1 + protocol.IDSize + 8
)

const (
	tagRecord = 'R'
	tagEnd    = 'E'
)

// Errors of a decoder; each wraps ErrFormat.
var (
	ErrFormat = errors.New("archive: malformed")
	errOrder  = fmt.Errorf("%w: records not in strictly ascending key order", ErrFormat)
)

// Header is an archive's header.
type Header struct {
	Kind    Kind
	User    protocol.UserID // the account whose state it is
	Created int64           // Unix milliseconds
}

// Record is one storage key and its value.
type Record struct {
	Key   string
	Value []byte
}

// ValidKey reports whether k may be a record's key: 1 to 255 bytes of
// [a-z0-9/._-], neither starting nor ending with '/', no empty segment,
// no segment "." or "..".
func ValidKey(k string) bool {
	if len(k) == 0 || len(k) > MaxKey || k[0] == '/' || k[len(k)-1] == '/' {
		return false
	}
	seg := 0
	for i := 0; i <= len(k); i++ {
		if i == len(k) || k[i] == '/' {
			s := k[seg:i]
			if s == "" || s == "." || s == ".." {
				return false
			}
			seg = i + 1
			continue
		}
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Writer writes an archive to an io.Writer.
type Writer struct {
	w    *bufio.Writer
	last string
	n    uint64
	err  error
}

// NewWriter writes h and returns a Writer for the records.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if !h.Kind.valid() {
		return nil, fmt.Errorf("archive: unknown kind %d", h.Kind)
	}
	if h.User.IsZero() || h.Created < 0 {
		return nil, errors.New("archive: header needs a user and a time")
	}
	aw := &Writer{w: bufio.NewWriterSize(w, 64<<10)}
	b := make([]byte, 0, HeaderSize)
	b = append(b, Label...)
	b = append(b, Version, byte(h.Kind))
	b = append(b, h.User[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Created))
	_, aw.err = aw.w.Write(b)
	return aw, aw.err
}

// Add writes one record. Keys must come in strictly ascending order.
func (w *Writer) Add(key string, value []byte) error {
	if w.err != nil {
		return w.err
	}
	switch {
	case !ValidKey(key):
		return fmt.Errorf("archive: invalid key %q", key)
	case w.n > 0 && key <= w.last:
		return errOrder
	case len(value) > MaxValue:
		return fmt.Errorf("archive: value of %s over %d bytes", key, MaxValue)
	case w.n >= MaxRecords:
		return fmt.Errorf("archive: more than %d records", MaxRecords)
	}
	var h [2]byte
	h[0], h[1] = tagRecord, byte(len(key))
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(value)))
	for _, p := range [][]byte{h[:], []byte(key), l[:], value} {
		if _, err := w.w.Write(p); err != nil {
			w.err = err
			return err
		}
	}
	w.last, w.n = key, w.n+1
	return nil
}

// Close writes the end marker and flushes; it does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	var e [9]byte
	e[0] = tagEnd
	binary.BigEndian.PutUint64(e[1:], w.n)
	if _, err := w.w.Write(e[:]); err != nil {
		return err
	}
	w.err = errors.New("archive: writer closed")
	return w.w.Flush()
}

// Reader reads an archive's records, strictly (§14.1).
type Reader struct {
	r    *bufio.Reader
	last string
	n    uint64
	done bool
}

// NewReader reads and checks the header.
func NewReader(r io.Reader) (*Reader, Header, error) {
	ar := &Reader{r: bufio.NewReaderSize(r, 64<<10)}
	var b [HeaderSize]byte
	if _, err := io.ReadFull(ar.r, b[:]); err != nil {
		return nil, Header{}, fmt.Errorf("%w: short header", ErrFormat)
	}
	if string(b[:len(Label)]) != Label {
		return nil, Header{}, fmt.Errorf("%w: not an archive", ErrFormat)
	}
	p := b[len(Label):]
	if p[0] != Version {
		return nil, Header{}, fmt.Errorf("%w: version %d", ErrFormat, p[0])
	}
	h := Header{Kind: Kind(p[1])}
	if !h.Kind.valid() {
		return nil, Header{}, fmt.Errorf("%w: kind %d", ErrFormat, p[1])
	}
	copy(h.User[:], p[2:2+protocol.IDSize])
	if h.User.IsZero() {
		return nil, Header{}, fmt.Errorf("%w: zero user id", ErrFormat)
	}
	t := binary.BigEndian.Uint64(p[2+protocol.IDSize:])
	if t >= 1<<63 {
		return nil, Header{}, fmt.Errorf("%w: time out of range", ErrFormat)
	}
	h.Created = int64(t)
	return ar, h, nil
}

// Next returns the next record, or io.EOF after the end marker, once the
// count matched and nothing followed. Any other error means the archive
// is malformed or cut short; the records returned before it are not to be
// trusted as a whole.
func (r *Reader) Next() (Record, error) {
	if r.done {
		return Record{}, io.EOF
	}
	tag, err := r.r.ReadByte()
	if err != nil {
		return Record{}, fmt.Errorf("%w: cut short", ErrFormat)
	}
	switch tag {
	case tagEnd:
		var c [8]byte
		if _, err := io.ReadFull(r.r, c[:]); err != nil {
			return Record{}, fmt.Errorf("%w: cut short", ErrFormat)
		}
		if binary.BigEndian.Uint64(c[:]) != r.n {
			return Record{}, fmt.Errorf("%w: end counts %d records, read %d", ErrFormat, binary.BigEndian.Uint64(c[:]), r.n)
		}
		if _, err := r.r.ReadByte(); err != io.EOF {
			return Record{}, fmt.Errorf("%w: trailing bytes", ErrFormat)
		}
		r.done = true
		return Record{}, io.EOF
	case tagRecord:
	default:
		return Record{}, fmt.Errorf("%w: unknown tag 0x%02x", ErrFormat, tag)
	}
	if r.n >= MaxRecords {
		return Record{}, fmt.Errorf("%w: more than %d records", ErrFormat, MaxRecords)
	}
	kl, err := r.r.ReadByte()
	if err != nil {
		return Record{}, fmt.Errorf("%w: cut short", ErrFormat)
	}
	k := make([]byte, kl)
	if _, err := io.ReadFull(r.r, k); err != nil {
		return Record{}, fmt.Errorf("%w: cut short", ErrFormat)
	}
	key := string(k)
	if !ValidKey(key) {
		return Record{}, fmt.Errorf("%w: invalid key %q", ErrFormat, key)
	}
	if r.n > 0 && key <= r.last {
		return Record{}, errOrder
	}
	var l [4]byte
	if _, err := io.ReadFull(r.r, l[:]); err != nil {
		return Record{}, fmt.Errorf("%w: cut short", ErrFormat)
	}
	vl := binary.BigEndian.Uint32(l[:])
	if vl > MaxValue {
		return Record{}, fmt.Errorf("%w: value of %d bytes", ErrFormat, vl)
	}
	v := make([]byte, vl)
	if _, err := io.ReadFull(r.r, v); err != nil {
		return Record{}, fmt.Errorf("%w: cut short", ErrFormat)
	}
	r.last, r.n = key, r.n+1
	return Record{Key: key, Value: v}, nil
}

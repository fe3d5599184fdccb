package archive_test

import (
	"bytes"
	"errors"
	"testing"

	"sandi.dev/protocol/archive"
)

// TestSegmentHeader: a segment's header opens under its key to its link
// and file key; another key is ErrWrongRecoveryKey; a changed link (the
// server moving a segment elsewhere in the chain) keeps the check but
// gives another file key, so the segment no longer decrypts.
func TestSegmentHeader(t *testing.T) {
	k, other := archive.NewRecoveryKey(), archive.NewRecoveryKey()
	salt := bytes.Repeat([]byte{7}, archive.SaltSize)
	l := archive.Link{Seq: 3, Prev: [32]byte{9}}
	h, fk, err := k.SegmentHeader(testUser, salt, l)
	if err != nil || len(h) != archive.SegmentHeaderSize {
		t.Fatalf("header %d bytes, %v", len(h), err)
	}
	got, fk2, err := k.OpenSegmentHeader(testUser, h)
	if err != nil || got != l || !bytes.Equal(fk, fk2) {
		t.Fatalf("open: %+v %v", got, err)
	}
	if _, _, err := other.OpenSegmentHeader(testUser, h); !errors.Is(err, archive.ErrWrongRecoveryKey) {
		t.Fatalf("another key: %v", err)
	}
	moved := bytes.Clone(h)
	moved[1+archive.SaltSize+archive.CheckSize+3] = 2 // sequence number 2
	l2, fk3, err := k.OpenSegmentHeader(testUser, moved)
	if err != nil || l2.Seq != 2 || bytes.Equal(fk3, fk) {
		t.Fatalf("a moved segment: %+v %v, same file key %v", l2, err, bytes.Equal(fk3, fk))
	}
	base, _, err := k.BackupHeader(testUser, salt)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{base, h[:len(h)-1], append(bytes.Clone(h), 0), append([]byte{archive.SegmentVersion}, make([]byte, archive.SegmentHeaderSize-1)...)} {
		if _, _, err := k.OpenSegmentHeader(testUser, bad); !errors.Is(err, archive.ErrBackupHeader) {
			t.Errorf("header %x: %v, want ErrBackupHeader", bad, err)
		}
	}
}

// FuzzSegmentValue: a segment record's value decodes strictly and
// round-trips.
func FuzzSegmentValue(f *testing.F) {
	f.Add(archive.SegmentValue(archive.OpPut, nil))
	f.Add(archive.SegmentValue(archive.OpAppend, []byte("x")))
	f.Add(archive.SegmentValue(archive.OpDelete, nil))
	f.Add([]byte{3, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, data, err := archive.ParseSegmentValue(b)
		if err != nil {
			return
		}
		if again := archive.SegmentValue(op, data); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes and encodes to %x", b, again)
		}
		if op == archive.OpAppend && len(data) == 0 || op == archive.OpDelete && len(data) != 0 {
			t.Fatalf("%x decodes to operation %d with %d bytes", b, op, len(data))
		}
	})
}

// FuzzSegmentLink: a header's link decodes strictly: a header that
// decodes has the segment version, size and a sequence number from 1,
// and one made with that link and salt differs only in its check.
func FuzzSegmentLink(f *testing.F) {
	k := archive.NewRecoveryKey()
	h, _, _ := k.SegmentHeader(testUser, make([]byte, archive.SaltSize), archive.Link{Seq: 1})
	f.Add(h)
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := archive.ParseSegmentLink(b)
		if err != nil {
			return
		}
		again, _, err := k.SegmentHeader(testUser, b[1:1+archive.SaltSize], l)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again[:1+archive.SaltSize], b[:1+archive.SaltSize]) || !bytes.Equal(again[1+archive.SaltSize+archive.CheckSize:], b[1+archive.SaltSize+archive.CheckSize:]) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, l, again)
		}
	})
}

package archive

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"sandi.dev/protocol"
)

// Incremental backups (§14.4): a backup is a base, the backup archive of
// version 1 headers, followed by segments, each an archive of kind Segment
// holding what changed since the part before it. A segment's header names
// its place in the chain (its sequence number, from 1) and the SHA-256 of
// the whole previous part as uploaded (header and ciphertext); both go
// into the derivation of its file key, so a server that drops, reorders,
// repeats or splices parts makes a chain that does not link or a segment
// that does not decrypt.

// SegmentVersion is the first byte of a segment's header.
const SegmentVersion = 2

// SegmentHeaderSize is version, salt, check, sequence number and previous
// digest.
const SegmentHeaderSize = 1 + SaltSize + CheckSize + 4 + sha256.Size

// Link is a segment's place in its backup's chain.
type Link struct {
	Seq  uint32   // 1 for the first segment after the base
	Prev [32]byte // SHA-256 of the whole previous part
}

// SegmentOp is what a segment's record does to the key it names.
type SegmentOp uint8

// The operations of a segment record's value: op (u8) || data.
const (
	// OpPut: the key's value is now data.
	OpPut SegmentOp = 1
	// OpAppend: data is appended to the key's value (a history that grew).
	OpAppend SegmentOp = 2
	// OpDelete: the key is gone; data is empty.
	OpDelete SegmentOp = 3
)

// SegmentValue encodes a segment record's value.
func SegmentValue(op SegmentOp, data []byte) []byte {
	return append([]byte{byte(op)}, data...)
}

// ParseSegmentValue decodes a segment record's value strictly: a known
// operation, and no data after a delete. data aliases v.
func ParseSegmentValue(v []byte) (SegmentOp, []byte, error) {
	if len(v) == 0 {
		return 0, nil, fmt.Errorf("%w: an empty segment record", ErrFormat)
	}
	op, data := SegmentOp(v[0]), v[1:]
	switch {
	case op == OpPut, op == OpAppend && len(data) > 0, op == OpDelete && len(data) == 0:
		return op, data, nil
	}
	return 0, nil, fmt.Errorf("%w: segment operation %d with %d bytes", ErrFormat, v[0], len(data))
}

func (r RecoveryKey) deriveSegment(label string, user protocol.UserID, salt []byte, l *Link) ([]byte, error) {
	info := make([]byte, 0, len(label)+1+protocol.IDSize+SaltSize+4+32)
	info = append(info, label...)
	info = append(info, SegmentVersion)
	info = append(info, user[:]...)
	info = append(info, salt...)
	if l != nil {
		info = binary.BigEndian.AppendUint32(info, l.Seq)
		info = append(info, l.Prev[:]...)
	}
	k, err := hkdf.Key(sha256.New, r.k[:], nil, string(info), 32)
	if err != nil {
		return nil, fmt.Errorf("derive backup segment key: %w", err)
	}
	return k, nil
}

// SegmentHeader returns a segment's header (version, salt, check, link)
// and the file key its stream is sealed under: the check depends on the
// key, the account and the salt; the file key on the link too.
func (r RecoveryKey) SegmentHeader(user protocol.UserID, salt []byte, l Link) (header, fileKey []byte, err error) {
	if len(salt) != SaltSize {
		return nil, nil, errors.New("backup salt is 32 bytes")
	}
	if l.Seq == 0 {
		return nil, nil, errors.New("a segment's sequence number starts at 1")
	}
	check, err := r.deriveSegment(LabelBackupCheck, user, salt, nil)
	if err != nil {
		return nil, nil, err
	}
	if fileKey, err = r.deriveSegment(LabelBackupKey, user, salt, &l); err != nil {
		return nil, nil, err
	}
	header = make([]byte, 0, SegmentHeaderSize)
	header = append(append(append(header, SegmentVersion), salt...), check...)
	header = binary.BigEndian.AppendUint32(header, l.Seq)
	return append(header, l.Prev[:]...), fileKey, nil
}

// ParseSegmentLink reads a segment header's link without the key:
// ErrBackupHeader for another version or size or a sequence number 0.
func ParseSegmentLink(header []byte) (Link, error) {
	var l Link
	if len(header) != SegmentHeaderSize || header[0] != SegmentVersion {
		return l, ErrBackupHeader
	}
	p := header[1+SaltSize+CheckSize:]
	l.Seq = binary.BigEndian.Uint32(p)
	copy(l.Prev[:], p[4:])
	if l.Seq == 0 {
		return l, ErrBackupHeader
	}
	return l, nil
}

// OpenSegmentHeader checks a segment's header against the key and returns
// its link and file key: ErrBackupHeader for a malformed header,
// ErrWrongRecoveryKey when the check differs (compared in constant time).
func (r RecoveryKey) OpenSegmentHeader(user protocol.UserID, header []byte) (Link, []byte, error) {
	l, err := ParseSegmentLink(header)
	if err != nil {
		return l, nil, err
	}
	want, fileKey, err := r.SegmentHeader(user, header[1:1+SaltSize], l)
	if err != nil {
		return l, nil, err
	}
	if subtle.ConstantTimeCompare(want, header) != 1 {
		clear(fileKey)
		return l, nil, ErrWrongRecoveryKey
	}
	return l, fileKey, nil
}

package archive

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"sandi.dev/protocol"
)

// Labels of §14 (protocol.md §3).
const (
	LabelRecoveryCheck = "sandi v1 recovery checksum"
	LabelBackupKey     = "sandi v1 backup key"
	LabelBackupCheck   = "sandi v1 backup check"
)

// Sizes of §14.3 to §14.5.
const (
	// RecoveryKeySize is the recovery key's entropy: 128 bits.
	RecoveryKeySize = 16
	// RecoveryChecksumSize is the checksum written after it in its text.
	RecoveryChecksumSize = 4
	// RecoveryKeyLength is its text without dashes: base32 of 20 bytes.
	RecoveryKeyLength = 32
	// SaltSize is a backup's random salt.
	SaltSize = 32
	// CheckSize is a backup's key check value.
	CheckSize = 32
	// BackupHeaderSize is version, salt and check before the stream.
	BackupHeaderSize = 1 + SaltSize + CheckSize
	// OfferSize is an encoded transfer offer.
	OfferSize = 1 + 16 + 32 + 32 + 8
)

// Errors of the recovery key and the backup blob.
var (
	// ErrRecoveryKey: the text is not a recovery key (a typo: the checksum
	// does not match, a character outside the alphabet, a wrong length).
	ErrRecoveryKey = errors.New("not a recovery key: it has 32 letters A to Z and digits 2 to 7 in 8 groups of 4; check each group (a typo was caught before anything was sent)")
	// ErrWrongRecoveryKey: the key is well formed but is not the one this
	// backup was made under.
	ErrWrongRecoveryKey = errors.New("this recovery key does not open the account's backup: check it and try again")
	// ErrBackupHeader: the backup blob does not start with a version 1
	// backup header.
	ErrBackupHeader = errors.New("the backup on the server is not a version 1 backup (damaged, or not a backup)")
)

var recoveryEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// RecoveryKey is a backup's recovery key: 128 bits from a
// cryptographically secure generator.
type RecoveryKey struct{ k [RecoveryKeySize]byte }

// NewRecoveryKey draws a recovery key.
func NewRecoveryKey() RecoveryKey {
	var r RecoveryKey
	rand.Read(r.k[:]) // never fails (crypto/rand)
	return r
}

// RecoveryKeyFromBytes makes a recovery key of 16 given bytes (vectors,
// tests).
func RecoveryKeyFromBytes(b []byte) (RecoveryKey, error) {
	var r RecoveryKey
	if len(b) != RecoveryKeySize {
		return r, ErrRecoveryKey
	}
	copy(r.k[:], b)
	return r, nil
}

func recoveryChecksum(k []byte) []byte {
	h := sha256.Sum256(append([]byte(LabelRecoveryCheck), k...))
	return h[:RecoveryChecksumSize]
}

// String is the key's text form (§14.3): base32 of key || checksum, in 8
// groups of 4 joined by '-'.
func (r RecoveryKey) String() string {
	s := recoveryEncoding.EncodeToString(append(r.k[:], recoveryChecksum(r.k[:])...))
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i : i+4])
	}
	return b.String()
}

// Equal compares two recovery keys in constant time.
func (r RecoveryKey) Equal(o RecoveryKey) bool {
	return subtle.ConstantTimeCompare(r.k[:], o.k[:]) == 1
}

// ParseRecoveryKey reads a recovery key typed by a person: dashes and
// spaces are dropped and lower case is read as upper case; anything else
// must be exactly 32 characters of the base32 alphabet whose last 4 bytes
// are the checksum. It needs no network: a typo is caught here.
func ParseRecoveryKey(s string) (RecoveryKey, error) {
	var r RecoveryKey
	s = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s))
	if len(s) != RecoveryKeyLength {
		return r, ErrRecoveryKey
	}
	b, err := recoveryEncoding.DecodeString(s)
	if err != nil || len(b) != RecoveryKeySize+RecoveryChecksumSize {
		return r, ErrRecoveryKey
	}
	if subtle.ConstantTimeCompare(b[RecoveryKeySize:], recoveryChecksum(b[:RecoveryKeySize])) != 1 {
		return r, ErrRecoveryKey
	}
	copy(r.k[:], b)
	return r, nil
}

func (r RecoveryKey) derive(label string, user protocol.UserID, salt []byte) ([]byte, error) {
	info := make([]byte, 0, len(label)+1+protocol.IDSize+SaltSize)
	info = append(info, label...)
	info = append(info, Version)
	info = append(info, user[:]...)
	info = append(info, salt...)
	k, err := hkdf.Key(sha256.New, r.k[:], nil, string(info), 32)
	if err != nil {
		return nil, fmt.Errorf("derive backup key: %w", err)
	}
	return k, nil
}

// BackupHeader returns a new backup's header (version, salt, check) and
// the file key its attachment stream is sealed under (§14.4). A fresh salt
// gives every upload its own file key, so no key encrypts two plaintexts.
func (r RecoveryKey) BackupHeader(user protocol.UserID, salt []byte) (header, fileKey []byte, err error) {
	if len(salt) != SaltSize {
		return nil, nil, errors.New("backup salt is 32 bytes")
	}
	check, err := r.derive(LabelBackupCheck, user, salt)
	if err != nil {
		return nil, nil, err
	}
	if fileKey, err = r.derive(LabelBackupKey, user, salt); err != nil {
		return nil, nil, err
	}
	header = append(append([]byte{Version}, salt...), check...)
	return header, fileKey, nil
}

// OpenBackupHeader checks a backup's header against the key and returns
// the file key: ErrBackupHeader for another version or size,
// ErrWrongRecoveryKey when the check value differs (compared in constant
// time).
func (r RecoveryKey) OpenBackupHeader(user protocol.UserID, header []byte) ([]byte, error) {
	if len(header) != BackupHeaderSize || header[0] != Version {
		return nil, ErrBackupHeader
	}
	salt := header[1 : 1+SaltSize]
	want, fileKey, err := r.BackupHeader(user, salt)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(want, header) != 1 {
		return nil, ErrWrongRecoveryKey
	}
	return fileKey, nil
}

// Offer names a transfer archive to a new device, inside the link's
// sealed payload (§11, §14.5).
type Offer struct {
	ID     [16]byte // the archive's id on the server
	Key    [32]byte // its file key (§13.2)
	Digest [32]byte // SHA-256 of its ciphertext
	Size   uint64   // bytes of ciphertext
}

// Marshal encodes o: version || id || key || digest || size.
func (o Offer) Marshal() []byte {
	b := make([]byte, 0, OfferSize)
	b = append(b, Version)
	b = append(b, o.ID[:]...)
	b = append(b, o.Key[:]...)
	b = append(b, o.Digest[:]...)
	return binary.BigEndian.AppendUint64(b, o.Size)
}

// ParseOffer decodes an offer strictly.
func ParseOffer(b []byte) (Offer, error) {
	var o Offer
	if len(b) != OfferSize || b[0] != Version {
		return o, fmt.Errorf("%w: transfer offer", ErrFormat)
	}
	p := b[1:]
	copy(o.ID[:], p[:16])
	copy(o.Key[:], p[16:48])
	copy(o.Digest[:], p[48:80])
	o.Size = binary.BigEndian.Uint64(p[80:])
	if o.ID == [16]byte{} || o.Size < 1 || o.Size >= 1<<62 {
		return o, fmt.Errorf("%w: transfer offer", ErrFormat)
	}
	return o, nil
}

// Bytes returns the key's 16 bytes (to store on the device that makes the
// backups).
func (r RecoveryKey) Bytes() []byte { return bytes.Clone(r.k[:]) }

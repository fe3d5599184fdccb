package protocol

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"filippo.io/edwards25519"

	"sandi.dev/protocol/internal/wire"
)

// Sizes of keys and signatures (§2.3).
const (
	IdentityKeySize  = ed25519.PublicKeySize // 32
	SignatureSize    = ed25519.SignatureSize // 64
	KEMPublicKeySize = 1184 + 32             // X-Wing: ML-KEM-768 encapsulation key || X25519 point
	KEMEncSize       = 1088 + 32             // X-Wing: ML-KEM-768 ciphertext || X25519 point
	HashSize         = 32                    // SHA-256
)

// The HPKE suite of §4: X-Wing, HKDF-SHA256, ChaCha20-Poly1305.
var (
	suiteKEM  = hpke.MLKEM768X25519()
	suiteKDF  = hpke.HKDFSHA256()
	suiteAEAD = hpke.ChaCha20Poly1305()
)

// Suite returns the HPKE components every sealed epoch key uses (§4).
func Suite() (hpke.KEM, hpke.KDF, hpke.AEAD) { return suiteKEM, suiteKDF, suiteAEAD }

// Errors callers branch on.
var (
	ErrBadSignature = errors.New("signature does not verify")
	ErrBadKey       = errors.New("invalid public key")
)

// IdentityKey is an account's Ed25519 public identity key (§2.3). All devices
// of one account share it; it signs pre-keys, membership records,
// distributions and envelopes.
type IdentityKey [IdentityKeySize]byte

// ParseIdentityKey checks that b is a valid identity key (§2.3): the
// canonical 32-byte encoding of a point of the Ed25519 curve that is not of
// small order. A key of small order (the identity point among them: all
// zero bytes encode a point of order 4) would let one signature verify for
// many messages, or for every one; a non-canonical encoding would give one
// key two names.
func ParseIdentityKey(b []byte) (IdentityKey, error) {
	var k IdentityKey
	if len(b) != IdentityKeySize {
		return k, fmt.Errorf("%w: identity key is %d bytes, want %d", ErrBadKey, len(b), IdentityKeySize)
	}
	if err := checkPoint(b); err != nil {
		return k, fmt.Errorf("%w: identity key %v", ErrBadKey, err)
	}
	copy(k[:], b)
	return k, nil
}

// checkPoint refuses a 32-byte string that does not decode to a point of
// the curve, that is not that point's canonical encoding (y ≥ p, or x = 0
// with the sign bit set), or that encodes a point of small order (one whose
// order divides the cofactor 8).
func checkPoint(b []byte) error {
	if err := checkEncoding(b); err != nil {
		return err
	}
	if _, err := new(edwards25519.Point).SetBytes(b); err != nil {
		return errors.New("is not a point of the curve")
	}
	return nil
}

// checkEncoding makes the checks of checkPoint that need no square root:
// the encoding is canonical and is not one of the 8 points of small order.
// (Canonical encodings of different points differ, so comparing bytes with
// the canonical encodings of the small-order points is exact.)
func checkEncoding(b []byte) error {
	if !canonicalY(b) || b[31]&0x80 != 0 && (isYOne(b) || isYMinusOne(b)) {
		return errors.New("is not canonically encoded")
	}
	for _, t := range smallOrder() {
		if bytes.Equal(b, t[:]) {
			return errors.New("is of small order")
		}
	}
	return nil
}

// canonicalY reports whether the 255-bit little-endian y of an encoding is
// below p = 2^255 − 19 (bytes ed ff … ff 7f).
func canonicalY(b []byte) bool {
	if b[31]&0x7f != 0x7f {
		return true
	}
	for _, c := range b[1:31] {
		if c != 0xff {
			return true
		}
	}
	return b[0] < 0xed
}

// isYOne and isYMinusOne report y = 1 and y = p − 1, the two points with
// x = 0, for which a set sign bit is not canonical.
func isYOne(b []byte) bool {
	if b[0] != 1 || b[31]&0x7f != 0 {
		return false
	}
	for _, c := range b[1:31] {
		if c != 0 {
			return false
		}
	}
	return true
}

func isYMinusOne(b []byte) bool {
	if b[0] != 0xec || b[31]&0x7f != 0x7f {
		return false
	}
	for _, c := range b[1:31] {
		if c != 0xff {
			return false
		}
	}
	return true
}

// smallOrder returns the canonical encodings of the 8 points of small
// order (the torsion subgroup), computed once with the group arithmetic:
// for a point Q of order 8·L (L the prime group order), T = [L]Q has order
// 8, and its multiples are the subgroup.
var smallOrder = sync.OnceValue(func() [8][32]byte {
	lMinus1, err := new(edwards25519.Scalar).SetCanonicalBytes([]byte{
		0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10})
	if err != nil {
		panic("protocol: L − 1 is not a canonical scalar: " + err.Error())
	}
	id := edwards25519.NewIdentityPoint()
	for y := byte(2); ; y++ {
		var enc [32]byte
		enc[0] = y
		q, err := new(edwards25519.Point).SetBytes(enc[:])
		if err != nil {
			continue
		}
		t := new(edwards25519.Point).ScalarMult(lMinus1, q)
		t.Add(t, q) // [L]Q
		four := new(edwards25519.Point).MultByCofactor(t)
		half := new(edwards25519.Point).Add(t, t)
		half.Add(half, half) // [4]T
		if four.Equal(id) != 1 || half.Equal(id) == 1 {
			continue // T is not of order exactly 8
		}
		var out [8][32]byte
		p := edwards25519.NewIdentityPoint()
		for k := range out {
			copy(out[k][:], p.Bytes())
			p.Add(p, t)
		}
		return out
	}
})

// CheckSignature refuses a signature that is not canonically encoded
// (§2.3): R must be the canonical encoding of a point that is not of small
// order, and S must be below the group order. Every decoder of a signed
// structure calls it; a signature it refuses never verifies under a valid
// identity key, so it only makes the refusal early and the same in every
// implementation.
func CheckSignature(sig []byte) error {
	if len(sig) != SignatureSize {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrBadSignature, len(sig), SignatureSize)
	}
	if err := checkPoint(sig[:32]); err != nil {
		return fmt.Errorf("%w: R %v", ErrBadSignature, err)
	}
	if _, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:]); err != nil {
		return fmt.Errorf("%w: S is not below the group order", ErrBadSignature)
	}
	return nil
}

// Verify checks sig over msg with crypto/ed25519 (RFC 8032, cofactorless),
// refusing what CheckSignature refuses. The square root that tells whether
// R is on the curve is left to ed25519.Verify, which refuses such an R (it
// compares R with the encoding of a point it computes), so signatures read
// by a decoder (which made every check) are not decompressed twice.
func (k IdentityKey) Verify(msg, sig []byte) error {
	if len(sig) != SignatureSize {
		return ErrBadSignature
	}
	if err := checkEncoding(sig[:32]); err != nil {
		return fmt.Errorf("%w: R %v", ErrBadSignature, err)
	}
	if _, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:]); err != nil {
		return fmt.Errorf("%w: S is not below the group order", ErrBadSignature)
	}
	if !ed25519.Verify(ed25519.PublicKey(k[:]), msg, sig) {
		return ErrBadSignature
	}
	return nil
}

// Equal compares two identity keys in constant time.
func (k IdentityKey) Equal(o IdentityKey) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

const identityPrefix = "sandi-identity:"

// String returns the prefixed text form, "sandi-identity:" + base64url.
func (k IdentityKey) String() string {
	return identityPrefix + base64.RawURLEncoding.EncodeToString(k[:])
}

// MarshalText implements encoding.TextMarshaler with the prefixed form.
func (k IdentityKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses the prefixed form; a key of another kind is refused.
func (k *IdentityKey) UnmarshalText(b []byte) error {
	s, ok := strings.CutPrefix(string(b), identityPrefix)
	if !ok {
		return fmt.Errorf("%w: identity key text must start with %q", ErrBadKey, identityPrefix)
	}
	// Go's base64 decoders skip CR and LF; a canonical key text has none.
	if len(s) != base64.RawURLEncoding.EncodedLen(IdentityKeySize) || strings.ContainsAny(s, "\r\n") {
		return fmt.Errorf("%w: identity key text has the wrong length or characters", ErrBadKey)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	v, err := ParseIdentityKey(raw)
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// KEMPublicKey is an X-Wing public key used as a pre-key (§2.3).
type KEMPublicKey struct{ b [KEMPublicKeySize]byte }

// probeKey is a fixed X25519 key used only to detect small-order points: for
// any clamped scalar, a point of small order multiplies to the identity,
// which crypto/ecdh reports as an error. It is built once and never changes.
var probeKey = sync.OnceValues(func() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().NewPrivateKey([]byte{1: 0x5a, 7: 0xa5, 31: 0x40})
})

// ParseKEMPublicKey checks b as an X-Wing public key: the ML-KEM-768
// encapsulation key must be canonical and the X25519 point must not be of
// small order (§2.3, Wycheproof "low order public" cases).
func ParseKEMPublicKey(b []byte) (KEMPublicKey, error) {
	var k KEMPublicKey
	if len(b) != KEMPublicKeySize {
		return k, fmt.Errorf("%w: KEM key is %d bytes, want %d", ErrBadKey, len(b), KEMPublicKeySize)
	}
	if _, err := suiteKEM.NewPublicKey(b); err != nil {
		return k, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if err := CheckX25519Point(b[1184:]); err != nil {
		return k, err
	}
	copy(k.b[:], b)
	return k, nil
}

// CheckX25519Point refuses an X25519 public value of small order (one that
// would make any Diffie-Hellman output all zero).
func CheckX25519Point(p []byte) error {
	pub, err := ecdh.X25519().NewPublicKey(p)
	if err != nil {
		return fmt.Errorf("%w: X25519 point: %v", ErrBadKey, err)
	}
	priv, err := probeKey()
	if err != nil {
		return fmt.Errorf("%w: X25519 probe: %v", ErrBadKey, err)
	}
	if _, err := priv.ECDH(pub); err != nil {
		return fmt.Errorf("%w: X25519 point of small order", ErrBadKey)
	}
	return nil
}

// Bytes returns the 1216-byte encoding.
func (k KEMPublicKey) Bytes() []byte { return k.b[:] }

// IsZero reports whether k was never set.
func (k KEMPublicKey) IsZero() bool { return k == KEMPublicKey{} }

// HPKE returns k as a crypto/hpke public key.
func (k KEMPublicKey) HPKE() (hpke.PublicKey, error) { return suiteKEM.NewPublicKey(k.b[:]) }

// readIdentity reads an identity key and refuses an invalid one
// (ParseIdentityKey): keys are checked at decode, wherever they appear.
func readIdentity(r *wire.Reader, dst *IdentityKey, what string) {
	r.FixedInto(dst[:], what)
	if r.Err() == nil {
		if _, err := ParseIdentityKey(dst[:]); err != nil {
			r.Fail("%s: %v", what, err)
		}
	}
}

// readSignature reads a signature and refuses a non-canonical one
// (CheckSignature) before anything verifies it.
func readSignature(r *wire.Reader, dst *[SignatureSize]byte, what string) {
	r.FixedInto(dst[:], what)
	if r.Err() == nil {
		if err := CheckSignature(dst[:]); err != nil {
			r.Fail("%s: %v", what, err)
		}
	}
}

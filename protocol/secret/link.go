package secret

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"

	"sandi.dev/protocol"
	"sandi.dev/protocol/internal/wire"
)

// Device linking (§11). A new device draws a temporary X-Wing key T and a
// 128-bit link key K, sends T to the server with a tag that only a holder
// of K can make, and shows K as its link code. The user types the code on
// an existing device, which keeps the one pending request whose tag
// verifies under K and seals the identity seed to its T with SealIdentity.

// LinkKeySize is the size of a link key (§11): 128 bits.
const LinkKeySize = 16

// LinkTagSize is the size of a link request's tag, an HMAC-SHA256 output.
const LinkTagSize = sha256.Size

// LinkCodeLength is the number of base32 characters of a link code,
// without its dashes.
const LinkCodeLength = 26

var linkEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrLinkCode reports a typed code that is not a link code.
var ErrLinkCode = errors.New("not a valid link code")

// A LinkKey is the secret a new device shows as its link code (§11). It
// never reaches the server. It keys the tag of the device's link request,
// so that a device told the code picks the genuine request among any the
// server lists; and it enters the HPKE info of the sealed identity, so
// that only a device told the code can seal an identity the new device
// accepts.
type LinkKey struct {
	k [LinkKeySize]byte
}

// NewLinkKey draws a link key.
func NewLinkKey() LinkKey {
	var l LinkKey
	protocol.Random(l.k[:])
	return l
}

// linkGroups are the lengths of the dash-separated groups of a code.
var linkGroups = [...]int{5, 5, 5, 5, 6}

// Code is the 26-character code shown to the user, as five groups of
// 5, 5, 5, 5 and 6 characters joined by "-".
func (l LinkKey) Code() string {
	s := linkEncoding.EncodeToString(l.k[:])
	out := make([]byte, 0, len(s)+len(linkGroups)-1)
	for i, n := range linkGroups {
		if i > 0 {
			out = append(out, '-')
		}
		out = append(out, s[:n]...)
		s = s[n:]
	}
	return string(out)
}

// CompactCode is the code without dashes: what a QR code of it holds.
func (l LinkKey) CompactCode() string { return linkEncoding.EncodeToString(l.k[:]) }

// ParseLinkCode reads a typed code. Dashes and spaces are ignored and
// a–z read as A–Z; anything else must be exactly the 26 canonical
// characters of a 16-byte key (§11), or the result is ErrLinkCode.
func ParseLinkCode(code string) (LinkKey, error) {
	norm := make([]byte, 0, LinkCodeLength)
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= 'A' && c <= 'Z', c >= '2' && c <= '7':
		default:
			return LinkKey{}, ErrLinkCode
		}
		if len(norm) == LinkCodeLength {
			return LinkKey{}, ErrLinkCode
		}
		norm = append(norm, c)
	}
	if len(norm) != LinkCodeLength {
		return LinkKey{}, ErrLinkCode
	}
	var l LinkKey
	n, err := linkEncoding.Decode(l.k[:], norm)
	if err != nil || n != LinkKeySize || l.CompactCode() != string(norm) {
		return LinkKey{}, ErrLinkCode // the last character carries 2 bits that must be zero
	}
	return l, nil
}

// linkTagData is the HMAC input of a link request's tag (§11).
func linkTagData(user protocol.UserID, device protocol.DeviceID, pub protocol.KEMPublicKey) []byte {
	w := wire.NewBuilder(len(protocol.LabelLinkRequest) + 1 + 2*protocol.IDSize + protocol.KEMPublicKeySize)
	w.Fixed([]byte(protocol.LabelLinkRequest))
	w.U8(protocol.Version)
	w.Fixed(user[:])
	w.Fixed(device[:])
	w.Fixed(pub.Bytes())
	return w.Bytes()
}

// Tag is the tag the new device sends with its temporary key (§11):
// HMAC-SHA256 under the link key of the account, the new device and the
// temporary key.
func (l LinkKey) Tag(user protocol.UserID, device protocol.DeviceID, pub protocol.KEMPublicKey) []byte {
	m := hmac.New(sha256.New, l.k[:])
	m.Write(linkTagData(user, device, pub))
	return m.Sum(nil)
}

// Verifies reports, in constant time, whether tag is the link key's tag of
// the request (user, device, pub).
func (l LinkKey) Verifies(user protocol.UserID, device protocol.DeviceID, pub protocol.KEMPublicKey, tag []byte) bool {
	return len(tag) == LinkTagSize && hmac.Equal(l.Tag(user, device, pub), tag)
}

// Equal reports, in constant time, whether two link keys are the same.
func (l LinkKey) Equal(o LinkKey) bool { return subtle.ConstantTimeCompare(l.k[:], o.k[:]) == 1 }

func linkInfo(user protocol.UserID, device protocol.DeviceID, pub protocol.KEMPublicKey, l LinkKey) []byte {
	w := wire.NewBuilder(len(protocol.LabelLink) + 1 + 2*protocol.IDSize + sha256.Size + LinkKeySize)
	w.Fixed([]byte(protocol.LabelLink))
	w.U8(protocol.Version)
	w.Fixed(user[:])
	w.Fixed(device[:])
	h := sha256.Sum256(pub.Bytes())
	w.Fixed(h[:])
	w.Fixed(l.k[:])
	return w.Bytes()
}

// SealedIdentitySize is the size of a sealed identity seed: enc (1120) ||
// ciphertext (32 + 16).
const SealedIdentitySize = protocol.KEMEncSize + SeedSize + 16

// SealIdentity seals the identity seed to a new device's temporary key
// under the link key the user typed (§11 step 4).
func SealIdentity(id *IdentityPrivateKey, to protocol.KEMPublicKey, user protocol.UserID, device protocol.DeviceID, l LinkKey) ([]byte, error) {
	enc, ct, err := seal(to, linkInfo(user, device, to, l), id.Seed())
	if err != nil {
		return nil, fmt.Errorf("seal identity: %w", err)
	}
	return append(enc, ct...), nil
}

// OpenIdentity opens a sealed identity seed with the temporary key and the
// link key (§11 step 5).
func OpenIdentity(tmp *KEMPrivateKey, sealed []byte, user protocol.UserID, device protocol.DeviceID, l LinkKey) (*IdentityPrivateKey, error) {
	if len(sealed) != SealedIdentitySize {
		return nil, fmt.Errorf("open identity: sealed key is %d bytes", len(sealed))
	}
	seed, err := tmp.open(linkInfo(user, device, tmp.Public(), l), sealed[:protocol.KEMEncSize], sealed[protocol.KEMEncSize:])
	if err != nil {
		return nil, fmt.Errorf("open identity: %w", err)
	}
	id, err := IdentityFromSeed(seed)
	clear(seed)
	return id, err
}

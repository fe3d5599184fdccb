package secret

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"sandi.dev/protocol"
	"sandi.dev/protocol/internal/wire"
)

// Device linking (§11). A new device draws a temporary X-Wing key and shows
// the code of a LinkSecret. The user types the code on an existing device,
// which fetches the pending requests through the server, picks the one the
// code selects and seals the identity seed to it with SealIdentity.

var linkEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrLinkCode reports a typed code that is not a link code.
var ErrLinkCode = errors.New("not a valid link code")

// A LinkSecret is what a new device shows as its link code (§11): a 2-byte
// selector (a hash of its temporary public key, so the confirming device
// can pick the right pending request) and 10 secret random bytes. The
// secret never reaches the server: it goes into the HPKE info of the sealed
// identity, so only a device that was told the code can seal to the new
// device in a way it accepts, and a server that swapped in its own
// temporary key cannot open what is sealed to it without guessing 80 bits.
type LinkSecret struct {
	selector [2]byte
	secret   [10]byte
}

func linkSelector(pub protocol.KEMPublicKey) [2]byte {
	h := sha256.Sum256(append([]byte(protocol.LabelLink), pub.Bytes()...))
	return [2]byte{h[0], h[1]}
}

// NewLinkSecret draws the link secret of a temporary public key.
func NewLinkSecret(pub protocol.KEMPublicKey) LinkSecret {
	l := LinkSecret{selector: linkSelector(pub)}
	protocol.Random(l.secret[:])
	return l
}

// Code is the 20-character code shown to the user, in groups of four.
func (l LinkSecret) Code() string {
	s := linkEncoding.EncodeToString(append(l.selector[:], l.secret[:]...))[:20]
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20]
}

// ParseLinkSecret reads a typed code; case, spaces and dashes are ignored.
func ParseLinkSecret(code string) (LinkSecret, error) {
	var l LinkSecret
	norm := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, code)
	if len(norm) != 20 {
		return l, ErrLinkCode
	}
	raw, err := linkEncoding.DecodeString(norm)
	if err != nil || len(raw) != 12 {
		return LinkSecret{}, ErrLinkCode
	}
	copy(l.selector[:], raw[:2])
	copy(l.secret[:], raw[2:])
	if l.Code() != norm[0:4]+"-"+norm[4:8]+"-"+norm[8:12]+"-"+norm[12:16]+"-"+norm[16:20] {
		return LinkSecret{}, ErrLinkCode // non-canonical trailing bits
	}
	return l, nil
}

// Selects reports whether the code was made for this temporary key (a
// routing hint, not a security check).
func (l LinkSecret) Selects(pub protocol.KEMPublicKey) bool { return l.selector == linkSelector(pub) }

func linkSecretInfo(user protocol.UserID, device protocol.DeviceID, pub protocol.KEMPublicKey, l LinkSecret) []byte {
	w := wire.NewBuilder(128)
	w.Fixed([]byte(protocol.LabelLink))
	w.U8(protocol.Version)
	w.Fixed(user[:])
	w.Fixed(device[:])
	h := sha256.Sum256(pub.Bytes())
	w.Fixed(h[:])
	w.Fixed(l.secret[:])
	return w.Bytes()
}

// SealIdentity seals the identity seed to a new device's temporary
// key under the code's secret.
func SealIdentity(id *IdentityPrivateKey, to protocol.KEMPublicKey, user protocol.UserID, device protocol.DeviceID, l LinkSecret) ([]byte, error) {
	enc, ct, err := seal(to, linkSecretInfo(user, device, to, l), id.Seed())
	if err != nil {
		return nil, fmt.Errorf("seal identity: %w", err)
	}
	return append(enc, ct...), nil
}

// OpenIdentity opens a sealed identity seed with the temporary key
// and the code's secret.
func OpenIdentity(tmp *KEMPrivateKey, sealed []byte, user protocol.UserID, device protocol.DeviceID, l LinkSecret) (*IdentityPrivateKey, error) {
	if len(sealed) != protocol.KEMEncSize+SeedSize+16 {
		return nil, fmt.Errorf("open identity: sealed key is %d bytes", len(sealed))
	}
	seed, err := tmp.open(linkSecretInfo(user, device, tmp.Public(), l), sealed[:protocol.KEMEncSize], sealed[protocol.KEMEncSize:])
	if err != nil {
		return nil, fmt.Errorf("open identity: %w", err)
	}
	id, err := IdentityFromSeed(seed)
	clear(seed)
	return id, err
}

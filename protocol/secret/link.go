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
// LinkCode(its public key). The user types the code on an existing device,
// which fetches the public key through the server, checks the code and seals
// the identity seed to it with SealIdentity. The code is 80 bits of a hash of
// the public key, so a server that swaps the key must find a second preimage.

const linkCodeBytes = 10

var linkEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrLinkCode reports a code that does not match the public key.
var ErrLinkCode = errors.New("link code does not match the new device's key")

// LinkCode is the 16-character code for a temporary public key, shown in
// four groups of four.
func LinkCode(pub protocol.KEMPublicKey) string {
	h := sha256.Sum256(append([]byte(protocol.LabelLink), pub.Bytes()...))
	s := linkEncoding.EncodeToString(h[:linkCodeBytes])
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// CheckLinkCode compares a typed code (case, spaces and dashes ignored) with
// the code of pub.
func CheckLinkCode(code string, pub protocol.KEMPublicKey) error {
	norm := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, code)
	if norm != strings.ReplaceAll(LinkCode(pub), "-", "") {
		return ErrLinkCode
	}
	return nil
}

func linkInfo(user protocol.UserID, device protocol.DeviceID) []byte {
	w := wire.NewBuilder(64)
	w.Fixed([]byte(protocol.LabelLink))
	w.U8(protocol.Version)
	w.Fixed(user[:])
	w.Fixed(device[:])
	return w.Bytes()
}

// SealIdentity seals the identity seed to a new device's temporary key. The
// HPKE info binds the account and the new device's id.
func SealIdentity(id *IdentityPrivateKey, to protocol.KEMPublicKey, user protocol.UserID, device protocol.DeviceID) ([]byte, error) {
	enc, ct, err := seal(to, linkInfo(user, device), id.Seed())
	if err != nil {
		return nil, fmt.Errorf("seal identity: %w", err)
	}
	return append(enc, ct...), nil
}

// OpenIdentity opens a sealed identity seed with the temporary key and
// checks it yields the expected identity public key.
func OpenIdentity(tmp *KEMPrivateKey, sealed []byte, user protocol.UserID, device protocol.DeviceID, want protocol.IdentityKey) (*IdentityPrivateKey, error) {
	if len(sealed) != protocol.KEMEncSize+SeedSize+16 {
		return nil, fmt.Errorf("open identity: sealed key is %d bytes", len(sealed))
	}
	seed, err := tmp.open(linkInfo(user, device), sealed[:protocol.KEMEncSize], sealed[protocol.KEMEncSize:])
	if err != nil {
		return nil, fmt.Errorf("open identity: %w", err)
	}
	id, err := IdentityFromSeed(seed)
	clear(seed)
	if err != nil {
		return nil, err
	}
	if !id.Public().Equal(want) {
		return nil, fmt.Errorf("open identity: %w", protocol.ErrBadSignature)
	}
	return id, nil
}

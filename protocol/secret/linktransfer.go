package secret

import (
	"fmt"

	"sandi.dev/protocol"
)

// SealedIdentityOfferSize is the size of a sealed identity seed followed
// by a history transfer offer (§11, version 2 of the sealed payload):
// enc (1120) || ciphertext (32 + extra + 16).
func SealedIdentityOfferSize(extra int) int { return SealedIdentitySize + extra }

// SealIdentityWith seals the identity seed followed by extra (a history
// transfer offer, protocol.md §14.5) under the same info as SealIdentity:
// only the device that drew the temporary key and showed the code can open
// either. With no extra it is SealIdentity.
func SealIdentityWith(id *IdentityPrivateKey, extra []byte, to protocol.KEMPublicKey, user protocol.UserID, device protocol.DeviceID, l LinkKey) ([]byte, error) {
	pt := append(id.Seed(), extra...)
	defer clear(pt)
	enc, ct, err := seal(to, linkInfo(user, device, to, l), pt)
	if err != nil {
		return nil, fmt.Errorf("seal identity: %w", err)
	}
	return append(enc, ct...), nil
}

// OpenIdentityWith opens a sealed identity seed of exactly SealedIdentitySize
// bytes (no extra) or SealedIdentitySize+extraSize (an offer follows the
// seed, returned as extra); any other size is refused.
func OpenIdentityWith(tmp *KEMPrivateKey, sealed []byte, extraSize int, user protocol.UserID, device protocol.DeviceID, l LinkKey) (*IdentityPrivateKey, []byte, error) {
	if len(sealed) != SealedIdentitySize && len(sealed) != SealedIdentitySize+extraSize {
		return nil, nil, fmt.Errorf("open identity: sealed key is %d bytes", len(sealed))
	}
	pt, err := tmp.open(linkInfo(user, device, tmp.Public(), l), sealed[:protocol.KEMEncSize], sealed[protocol.KEMEncSize:])
	if err != nil {
		return nil, nil, fmt.Errorf("open identity: %w", err)
	}
	id, err := IdentityFromSeed(pt[:SeedSize])
	clear(pt[:SeedSize])
	if err != nil {
		return nil, nil, err
	}
	var extra []byte
	if len(pt) > SeedSize {
		extra = pt[SeedSize:]
	}
	return id, extra, nil
}

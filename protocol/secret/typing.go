package secret

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"sandi.dev/protocol"
)

// TypingKey is an epoch's key for typing notices (§13.9), derived from the
// epoch's state key.
type TypingKey [32]byte

// ErrTypingOpen reports a typing notice whose ciphertext does not open
// under the epoch's typing key, or whose plaintext does not decode.
var ErrTypingOpen = errors.New("typing notice does not open")

// DeriveTypingKey derives an epoch's typing key from its state key:
// HKDF-SHA256(state key, info = LabelTypingKey).
func DeriveTypingKey(k *StateKey) (TypingKey, error) {
	var t TypingKey
	out, err := hkdf.Key(sha256.New, k[:], nil, protocol.LabelTypingKey, len(t))
	if err != nil {
		return t, fmt.Errorf("typing key: %w", err)
	}
	copy(t[:], out)
	return t, nil
}

// SealTyping makes a typing notice: typing (or stopped), at time ms (Unix
// milliseconds, the sender's clock), encrypted under k with a fresh
// random nonce and signed by the sender's identity key. h names the
// conversation, epoch and sender; its Nonce is drawn here.
func SealTyping(id *IdentityPrivateKey, k *TypingKey, h protocol.TypingHeader, typing bool, ms int64) (*protocol.Typing, error) {
	protocol.Random(h.Nonce[:])
	return sealTyping(id, k, h, typing, ms)
}

// sealTyping is SealTyping with the nonce h carries (test vectors).
func sealTyping(id *IdentityPrivateKey, k *TypingKey, h protocol.TypingHeader, typing bool, ms int64) (*protocol.Typing, error) {
	a, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return nil, fmt.Errorf("typing aead: %w", err)
	}
	var pt [protocol.TypingPlaintextSize]byte
	if typing {
		pt[0] = 1
	}
	binary.BigEndian.PutUint64(pt[1:], uint64(max(ms, 0)))
	t := &protocol.Typing{TypingHeader: h}
	copy(t.Ciphertext[:], a.Seal(nil, h.Nonce[:], pt[:], h.AssociatedData()))
	t.Signature = id.Sign(t.SignedData())
	return t, nil
}

// OpenTyping verifies a typing notice's signature under the sender's
// identity key, then decrypts it with the typing key of the epoch it
// names: whether the sender is typing, and when (its clock). The caller
// checks the epoch and the sender's membership.
func OpenTyping(k *TypingKey, t *protocol.Typing, sender protocol.IdentityKey) (typing bool, ms int64, err error) {
	if err := t.Verify(sender); err != nil {
		return false, 0, err
	}
	a, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return false, 0, fmt.Errorf("typing aead: %w", err)
	}
	pt, err := a.Open(nil, t.Nonce[:], t.Ciphertext[:], t.AssociatedData())
	if err != nil || len(pt) != protocol.TypingPlaintextSize || pt[0] > 1 {
		return false, 0, ErrTypingOpen
	}
	v := binary.BigEndian.Uint64(pt[1:])
	if v > 1<<62 {
		return false, 0, ErrTypingOpen
	}
	return pt[0] == 1, int64(v), nil
}

package secret

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"sandi.dev/protocol"
	"sandi.dev/protocol/internal/wire"
)

// StateKey is an epoch's key for conversation state (§7.6). A device
// derives it when it opens (or makes) the epoch, before it erases the
// epoch secret, and keeps it with the epoch's ratchet state.
type StateKey [protocol.StateKeySize]byte

// ErrStateOpen reports a state record whose ciphertext does not open under
// the epoch's state key, or whose plaintext does not decode.
var ErrStateOpen = errors.New("conversation state does not open")

// DeriveStateKey derives the state key of an epoch (§7.6):
// HKDF-SHA256(S, info = LabelStateKey || version || conversation || epoch).
func DeriveStateKey(s *EpochSecret, conv protocol.ConversationID, epoch uint64) (StateKey, error) {
	w := wire.NewBuilder(len(protocol.LabelStateKey) + 1 + protocol.IDSize + 8)
	w.Fixed([]byte(protocol.LabelStateKey))
	w.U8(protocol.Version)
	w.Fixed(conv[:])
	w.U64(epoch)
	var k StateKey
	out, err := hkdf.Key(sha256.New, s[:], nil, string(w.Bytes()), len(k))
	if err != nil {
		return k, fmt.Errorf("state key: %w", err)
	}
	copy(k[:], out)
	return k, nil
}

// SealState encrypts content under an epoch's state key with a fresh
// random nonce and signs the record with the signer's identity key. h
// names the conversation, epoch, state version, signer and time; its
// Nonce is drawn here.
func SealState(id *IdentityPrivateKey, k *StateKey, h protocol.StateHeader, content protocol.StateContent) (*protocol.StateRecord, error) {
	protocol.Random(h.Nonce[:])
	return sealState(id, k, h, content)
}

// sealState is SealState with the nonce h carries (test vectors).
func sealState(id *IdentityPrivateKey, k *StateKey, h protocol.StateHeader, content protocol.StateContent) (*protocol.StateRecord, error) {
	if err := content.Check(); err != nil {
		return nil, err
	}
	a, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return nil, fmt.Errorf("state aead: %w", err)
	}
	rec := &protocol.StateRecord{StateHeader: h}
	rec.Ciphertext = a.Seal(nil, h.Nonce[:], Pad(content.Marshal()), h.AssociatedData())
	if len(rec.Ciphertext) > protocol.MaxStateCiphertext {
		return nil, fmt.Errorf("%w: state too long", protocol.ErrBadState)
	}
	rec.Signature = id.Sign(rec.SignedData())
	return rec, nil
}

// OpenState verifies a state record's signature under the signer's
// identity key, then decrypts it with the state key of the epoch it names
// and decodes its content (§7.6 steps 4 and 5). The caller checks
// everything else the receiver must (the epoch, the signer's membership,
// the version).
func OpenState(k *StateKey, rec *protocol.StateRecord, signer protocol.IdentityKey) (protocol.StateContent, error) {
	if err := rec.Verify(signer); err != nil {
		return protocol.StateContent{}, err
	}
	a, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return protocol.StateContent{}, fmt.Errorf("state aead: %w", err)
	}
	pt, err := a.Open(nil, rec.Nonce[:], rec.Ciphertext, rec.AssociatedData())
	if err != nil {
		return protocol.StateContent{}, ErrStateOpen
	}
	pt, err = Unpad(pt)
	if err != nil {
		return protocol.StateContent{}, fmt.Errorf("%w: %w", ErrStateOpen, err)
	}
	c, err := protocol.ParseStateContent(pt)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrStateOpen, err)
	}
	return c, nil
}

package protocol

import (
	"errors"
	"fmt"

	"sandi.dev/protocol/internal/wire"
)

// Sizes of a typing notice (§13.9).
const (
	// TypingNonceSize is the XChaCha20-Poly1305 nonce of a typing notice.
	TypingNonceSize = 24
	// TypingPlaintextSize is its plaintext: state u8 and time u64.
	TypingPlaintextSize = 1 + 8
	// TypingCiphertextSize is the plaintext with the AEAD's tag.
	TypingCiphertextSize = TypingPlaintextSize + 16
	// TypingHeaderSize is the clear part before the ciphertext: version,
	// conversation, epoch, sender (user and device), nonce.
	TypingHeaderSize = 1 + IDSize + 8 + 2*IDSize + TypingNonceSize
	// TypingSize is the size of every typing notice encoding.
	TypingSize = TypingHeaderSize + TypingCiphertextSize + SignatureSize
)

// ErrBadTyping reports a typing notice that does not decode or verify.
var ErrBadTyping = errors.New("invalid typing notice")

// TypingHeader is the clear part of a typing notice: the AEAD's associated
// data, covered by the signature.
type TypingHeader struct {
	Conversation ConversationID
	// Epoch is the epoch whose state key the notice's key derives from.
	Epoch  uint64
	Sender DeviceRef
	Nonce  [TypingNonceSize]byte
}

func (h *TypingHeader) encode(w *wire.Builder) {
	w.U8(Version)
	w.Fixed(h.Conversation[:])
	w.U64(h.Epoch)
	w.Fixed(h.Sender.User[:])
	w.Fixed(h.Sender.Device[:])
	w.Fixed(h.Nonce[:])
}

// AssociatedData is the AEAD associated data: LabelTypingAD || header.
func (h *TypingHeader) AssociatedData() []byte {
	w := wire.NewBuilder(len(LabelTypingAD) + TypingHeaderSize)
	w.Fixed([]byte(LabelTypingAD))
	h.encode(w)
	return w.Bytes()
}

// Typing is a typing notice: ephemeral, relayed by the server to the live
// connections of the conversation's other members and never stored
// (§13.9).
type Typing struct {
	TypingHeader
	Ciphertext [TypingCiphertextSize]byte
	Signature  [SignatureSize]byte
}

// SignedData is what the sender's identity key signs:
// LabelTypingSig || header || ciphertext.
func (t *Typing) SignedData() []byte {
	w := wire.NewBuilder(len(LabelTypingSig) + TypingHeaderSize + TypingCiphertextSize)
	w.Fixed([]byte(LabelTypingSig))
	t.TypingHeader.encode(w)
	w.Fixed(t.Ciphertext[:])
	return w.Bytes()
}

// Marshal returns the encoding of §13.9.
func (t *Typing) Marshal() []byte {
	w := wire.NewBuilder(TypingSize)
	t.TypingHeader.encode(w)
	w.Fixed(t.Ciphertext[:])
	w.Fixed(t.Signature[:])
	return w.Bytes()
}

// ParseTyping decodes a typing notice strictly. It checks structure, not
// the signature: see Verify.
func ParseTyping(b []byte) (*Typing, error) {
	r := wire.NewReader(b)
	var t Typing
	if v := r.U8("version"); r.Err() == nil && v != Version {
		r.Fail("version %d", v)
	}
	r.FixedInto(t.Conversation[:], "conversation id")
	if r.Err() == nil && t.Conversation.IsZero() {
		r.Fail("zero conversation id")
	}
	t.Epoch = r.U64("epoch")
	if r.Err() == nil && t.Epoch == 0 {
		r.Fail("epoch 0")
	}
	r.FixedInto(t.Sender.User[:], "sender user")
	r.FixedInto(t.Sender.Device[:], "sender device")
	if r.Err() == nil && (t.Sender.User.IsZero() || t.Sender.Device.IsZero()) {
		r.Fail("zero sender")
	}
	r.FixedInto(t.Nonce[:], "nonce")
	r.FixedInto(t.Ciphertext[:], "ciphertext")
	readSignature(r, &t.Signature, "signature")
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTyping, err)
	}
	return &t, nil
}

// Verify checks the sender's signature with its identity key.
func (t *Typing) Verify(id IdentityKey) error {
	if err := id.Verify(t.SignedData(), t.Signature[:]); err != nil {
		return fmt.Errorf("typing notice: %w", err)
	}
	return nil
}

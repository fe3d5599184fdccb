package protocol

import (
	"fmt"

	"sandi.dev/protocol/internal/wire"
)

// Sizes and limits of §9.
const (
	HeaderSize = 1 + IDSize + 8 + 2*IDSize + 4
	// MaxCiphertext caps an envelope's ciphertext (padded plaintext + tag).
	MaxCiphertext = 96 * 1024
	// MaxEnvelopeSize is the largest valid envelope encoding.
	MaxEnvelopeSize = HeaderSize + 4 + MaxCiphertext + SignatureSize
)

// Header is the public part of a message envelope (§9.1). It is the AEAD's
// associated data and is covered by the sender's signature.
type Header struct {
	Conversation ConversationID
	Epoch        uint64
	Sender       DeviceRef
	Counter      uint32 // position in the sender's chain for this epoch
}

func (h *Header) encode(w *wire.Builder) {
	w.U8(Version)
	w.Fixed(h.Conversation[:])
	w.U64(h.Epoch)
	w.Fixed(h.Sender.User[:])
	w.Fixed(h.Sender.Device[:])
	w.U32(h.Counter)
}

func decodeHeader(r *wire.Reader) Header {
	var h Header
	if v := r.U8("version"); r.Err() == nil && v != Version {
		r.Fail("version %d", v)
	}
	r.FixedInto(h.Conversation[:], "conversation id")
	h.Epoch = r.U64("epoch")
	r.FixedInto(h.Sender.User[:], "sender user")
	r.FixedInto(h.Sender.Device[:], "sender device")
	h.Counter = r.U32("counter")
	return h
}

// AssociatedData is the AEAD associated data: LabelEnvelopeAD || header.
func (h *Header) AssociatedData() []byte {
	w := wire.NewBuilder(len(LabelEnvelopeAD) + HeaderSize)
	w.Fixed([]byte(LabelEnvelopeAD))
	h.encode(w)
	return w.Bytes()
}

// Envelope is an encrypted, signed message (§9).
type Envelope struct {
	Header
	Ciphertext []byte // at most MaxCiphertext bytes
	Signature  [SignatureSize]byte
}

// SignedData is what the sender's identity key signs:
// LabelEnvelopeSig || header || u32 length || ciphertext.
func (e *Envelope) SignedData() []byte {
	w := wire.NewBuilder(len(LabelEnvelopeSig) + HeaderSize + 4 + len(e.Ciphertext))
	w.Fixed([]byte(LabelEnvelopeSig))
	e.Header.encode(w)
	w.Bytes32(e.Ciphertext)
	return w.Bytes()
}

// Marshal returns the encoding of §9.2.
func (e *Envelope) Marshal() []byte {
	w := wire.NewBuilder(HeaderSize + 4 + len(e.Ciphertext) + SignatureSize)
	e.Header.encode(w)
	w.Bytes32(e.Ciphertext)
	w.Fixed(e.Signature[:])
	return w.Bytes()
}

// ParseEnvelope decodes an envelope. It does not verify the signature.
func ParseEnvelope(b []byte) (*Envelope, error) {
	r := wire.NewReader(b)
	var e Envelope
	e.Header = decodeHeader(r)
	e.Ciphertext = r.Bytes32(MaxCiphertext, "ciphertext")
	readSignature(r, &e.Signature, "signature")
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	e.Ciphertext = append([]byte(nil), e.Ciphertext...)
	return &e, nil
}

// Verify checks the sender's signature with its identity key.
func (e *Envelope) Verify(id IdentityKey) error {
	if err := id.Verify(e.SignedData(), e.Signature[:]); err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	return nil
}

package protocol

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"sandi.dev/protocol/internal/wire"
)

// Sizes and limits of conversation state (§7.6).
const (
	// StateNonceSize is the XChaCha20-Poly1305 nonce of a state record.
	StateNonceSize = 24
	// StateHeaderSize is the clear part of a state record before the
	// ciphertext: version, conversation, epoch, state version, signer
	// (user and device), time, nonce.
	StateHeaderSize = 1 + IDSize + 8 + 8 + 2*IDSize + 8 + StateNonceSize
	// MaxStateCiphertext caps a state record's ciphertext.
	MaxStateCiphertext = 4096
	// MaxStateRecordSize is the largest valid state record encoding.
	MaxStateRecordSize = StateHeaderSize + 2 + MaxStateCiphertext + SignatureSize
	// MaxTitle and MaxDescription cap the state's texts, in bytes of UTF-8.
	MaxTitle       = 256
	MaxDescription = 2048
	// StateKeySize is the size of an epoch's state key (§7.6).
	StateKeySize = 32
)

// ErrBadState reports a state record or content that does not decode or
// verify.
var ErrBadState = errors.New("invalid conversation state")

// StateHeader is the clear part of a state record (§7.6): the AEAD's
// associated data, covered by the signature.
type StateHeader struct {
	Conversation ConversationID
	// Epoch is the epoch whose state key encrypts the record.
	Epoch uint64
	// StateVersion counts the conversation's states: 1 for the first, +1
	// for every change; a re-publication in a new epoch keeps it.
	StateVersion uint64
	// Signer is the member device that made the record.
	Signer DeviceRef
	// Time is Unix milliseconds, the signer's clock; informational.
	Time  int64
	Nonce [StateNonceSize]byte
}

func (h *StateHeader) encode(w *wire.Builder) {
	w.U8(Version)
	w.Fixed(h.Conversation[:])
	w.U64(h.Epoch)
	w.U64(h.StateVersion)
	w.Fixed(h.Signer.User[:])
	w.Fixed(h.Signer.Device[:])
	w.U64(uint64(h.Time))
	w.Fixed(h.Nonce[:])
}

// AssociatedData is the AEAD associated data: LabelStateAD || header.
func (h *StateHeader) AssociatedData() []byte {
	w := wire.NewBuilder(len(LabelStateAD) + StateHeaderSize)
	w.Fixed([]byte(LabelStateAD))
	h.encode(w)
	return w.Bytes()
}

// StateRecord is a conversation's state encrypted under one epoch and
// signed by the member device that made it (§7.6).
type StateRecord struct {
	StateHeader
	Ciphertext []byte // at most MaxStateCiphertext bytes
	Signature  [SignatureSize]byte
}

// SignedData is what the signer's identity key signs:
// LabelStateSig || header || u16 length || ciphertext.
func (s *StateRecord) SignedData() []byte {
	w := wire.NewBuilder(len(LabelStateSig) + StateHeaderSize + 2 + len(s.Ciphertext))
	w.Fixed([]byte(LabelStateSig))
	s.StateHeader.encode(w)
	w.Bytes16(s.Ciphertext)
	return w.Bytes()
}

// Marshal returns the encoding of §7.6.
func (s *StateRecord) Marshal() []byte {
	w := wire.NewBuilder(StateHeaderSize + 2 + len(s.Ciphertext) + SignatureSize)
	s.StateHeader.encode(w)
	w.Bytes16(s.Ciphertext)
	w.Fixed(s.Signature[:])
	return w.Bytes()
}

// ParseStateRecord decodes a state record strictly (§7.6). It checks
// structure, not the signature: see Verify.
func ParseStateRecord(b []byte) (*StateRecord, error) {
	r := wire.NewReader(b)
	var s StateRecord
	if v := r.U8("version"); r.Err() == nil && v != Version {
		r.Fail("version %d", v)
	}
	r.FixedInto(s.Conversation[:], "conversation id")
	if r.Err() == nil && s.Conversation.IsZero() {
		r.Fail("zero conversation id")
	}
	s.Epoch = r.U64("epoch")
	if r.Err() == nil && s.Epoch == 0 {
		r.Fail("epoch 0")
	}
	s.StateVersion = r.U64("state version")
	if r.Err() == nil && s.StateVersion == 0 {
		r.Fail("state version 0")
	}
	r.FixedInto(s.Signer.User[:], "signer user")
	r.FixedInto(s.Signer.Device[:], "signer device")
	if r.Err() == nil && (s.Signer.User.IsZero() || s.Signer.Device.IsZero()) {
		r.Fail("zero signer")
	}
	s.Time = int64(r.U64("time"))
	if r.Err() == nil && s.Time < 0 {
		r.Fail("time out of range")
	}
	r.FixedInto(s.Nonce[:], "nonce")
	ct := r.Bytes16(MaxStateCiphertext, "ciphertext")
	readSignature(r, &s.Signature, "signature")
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	s.Ciphertext = append([]byte(nil), ct...)
	return &s, nil
}

// Verify checks the signer's signature with its identity key.
func (s *StateRecord) Verify(id IdentityKey) error {
	if err := id.Verify(s.SignedData(), s.Signature[:]); err != nil {
		return fmt.Errorf("conversation state: %w", err)
	}
	return nil
}

// StateContent is what a state record encrypts: the conversation's title,
// description and disappearing-message timer (§7.6).
type StateContent struct {
	Title       string
	Description string
	// Timer is the disappearing-message timer in seconds, 0 for off.
	Timer uint32
}

// Marshal returns the plaintext encoding of §7.6 (before padding).
func (c *StateContent) Marshal() []byte {
	w := wire.NewBuilder(2 + len(c.Title) + 2 + len(c.Description) + 4)
	w.Bytes16([]byte(c.Title))
	w.Bytes16([]byte(c.Description))
	w.U32(c.Timer)
	return w.Bytes()
}

// Check refuses texts that are too long or not UTF-8.
func (c *StateContent) Check() error {
	if len(c.Title) > MaxTitle || !utf8.ValidString(c.Title) {
		return fmt.Errorf("%w: a title is at most %d bytes of UTF-8", ErrBadState, MaxTitle)
	}
	if len(c.Description) > MaxDescription || !utf8.ValidString(c.Description) {
		return fmt.Errorf("%w: a description is at most %d bytes of UTF-8", ErrBadState, MaxDescription)
	}
	return nil
}

// ParseStateContent decodes a decrypted, unpadded state plaintext strictly.
func ParseStateContent(b []byte) (StateContent, error) {
	r := wire.NewReader(b)
	var c StateContent
	c.Title = string(r.Bytes16(MaxTitle, "title"))
	c.Description = string(r.Bytes16(MaxDescription, "description"))
	c.Timer = r.U32("timer")
	if err := r.Done(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	if err := c.Check(); err != nil {
		return c, err
	}
	return c, nil
}

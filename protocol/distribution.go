package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"sandi.dev/protocol/internal/wire"
)

// Sizes and limits of §7.
const (
	EpochSecretSize   = 32
	SealedSecretSize  = EpochSecretSize + 16 // ChaCha20-Poly1305 tag
	MaxRecipients     = 2000
	recipientWireSize = 2*IDSize + 4 + KEMEncSize + SealedSecretSize
)

// ErrRecipients reports a distribution whose recipients are not exactly the
// member devices it must cover.
var ErrRecipients = errors.New("distribution recipients differ from the member devices")

// DeviceRef names one device of one user.
type DeviceRef struct {
	User   UserID
	Device DeviceID
}

func (d DeviceRef) less(o DeviceRef) int {
	if c := bytes.Compare(d.User[:], o.User[:]); c != 0 {
		return c
	}
	return bytes.Compare(d.Device[:], o.Device[:])
}

// Recipient is one device's entry in a distribution: the epoch secret sealed
// with HPKE to one of its pre-keys. Enc is the initiator ephemeral key.
type Recipient struct {
	DeviceRef
	PreKeyID   uint32
	Enc        [KEMEncSize]byte
	Ciphertext [SealedSecretSize]byte
}

// Distribution is a signed epoch ("session") of a conversation (§7): the
// epoch secret sealed to every member device, made and signed by a member's
// client. The server stores it and hands each device its entry; it can read
// none of them.
type Distribution struct {
	Conversation ConversationID
	Epoch        uint64         // 1 for the first epoch, then +1
	ChainSeq     uint64         // seq of the membership record it was made for
	ChainHead    [HashSize]byte // hash of that record
	Creator      DeviceRef
	Time         int64          // Unix milliseconds, the creator's clock
	Commitment   [HashSize]byte // binds the epoch secret (§7.3)
	Recipients   []Recipient    // sorted by (user, device), no repeats
	Signature    [SignatureSize]byte
}

func (d *Distribution) encode(w *wire.Builder, withSig bool) {
	w.U8(Version)
	w.Fixed(d.Conversation[:])
	w.U64(d.Epoch)
	w.U64(d.ChainSeq)
	w.Fixed(d.ChainHead[:])
	w.Fixed(d.Creator.User[:])
	w.Fixed(d.Creator.Device[:])
	w.U64(uint64(d.Time))
	w.Fixed(d.Commitment[:])
	w.U16(uint16(len(d.Recipients)))
	for i := range d.Recipients {
		e := &d.Recipients[i]
		w.Fixed(e.User[:])
		w.Fixed(e.Device[:])
		w.U32(e.PreKeyID)
		w.Fixed(e.Enc[:])
		w.Fixed(e.Ciphertext[:])
	}
	if withSig {
		w.Fixed(d.Signature[:])
	}
}

func (d *Distribution) size() int {
	return 1 + IDSize + 16 + HashSize + 2*IDSize + 8 + HashSize + 2 + len(d.Recipients)*recipientWireSize + SignatureSize
}

// SignedData is what the creator's identity key signs.
func (d *Distribution) SignedData() []byte {
	w := wire.NewBuilder(len(LabelDistribution) + d.size())
	w.Fixed([]byte(LabelDistribution))
	d.encode(w, false)
	return w.Bytes()
}

// Marshal returns the encoding of §7.1.
func (d *Distribution) Marshal() []byte {
	w := wire.NewBuilder(d.size())
	d.encode(w, true)
	return w.Bytes()
}

// ParseDistribution decodes a distribution; it checks structure (including
// the order of recipients), not signatures.
func ParseDistribution(b []byte) (*Distribution, error) {
	r := wire.NewReader(b)
	var d Distribution
	if v := r.U8("version"); r.Err() == nil && v != Version {
		r.Fail("version %d", v)
	}
	r.FixedInto(d.Conversation[:], "conversation id")
	d.Epoch = r.U64("epoch")
	d.ChainSeq = r.U64("chain seq")
	r.FixedInto(d.ChainHead[:], "chain head")
	r.FixedInto(d.Creator.User[:], "creator user")
	r.FixedInto(d.Creator.Device[:], "creator device")
	d.Time = int64(r.U64("time"))
	r.FixedInto(d.Commitment[:], "commitment")
	n := r.Count(MaxRecipients, "recipients")
	if r.Err() == nil && n*recipientWireSize > r.Remaining() {
		r.Fail("recipients: %d entries do not fit", n)
	}
	if r.Err() == nil && n > 0 {
		d.Recipients = make([]Recipient, n)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		e := &d.Recipients[i]
		r.FixedInto(e.User[:], "recipient user")
		r.FixedInto(e.Device[:], "recipient device")
		e.PreKeyID = r.U32("recipient pre-key")
		r.FixedInto(e.Enc[:], "recipient enc")
		r.FixedInto(e.Ciphertext[:], "recipient ciphertext")
		if i > 0 && r.Err() == nil && d.Recipients[i-1].less(e.DeviceRef) >= 0 {
			r.Fail("recipients not in strictly ascending order")
		}
	}
	readSignature(r, &d.Signature, "signature")
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("distribution: %w", err)
	}
	return &d, nil
}

// SortRecipients puts d.Recipients in the canonical order.
func (d *Distribution) SortRecipients() {
	slices.SortFunc(d.Recipients, func(a, b Recipient) int { return a.less(b.DeviceRef) })
}

// Devices returns the recipient devices in canonical order.
func (d *Distribution) Devices() []DeviceRef {
	out := make([]DeviceRef, len(d.Recipients))
	for i := range d.Recipients {
		out[i] = d.Recipients[i].DeviceRef
	}
	return out
}

// Entry returns the recipient entry of dev, or nil.
func (d *Distribution) Entry(dev DeviceRef) *Recipient {
	i, ok := slices.BinarySearchFunc(d.Recipients, dev, func(e Recipient, t DeviceRef) int { return e.less(t) })
	if !ok {
		return nil
	}
	return &d.Recipients[i]
}

// Verify checks d against the membership chain it names (chain must be at
// d.ChainSeq with head d.ChainHead): the creator is a member and its identity
// key signed d, and every recipient belongs to a member. It does not check
// that the recipient set is complete: see CheckDevices.
func (d *Distribution) Verify(chain *Chain) error {
	if d.Conversation != chain.Conversation {
		return fmt.Errorf("distribution: conversation %s, chain %s", d.Conversation, chain.Conversation)
	}
	if d.ChainSeq != chain.Seq || d.ChainHead != chain.Head {
		return fmt.Errorf("distribution: made for membership record %d, chain is at %d", d.ChainSeq, chain.Seq)
	}
	if d.Epoch == 0 {
		return fmt.Errorf("distribution: epoch 0")
	}
	creator, ok := chain.Member(d.Creator.User)
	if !ok {
		return fmt.Errorf("distribution: creator %s is not a member: %w", d.Creator.User, ErrUnauthorized)
	}
	if len(d.Recipients) == 0 || len(d.Recipients) > MaxRecipients {
		return fmt.Errorf("distribution: %d recipients, want 1 to %d", len(d.Recipients), MaxRecipients)
	}
	for i := range d.Recipients {
		e := &d.Recipients[i]
		if _, ok := chain.Member(e.User); !ok {
			return fmt.Errorf("distribution: recipient %s is not a member: %w", e.User, ErrRecipients)
		}
		if i > 0 && d.Recipients[i-1].less(e.DeviceRef) >= 0 {
			return fmt.Errorf("distribution: recipients not in canonical order")
		}
	}
	if d.Entry(d.Creator) == nil {
		return fmt.Errorf("distribution: creator device is not a recipient")
	}
	if err := creator.Identity.Verify(d.SignedData(), d.Signature[:]); err != nil {
		return fmt.Errorf("distribution: %w", err)
	}
	return nil
}

// CheckDevices compares the recipients with the devices they must cover.
// It returns the devices missing from d and the recipients that are not in
// want, and ErrRecipients if either is non-empty.
func (d *Distribution) CheckDevices(want []DeviceRef) (missing, extra []DeviceRef, err error) {
	have := make(map[DeviceRef]bool, len(d.Recipients))
	for _, e := range d.Recipients {
		have[e.DeviceRef] = true
	}
	wanted := make(map[DeviceRef]bool, len(want))
	for _, w := range want {
		wanted[w] = true
		if !have[w] {
			missing = append(missing, w)
		}
	}
	for _, e := range d.Recipients {
		if !wanted[e.DeviceRef] {
			extra = append(extra, e.DeviceRef)
		}
	}
	if len(missing)+len(extra) > 0 {
		return missing, extra, ErrRecipients
	}
	return nil, nil, nil
}

// EpochKeyInfo is the HPKE info for sealing an epoch secret to one recipient
// (§7.2): label || version || conversation || epoch || chain head ||
// creator device || recipient user || recipient device || pre-key id.
func EpochKeyInfo(conv ConversationID, epoch uint64, head [HashSize]byte, creator DeviceRef, to DeviceRef, preKeyID uint32) []byte {
	w := wire.NewBuilder(len(LabelEpochKey) + 1 + 5*IDSize + 8 + HashSize + 4)
	w.Fixed([]byte(LabelEpochKey))
	w.U8(Version)
	w.Fixed(conv[:])
	w.U64(epoch)
	w.Fixed(head[:])
	w.Fixed(creator.User[:])
	w.Fixed(creator.Device[:])
	w.Fixed(to.User[:])
	w.Fixed(to.Device[:])
	w.U32(preKeyID)
	return w.Bytes()
}

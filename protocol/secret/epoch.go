package secret

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"sandi.dev/protocol"
	"sandi.dev/protocol/internal/wire"
)

// EpochSecret is the 32-byte secret of one epoch of one conversation.
type EpochSecret [protocol.EpochSecretSize]byte

// Equal compares in constant time.
func (s *EpochSecret) Equal(o *EpochSecret) bool { return subtle.ConstantTimeCompare(s[:], o[:]) == 1 }

// NewEpochSecret draws a new epoch secret.
func NewEpochSecret() *EpochSecret {
	var s EpochSecret
	protocol.Random(s[:])
	return &s
}

// Errors of opening a distribution.
var (
	ErrNotRecipient = errors.New("this device is not a recipient of the distribution")
	ErrNoPreKey     = errors.New("no private key for the pre-key the epoch was sealed to")
	ErrUnseal       = errors.New("epoch key does not open")
	ErrCommitment   = errors.New("epoch secret does not match the distribution's commitment")
)

// Commitment binds an epoch secret to its conversation and epoch (§7.3):
// HKDF-SHA256(secret, salt = none, info = label || version || conversation || epoch).
func Commitment(s *EpochSecret, conv protocol.ConversationID, epoch uint64) ([protocol.HashSize]byte, error) {
	w := wire.NewBuilder(64)
	w.Fixed([]byte(protocol.LabelEpochCommitment))
	w.U8(protocol.Version)
	w.Fixed(conv[:])
	w.U64(epoch)
	var out [protocol.HashSize]byte
	k, err := hkdf.Key(sha256.New, s[:], nil, string(w.Bytes()), protocol.HashSize)
	if err != nil {
		return out, fmt.Errorf("epoch commitment: %w", err)
	}
	copy(out[:], k)
	return out, nil
}

// EpochRequest describes a new epoch a client is about to distribute.
type EpochRequest struct {
	Chain   *protocol.Chain // verified membership the epoch is made for
	Epoch   uint64
	Creator protocol.DeviceRef
	Time    int64 // Unix milliseconds
	// Bundles holds a verified bundle (claimed: at most one one-time key)
	// for every device that must receive the epoch, including the creator's.
	Bundles []*protocol.Bundle
}

// NewDistribution draws an epoch secret, seals it to every device of
// req.Bundles that is not dormant at req.Time (§5.3) and signs the result with the creator's identity key (§7).
// Every bundle must belong to a member of req.Chain and carry that member's
// identity key; the pre-key sealed to must be signed by it. The caller is
// expected to have run Bundle.Verify on each bundle when it received it.
func NewDistribution(id *IdentityPrivateKey, req EpochRequest) (*protocol.Distribution, *EpochSecret, error) {
	if m, ok := req.Chain.Member(req.Creator.User); !ok || !m.Identity.Equal(id.Public()) {
		return nil, nil, fmt.Errorf("new distribution: creator is not a member with this identity")
	}
	if len(req.Bundles) == 0 || len(req.Bundles) > protocol.MaxRecipients {
		return nil, nil, fmt.Errorf("new distribution: %d devices, want 1 to %d", len(req.Bundles), protocol.MaxRecipients)
	}
	secret := NewEpochSecret()
	d := &protocol.Distribution{
		Conversation: req.Chain.Conversation,
		Epoch:        req.Epoch,
		ChainSeq:     req.Chain.Seq,
		ChainHead:    req.Chain.Head,
		Creator:      req.Creator,
		Time:         req.Time,
		Recipients:   make([]protocol.Recipient, 0, len(req.Bundles)),
	}
	var err error
	if d.Commitment, err = Commitment(secret, d.Conversation, d.Epoch); err != nil {
		return nil, nil, err
	}
	now := req.Time / 1000
	for _, b := range req.Bundles {
		m, ok := req.Chain.Member(b.User)
		if !ok {
			return nil, nil, fmt.Errorf("new distribution: %s is not a member", b.User)
		}
		if !m.Identity.Equal(b.Identity) {
			return nil, nil, fmt.Errorf("new distribution: bundle of %s is signed by another identity than the membership names: %w", b.User, protocol.ErrBadSignature)
		}
		// A dormant device (§5.3) is left out: no key of it is sealed to.
		target := b.Target(now)
		if target == nil {
			if b.User == req.Creator.User && b.Device == req.Creator.Device {
				return nil, nil, fmt.Errorf("new distribution: the creator's own device is dormant; it must upload a new bundle first")
			}
			continue
		}
		// The caller verified the bundle; the key sealed to is checked again
		// here because sealing to an unsigned key would be unrecoverable.
		if err := target.Verify(b.Identity, b.User, b.Device); err != nil {
			return nil, nil, fmt.Errorf("new distribution: %w", err)
		}
		to := protocol.DeviceRef{User: b.User, Device: b.Device}
		info := protocol.EpochKeyInfo(d.Conversation, d.Epoch, d.ChainHead, d.Creator, to, target.ID)
		enc, ct, err := seal(target.Public, info, secret[:])
		if err != nil {
			return nil, nil, fmt.Errorf("new distribution: seal to %s/%s: %w", b.User, b.Device, err)
		}
		d.Recipients = append(d.Recipients, protocol.Recipient{})
		e := &d.Recipients[len(d.Recipients)-1]
		e.DeviceRef, e.PreKeyID = to, target.ID
		copy(e.Enc[:], enc)
		copy(e.Ciphertext[:], ct)
	}
	d.SortRecipients()
	for i := 1; i < len(d.Recipients); i++ {
		if d.Recipients[i-1].DeviceRef == d.Recipients[i].DeviceRef {
			return nil, nil, fmt.Errorf("new distribution: device %s twice", d.Recipients[i].Device)
		}
	}
	d.Signature = id.Sign(d.SignedData())
	if err := d.Verify(req.Chain); err != nil {
		return nil, nil, fmt.Errorf("new distribution: %w", err)
	}
	return d, secret, nil
}

// OpenRequest describes a distribution a device received.
type OpenRequest struct {
	Distribution *protocol.Distribution
	Chain        *protocol.Chain      // verified membership at the distribution's chain head
	Devices      []protocol.DeviceRef // the member devices it must cover, from verified bundles
	Self         protocol.DeviceRef
	// PreKey returns the private half of this device's pre-key with that id.
	PreKey func(id uint32) (*KEMPrivateKey, error)
}

// OpenDistribution verifies a distribution (signature, membership, exact
// recipient set) and opens this device's entry. Devices may be nil when the
// caller cannot know the devices (then only membership is checked); clients
// pass the set they verified.
func OpenDistribution(req OpenRequest) (*EpochSecret, error) {
	d := req.Distribution
	if err := d.Verify(req.Chain); err != nil {
		return nil, err
	}
	if req.Devices != nil {
		if _, _, err := d.CheckDevices(req.Devices); err != nil {
			return nil, fmt.Errorf("open distribution: %w", err)
		}
	}
	e := d.Entry(req.Self)
	if e == nil {
		return nil, ErrNotRecipient
	}
	priv, err := req.PreKey(e.PreKeyID)
	if err != nil || priv == nil {
		return nil, fmt.Errorf("%w: pre-key %d: %v", ErrNoPreKey, e.PreKeyID, err)
	}
	info := protocol.EpochKeyInfo(d.Conversation, d.Epoch, d.ChainHead, d.Creator, req.Self, e.PreKeyID)
	pt, err := priv.open(info, e.Enc[:], e.Ciphertext[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnseal, err)
	}
	if len(pt) != protocol.EpochSecretSize {
		return nil, ErrUnseal
	}
	var s EpochSecret
	copy(s[:], pt)
	c, err := Commitment(&s, d.Conversation, d.Epoch)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(c[:], d.Commitment[:]) != 1 {
		return nil, ErrCommitment
	}
	return &s, nil
}

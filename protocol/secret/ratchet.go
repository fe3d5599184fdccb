package secret

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"sandi.dev/protocol"
	"sandi.dev/protocol/internal/wire"
)

// Ratchet limits of §8.
const (
	// MaxSkip bounds both how far ahead of the next expected counter a
	// message may be and how many skipped message keys one sender chain
	// keeps. A larger jump fails at once, deriving nothing.
	MaxSkip = 2000
	// MaxCounter is the last usable counter of a chain.
	MaxCounter = 1<<32 - 2
	// SkippedKeyMaxAge is how long a receiver keeps a skipped message key,
	// in seconds from when it stored it (§8.6).
	SkippedKeyMaxAge = 7 * 24 * 3600
	// SupersededEpochMaxAge is how long a device keeps an epoch's state
	// after it first held a later epoch of the conversation (or left it),
	// in seconds (§8.6).
	SupersededEpochMaxAge = 7 * 24 * 3600

	chainKeySize   = 32
	messageKeySize = chacha20poly1305.KeySize + chacha20poly1305.NonceSize
)

// Decryption failures, classified (§8.4).
var (
	ErrDuplicate     = errors.New("message counter already used (duplicate or replay)")
	ErrTooFarAhead   = errors.New("message counter too far ahead")
	ErrUnknownSender = errors.New("sender device is not a member device of this epoch")
	ErrWrongEpoch    = errors.New("message belongs to another conversation or epoch")
	ErrDecrypt       = errors.New("message does not decrypt")
	ErrExhausted     = errors.New("sender chain exhausted; a new epoch is needed")
	ErrTooLong       = errors.New("plaintext too long")
	ErrExpired       = errors.New("message key expired on this device (or a replay of an older message)")
)

type messageKey [messageKeySize]byte

// chain is the receiving (or, for this device, sending) ratchet of one sender
// device in one epoch.
type chain struct {
	next    uint32
	key     [chainKeySize]byte
	skipped map[uint32]messageKey
	// skippedAt holds when each skipped key was stored (Unix seconds); a
	// key without a time (0) gets one at the next ExpireSkipped.
	skippedAt map[uint32]int64
	// expired is one more than the highest counter whose skipped key
	// expired (0: none): a missing key below it is ErrExpired, not
	// ErrDuplicate (§8.3).
	expired uint32
}

// setSkipped stores the skipped key of counter i, stored at Unix time at.
func (c *chain) setSkipped(i uint32, k messageKey, at int64) {
	if c.skipped == nil {
		c.skipped = make(map[uint32]messageKey)
	}
	c.skipped[i] = k
	if at != 0 {
		if c.skippedAt == nil {
			c.skippedAt = make(map[uint32]int64)
		}
		c.skippedAt[i] = at
	}
}

// dropSkipped erases the skipped key of counter i.
func (c *chain) dropSkipped(i uint32) {
	if k, ok := c.skipped[i]; ok {
		clear(k[:])
	}
	delete(c.skipped, i)
	delete(c.skippedAt, i)
}

func senderChainInfo(conv protocol.ConversationID, epoch uint64, sender protocol.DeviceRef) string {
	w := wire.NewBuilder(96)
	w.Fixed([]byte(protocol.LabelSenderChain))
	w.U8(protocol.Version)
	w.Fixed(conv[:])
	w.U64(epoch)
	w.Fixed(sender.User[:])
	w.Fixed(sender.Device[:])
	return string(w.Bytes())
}

// ChainKey derives chain key 0 of sender in an epoch (§8.1).
func ChainKey(s *EpochSecret, conv protocol.ConversationID, epoch uint64, sender protocol.DeviceRef) ([chainKeySize]byte, error) {
	var ck [chainKeySize]byte
	k, err := hkdf.Key(sha256.New, s[:], nil, senderChainInfo(conv, epoch, sender), chainKeySize)
	if err != nil {
		return ck, fmt.Errorf("chain key: %w", err)
	}
	copy(ck[:], k)
	return ck, nil
}

// step derives message key i from chain key i and chain key i+1 (§8.2):
// mk = HKDF-Expand(ck, LabelMessageKey || i, 44), ck' = HKDF-Expand(ck, LabelChainStep, 32).
func step(ck *[chainKeySize]byte, i uint32) (mk messageKey, next [chainKeySize]byte, err error) {
	w := wire.NewBuilder(len(protocol.LabelMessageKey) + 4)
	w.Fixed([]byte(protocol.LabelMessageKey))
	w.U32(i)
	m, err := hkdf.Expand(sha256.New, ck[:], string(w.Bytes()), messageKeySize)
	if err != nil {
		return mk, next, fmt.Errorf("message key: %w", err)
	}
	n, err := hkdf.Expand(sha256.New, ck[:], protocol.LabelChainStep, chainKeySize)
	if err != nil {
		return mk, next, fmt.Errorf("chain step: %w", err)
	}
	copy(mk[:], m)
	copy(next[:], n)
	return mk, next, nil
}

// MessageKeys returns message keys 0..n-1 of a chain starting at ck; it is
// used by test vectors.
func MessageKeys(ck [chainKeySize]byte, n int) ([][messageKeySize]byte, error) {
	out := make([][messageKeySize]byte, n)
	for i := range n {
		mk, next, err := step(&ck, uint32(i))
		if err != nil {
			return nil, err
		}
		out[i], ck = mk, next
	}
	return out, nil
}

// Epoch is this device's ratchet state for one epoch of one conversation:
// one chain per member device, derived when the epoch is opened, after which
// the epoch secret itself is not kept (§8.1). Its own chain is the sending
// chain. An Epoch is not safe for concurrent use.
type Epoch struct {
	Conversation protocol.ConversationID
	Number       uint64
	Self         protocol.DeviceRef
	chains       map[protocol.DeviceRef]*chain
}

// NewEpoch derives the chains of every device in devices (the distribution's
// recipients) from the epoch secret. The caller should drop the secret.
func NewEpoch(s *EpochSecret, conv protocol.ConversationID, epoch uint64, self protocol.DeviceRef, devices []protocol.DeviceRef) (*Epoch, error) {
	e := &Epoch{Conversation: conv, Number: epoch, Self: self, chains: make(map[protocol.DeviceRef]*chain, len(devices))}
	for _, d := range devices {
		ck, err := ChainKey(s, conv, epoch, d)
		if err != nil {
			return nil, err
		}
		e.chains[d] = &chain{key: ck}
	}
	if e.chains[self] == nil {
		return nil, ErrNotRecipient
	}
	return e, nil
}

// Devices returns the devices that have a sender chain in the epoch (the
// recipients of its distribution), in canonical order (§7.1).
func (e *Epoch) Devices() []protocol.DeviceRef { return sortedRefs(e.chains) }

// Sent returns how many messages this device has sent in the epoch.
func (e *Epoch) Sent() uint32 { return e.chains[e.Self].next }

// Encrypt pads, encrypts and signs plaintext as the next message of this
// device's chain (§9).
func (e *Epoch) Encrypt(id *IdentityPrivateKey, plaintext []byte) (*protocol.Envelope, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLong, len(plaintext), MaxPlaintext)
	}
	c := e.chains[e.Self]
	if c.next > MaxCounter {
		return nil, ErrExhausted
	}
	mk, next, err := step(&c.key, c.next)
	if err != nil {
		return nil, err
	}
	env := &protocol.Envelope{Header: protocol.Header{
		Conversation: e.Conversation, Epoch: e.Number, Sender: e.Self, Counter: c.next,
	}}
	env.Ciphertext, err = aeadSeal(&mk, Pad(plaintext), env.Header.AssociatedData())
	if err != nil {
		return nil, err
	}
	env.Signature = id.Sign(env.SignedData())
	c.key, c.next = next, c.next+1
	clear(mk[:])
	return env, nil
}

func aeadSeal(mk *messageKey, pt, ad []byte) ([]byte, error) {
	a, err := chacha20poly1305.New(mk[:chacha20poly1305.KeySize])
	if err != nil {
		return nil, fmt.Errorf("aead: %w", err)
	}
	return a.Seal(nil, mk[chacha20poly1305.KeySize:], pt, ad), nil
}

func aeadOpen(mk *messageKey, ct, ad []byte) ([]byte, error) {
	a, err := chacha20poly1305.New(mk[:chacha20poly1305.KeySize])
	if err != nil {
		return nil, fmt.Errorf("aead: %w", err)
	}
	pt, err := a.Open(nil, mk[chacha20poly1305.KeySize:], ct, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Decrypt is DecryptAt without a time: the skipped keys it stores get their
// time at the next ExpireSkipped.
func (e *Epoch) Decrypt(env *protocol.Envelope, sender protocol.IdentityKey) ([]byte, error) {
	return e.DecryptAt(env, sender, 0)
}

// DecryptAt verifies env's signature with the sender's identity key (from
// the verified membership chain), then decrypts it and advances the sender's
// chain; skipped keys it stores are stamped with now (Unix seconds, §8.3).
// State changes only when the message decrypts. A counter already used gives
// ErrDuplicate, or ErrExpired below the chain's expiry mark; one more than
// MaxSkip ahead gives ErrTooFarAhead.
func (e *Epoch) DecryptAt(env *protocol.Envelope, sender protocol.IdentityKey, now int64) ([]byte, error) {
	if env.Conversation != e.Conversation || env.Epoch != e.Number {
		return nil, ErrWrongEpoch
	}
	c := e.chains[env.Sender]
	if c == nil {
		return nil, ErrUnknownSender
	}
	if err := env.Verify(sender); err != nil {
		return nil, err
	}
	ad := env.Header.AssociatedData()
	n := env.Counter
	if n < c.next {
		mk, ok := c.skipped[n]
		if !ok {
			if n < c.expired {
				return nil, ErrExpired
			}
			return nil, ErrDuplicate
		}
		pt, err := open(&mk, env.Ciphertext, ad)
		if err != nil {
			return nil, err
		}
		c.dropSkipped(n)
		return pt, nil
	}
	if n > MaxCounter {
		return nil, fmt.Errorf("%w: counter %d past the last usable one", ErrTooFarAhead, n)
	}
	gap := int(n - c.next)
	if gap > MaxSkip || len(c.skipped)+gap > MaxSkip {
		return nil, fmt.Errorf("%w: counter %d, expected %d", ErrTooFarAhead, n, c.next)
	}
	ck := c.key
	skipped := make(map[uint32]messageKey, gap)
	for i := c.next; i < n; i++ {
		mk, next, err := step(&ck, i)
		if err != nil {
			return nil, err
		}
		skipped[i], ck = mk, next
	}
	mk, next, err := step(&ck, n)
	if err != nil {
		return nil, err
	}
	pt, err := open(&mk, env.Ciphertext, ad)
	if err != nil {
		return nil, err
	}
	for i, k := range skipped {
		c.setSkipped(i, k, now)
	}
	c.key, c.next = next, n+1
	return pt, nil
}

// ExpireSkipped applies the lifetime of skipped message keys (§8.3) at Unix
// time now: a key stored more than maxAge seconds ago is erased (a message
// that arrives for it later is ErrExpired), and a key without a time gets
// now. It reports whether the state changed (the caller stores it again).
func (e *Epoch) ExpireSkipped(now, maxAge int64) bool {
	changed := false
	for _, c := range e.chains {
		for i := range c.skipped {
			at := c.skippedAt[i]
			switch {
			case at == 0:
				if c.skippedAt == nil {
					c.skippedAt = make(map[uint32]int64)
				}
				c.skippedAt[i] = now
			case now-at > maxAge:
				c.dropSkipped(i)
				c.expired = max(c.expired, i+1)
			default:
				continue
			}
			changed = true
		}
	}
	return changed
}

// Skipped returns how many skipped message keys the epoch keeps.
func (e *Epoch) Skipped() int {
	n := 0
	for _, c := range e.chains {
		n += len(c.skipped)
	}
	return n
}

func open(mk *messageKey, ct, ad []byte) ([]byte, error) {
	padded, err := aeadOpen(mk, ct, ad)
	clear(mk[:])
	if err != nil {
		return nil, err
	}
	pt, err := Unpad(padded)
	if err != nil {
		return nil, err
	}
	if len(pt) > MaxPlaintext {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLong, len(pt), MaxPlaintext)
	}
	return pt, nil
}

// equal compares the secret state of two epochs in constant time per
// key; it is used by tests of Marshal/Unmarshal.
func (e *Epoch) equal(o *Epoch) bool {
	if e.Conversation != o.Conversation || e.Number != o.Number || e.Self != o.Self || len(e.chains) != len(o.chains) {
		return false
	}
	for d, c := range e.chains {
		oc := o.chains[d]
		if oc == nil || c.next != oc.next || c.expired != oc.expired || subtle.ConstantTimeCompare(c.key[:], oc.key[:]) != 1 || len(c.skipped) != len(oc.skipped) {
			return false
		}
		for i, k := range c.skipped {
			ok, found := oc.skipped[i]
			if !found || c.skippedAt[i] != oc.skippedAt[i] || subtle.ConstantTimeCompare(k[:], ok[:]) != 1 {
				return false
			}
		}
	}
	return true
}

package secret

// Adversarial tests of the private-key side: the HPKE info binds every
// wrapped epoch key to its conversation, epoch, chain head, creator,
// recipient device and pre-key; the ratchet bounds skipped keys without
// doing work for a far-ahead message, detects replays, erases used keys,
// and keeps pending keys across MarshalBinary/UnmarshalEpoch. The helpers
// newParty, genesis, distribute, refs and openEpoch are in secret_test.go.

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"testing"

	"sandi.dev/protocol"
)

// cloneDistribution copies d deeply enough to alter it.
func cloneDistribution(d *protocol.Distribution) *protocol.Distribution {
	c := *d
	c.Recipients = append([]protocol.Recipient(nil), d.Recipients...)
	return &c
}

// bindingFixture: alice (admin) and bob, bob with two devices, and a
// distribution of epoch 1 to all three devices.
type bindingFixture struct {
	alice, bob, bob2 *party
	chain            *protocol.Chain
	d                *protocol.Distribution
	secret           *EpochSecret
}

func newBindingFixture(t *testing.T) *bindingFixture {
	f := &bindingFixture{alice: newParty(t, nil, protocol.UserID{}), bob: newParty(t, nil, protocol.UserID{})}
	f.bob2 = newParty(t, f.bob.id, f.bob.ref.User)
	_, f.chain = genesis(t, f.alice, f.bob)
	f.d, f.secret = distribute(t, f.alice, f.chain, 1, f.alice, f.bob, f.bob2)
	return f
}

func (f *bindingFixture) devices() []protocol.DeviceRef { return refs(f.alice, f.bob, f.bob2) }

// openAs opens d as p against chain, after checking that d verifies: the
// alteration under test must get through every check but the HPKE open.
func openAs(t *testing.T, p *party, d *protocol.Distribution, chain *protocol.Chain, devices []protocol.DeviceRef) (*EpochSecret, error) {
	t.Helper()
	if err := d.Verify(chain); err != nil {
		t.Fatalf("the altered distribution does not verify, so it does not test the HPKE binding: %v", err)
	}
	if _, _, err := d.CheckDevices(devices); err != nil {
		t.Fatalf("recipient set: %v", err)
	}
	return OpenDistribution(OpenRequest{Distribution: d, Chain: chain, Devices: devices, Self: p.ref, PreKey: p.preKey})
}

func wantUnseal(t *testing.T, what string, s *EpochSecret, err error) {
	t.Helper()
	if !errors.Is(err, ErrUnseal) || s != nil {
		t.Errorf("%s: got %v, want ErrUnseal", what, err)
	}
}

// TestWrappedKeyBinding alters one field of a genuine distribution at a
// time, re-signs it with the creator's key (so signature, membership and
// recipient checks pass) and checks that the wrapped key no longer opens.
func TestWrappedKeyBinding(t *testing.T) {
	f := newBindingFixture(t)
	for _, p := range []*party{f.alice, f.bob, f.bob2} {
		s, err := openAs(t, p, f.d, f.chain, f.devices())
		if err != nil || !s.Equal(f.secret) {
			t.Fatalf("control: %v", err)
		}
	}

	t.Run("another epoch", func(t *testing.T) {
		d := cloneDistribution(f.d)
		d.Epoch++
		d.Signature = f.alice.id.Sign(d.SignedData())
		s, err := openAs(t, f.bob, d, f.chain, f.devices())
		wantUnseal(t, "epoch+1", s, err)
	})

	t.Run("another chain head", func(t *testing.T) {
		// Two chains of the same conversation that differ only in record
		// 1 (same change, another time): same seq, other head.
		carol := newParty(t, nil, protocol.UserID{})
		mk := func(ms int64) *protocol.Chain {
			rec := &protocol.Record{Op: protocol.OpAdd, Conversation: f.chain.Conversation, Seq: 1, Prev: f.chain.Head, Time: ms, Author: f.alice.ref.User,
				Members: []protocol.Member{member(carol, protocol.RoleMember)}}
			SignRecord(f.alice.id, rec)
			c, err := f.chain.Apply(rec)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		cA, cB := mk(1), mk(2)
		dA, _ := distribute(t, f.alice, cA, 1, f.alice, f.bob, f.bob2)
		if s, err := openAs(t, f.bob, dA, cA, f.devices()); err != nil || s == nil {
			t.Fatalf("control: %v", err)
		}
		d := cloneDistribution(dA)
		d.ChainHead = cB.Head
		d.Signature = f.alice.id.Sign(d.SignedData())
		s, err := openAs(t, f.bob, d, cB, f.devices())
		wantUnseal(t, "other head", s, err)
	})

	t.Run("another conversation", func(t *testing.T) {
		// The same members in a second conversation. The chain head
		// hashes the conversation id, so both change here; the info-level
		// test below alters the conversation alone.
		_, c2 := genesis(t, f.alice, f.bob)
		d := cloneDistribution(f.d)
		d.Conversation, d.ChainSeq, d.ChainHead = c2.Conversation, c2.Seq, c2.Head
		d.Signature = f.alice.id.Sign(d.SignedData())
		s, err := openAs(t, f.bob, d, c2, f.devices())
		wantUnseal(t, "other conversation", s, err)
	})

	t.Run("another recipient device", func(t *testing.T) {
		// bob's entry copied to bob2's place; bob2 is given bob's pre-key
		// private halves, so only the recipient device in the info differs.
		thief := &party{id: f.bob2.id, ref: f.bob2.ref, prekeys: maps.Clone(f.bob.prekeys)}
		d := cloneDistribution(f.d)
		from, to := d.Entry(f.bob.ref), d.Entry(f.bob2.ref)
		to.PreKeyID, to.Enc, to.Ciphertext = from.PreKeyID, from.Enc, from.Ciphertext
		d.Signature = f.alice.id.Sign(d.SignedData())
		s, err := openAs(t, thief, d, f.chain, f.devices())
		wantUnseal(t, "bob's key opened as bob2", s, err)
		// Control: bob's own entry is untouched and still opens.
		if s, err := openAs(t, f.bob, d, f.chain, f.devices()); err != nil || !s.Equal(f.secret) {
			t.Fatalf("control: %v", err)
		}
	})

	t.Run("another pre-key id", func(t *testing.T) {
		d := cloneDistribution(f.d)
		e := d.Entry(f.bob.ref)
		bob := &party{id: f.bob.id, ref: f.bob.ref, prekeys: maps.Clone(f.bob.prekeys)}
		bob.prekeys[0xbeef] = bob.prekeys[e.PreKeyID] // same private half, other id
		e.PreKeyID = 0xbeef
		d.Signature = f.alice.id.Sign(d.SignedData())
		s, err := openAs(t, bob, d, f.chain, f.devices())
		wantUnseal(t, "other pre-key id", s, err)
	})

	t.Run("another creator", func(t *testing.T) {
		// bob claims to have made alice's distribution, and signs it.
		d := cloneDistribution(f.d)
		d.Creator = f.bob.ref
		d.Signature = f.bob.id.Sign(d.SignedData())
		s, err := openAs(t, f.bob2, d, f.chain, f.devices())
		wantUnseal(t, "other creator", s, err)
	})
}

// TestEpochKeyInfoFields opens one sealed epoch key with an info that
// differs from the sealing one in exactly one field, for every field of
// EpochKeyInfo.
func TestEpochKeyInfoFields(t *testing.T) {
	f := newBindingFixture(t)
	d := f.d
	e := d.Entry(f.bob.ref)
	priv := f.bob.prekeys[e.PreKeyID]
	open := func(conv protocol.ConversationID, epoch uint64, head [protocol.HashSize]byte, creator, to protocol.DeviceRef, id uint32) error {
		pt, err := priv.open(protocol.EpochKeyInfo(conv, epoch, head, creator, to, id), e.Enc[:], e.Ciphertext[:])
		if err == nil && !bytes.Equal(pt, f.secret[:]) {
			t.Fatal("opened to another secret")
		}
		return err
	}
	if err := open(d.Conversation, d.Epoch, d.ChainHead, d.Creator, f.bob.ref, e.PreKeyID); err != nil {
		t.Fatalf("control: %v", err)
	}
	otherConv := d.Conversation
	otherConv[0] ^= 1
	otherHead := d.ChainHead
	otherHead[31] ^= 1
	otherUser := f.bob.ref
	otherUser.User[15] ^= 1
	for name, err := range map[string]error{
		"conversation":     open(otherConv, d.Epoch, d.ChainHead, d.Creator, f.bob.ref, e.PreKeyID),
		"epoch":            open(d.Conversation, d.Epoch+1, d.ChainHead, d.Creator, f.bob.ref, e.PreKeyID),
		"chain head":       open(d.Conversation, d.Epoch, otherHead, d.Creator, f.bob.ref, e.PreKeyID),
		"creator device":   open(d.Conversation, d.Epoch, d.ChainHead, f.bob.ref, f.bob.ref, e.PreKeyID),
		"recipient device": open(d.Conversation, d.Epoch, d.ChainHead, d.Creator, f.bob2.ref, e.PreKeyID),
		"recipient user":   open(d.Conversation, d.Epoch, d.ChainHead, d.Creator, otherUser, e.PreKeyID),
		"pre-key id":       open(d.Conversation, d.Epoch, d.ChainHead, d.Creator, f.bob.ref, e.PreKeyID+1),
	} {
		if err == nil {
			t.Errorf("epoch key opens with another %s in the info", name)
		}
	}
}

// ---- the ratchet ----

// senderAndReceiver opens one epoch for alice and bob.
func senderAndReceiver(t *testing.T) (alice, bob *party, ea, eb *Epoch) {
	alice, bob = newParty(t, nil, protocol.UserID{}), newParty(t, nil, protocol.UserID{})
	_, chain := genesis(t, alice, bob)
	d, _ := distribute(t, alice, chain, 1, alice, bob)
	return alice, bob, openEpoch(t, alice, d, chain, refs(alice, bob)), openEpoch(t, bob, d, chain, refs(alice, bob))
}

func encrypt(t *testing.T, e *Epoch, id *IdentityPrivateKey, msg string) *protocol.Envelope {
	t.Helper()
	env, err := e.Encrypt(id, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func cloneEpoch(t *testing.T, e *Epoch) *Epoch {
	t.Helper()
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c, err := UnmarshalEpoch(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustDecrypt(t *testing.T, e *Epoch, env *protocol.Envelope, from protocol.IdentityKey, want string) {
	t.Helper()
	pt, err := e.Decrypt(env, from)
	if err != nil || string(pt) != want {
		t.Fatalf("counter %d: got %q, %v; want %q", env.Counter, pt, err, want)
	}
}

// TestSkipBound: a message exactly MaxSkip ahead of the next expected
// counter decrypts; MaxSkip+1 ahead fails with ErrTooFarAhead, at once,
// without deriving the skipped keys (measured by allocations) and without
// changing the receiver's state. The store of skipped keys is bounded by
// MaxSkip as well. All messages are made honestly by the sender's ratchet.
func TestSkipBound(t *testing.T) {
	alice, _, ea, eb := senderAndReceiver(t)
	pub := alice.id.Public()
	first := encrypt(t, ea, alice.id, "message 0")
	for i := 1; i < MaxSkip; i++ {
		encrypt(t, ea, alice.id, "lost") // encrypted and never delivered
	}
	near := encrypt(t, ea, alice.id, "near")  // counter MaxSkip
	far := encrypt(t, ea, alice.id, "far")    // counter MaxSkip+1
	far2 := encrypt(t, ea, alice.id, "far 2") // counter MaxSkip+2
	if near.Counter != MaxSkip || far.Counter != MaxSkip+1 {
		t.Fatalf("counters %d, %d", near.Counter, far.Counter)
	}

	// MaxSkip+1 ahead of a fresh receiver.
	before, _ := eb.MarshalBinary()
	if _, err := eb.Decrypt(far, pub); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("MaxSkip+1 ahead: %v, want ErrTooFarAhead", err)
	}
	farAllocs := testing.AllocsPerRun(20, func() {
		if _, err := eb.Decrypt(far, pub); !errors.Is(err, ErrTooFarAhead) {
			t.Fatalf("MaxSkip+1 ahead: %v", err)
		}
	})
	if after, _ := eb.MarshalBinary(); !bytes.Equal(before, after) {
		t.Fatal("a refused message changed the receiver's state")
	}

	// Exactly MaxSkip ahead, on fresh copies of the receiver: it decrypts,
	// and costs allocations per skipped key, which shows that the
	// measurement above would have seen key derivation.
	copies := []*Epoch{cloneEpoch(t, eb), cloneEpoch(t, eb)}
	nearAllocs := testing.AllocsPerRun(1, func() {
		e := copies[0]
		copies = copies[1:]
		if _, err := e.Decrypt(near, pub); err != nil {
			t.Fatalf("exactly MaxSkip ahead: %v", err)
		}
	})
	t.Logf("allocations: %.0f for a refused far message, %.0f for one %d ahead", farAllocs, nearAllocs, MaxSkip)
	if farAllocs >= 50 {
		t.Errorf("refusing a far message made %.0f allocations: it does per-key work", farAllocs)
	}
	if nearAllocs < MaxSkip {
		t.Errorf("decrypting %d ahead made only %.0f allocations; the allocation measure does not see key derivation", MaxSkip, nearAllocs)
	}

	mustDecrypt(t, eb, near, pub, "near")
	if n := len(eb.chains[alice.ref].skipped); n != MaxSkip {
		t.Fatalf("%d skipped keys kept, want %d", n, MaxSkip)
	}
	// The store is full: even one more skipped key is refused...
	if _, err := eb.Decrypt(far2, pub); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("skip with a full store: %v, want ErrTooFarAhead", err)
	}
	// ...until a skipped key is used.
	mustDecrypt(t, eb, first, pub, "message 0")
	mustDecrypt(t, eb, far2, pub, "far 2")
	mustDecrypt(t, eb, far, pub, "far")
	if n := len(eb.chains[alice.ref].skipped); n != MaxSkip-1 {
		t.Fatalf("%d skipped keys kept, want %d", n, MaxSkip-1)
	}
}

// TestCounterPastLast: a counter past MaxCounter is refused before any key
// is derived, even when the receiver is near the end of the chain (its
// next counter would otherwise wrap to 0).
func TestCounterPastLast(t *testing.T) {
	alice, _, _, eb := senderAndReceiver(t)
	c := eb.chains[alice.ref]
	c.next = MaxCounter - 3 // as if the chain had been used almost to its end
	env := &protocol.Envelope{Header: protocol.Header{Conversation: eb.Conversation, Epoch: eb.Number, Sender: alice.ref, Counter: MaxCounter + 1},
		Ciphertext: make([]byte, MinPadded+16)}
	env.Signature = alice.id.Sign(env.SignedData())
	before, _ := eb.MarshalBinary()
	if _, err := eb.Decrypt(env, alice.id.Public()); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("counter %d: %v, want ErrTooFarAhead", env.Counter, err)
	}
	if after, _ := eb.MarshalBinary(); !bytes.Equal(before, after) {
		t.Fatal("state changed")
	}
	// Control: the same forged message at the last usable counter gets as
	// far as decryption.
	env.Counter = MaxCounter
	env.Signature = alice.id.Sign(env.SignedData())
	if _, err := eb.Decrypt(env, alice.id.Public()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("counter %d: %v, want ErrDecrypt", env.Counter, err)
	}
}

// TestReplayAndErasure: a message delivered twice is ErrDuplicate, whether
// it was in order or out of order; a skipped key is erased once used, from
// memory and from the stored state.
func TestReplayAndErasure(t *testing.T) {
	alice, _, ea, eb := senderAndReceiver(t)
	pub := alice.id.Public()
	var envs []*protocol.Envelope
	for i := range 6 {
		envs = append(envs, encrypt(t, ea, alice.id, fmt.Sprint("m", i)))
	}
	skipped := func() map[uint32]messageKey { return eb.chains[alice.ref].skipped }

	mustDecrypt(t, eb, envs[0], pub, "m0")
	if _, err := eb.Decrypt(envs[0], pub); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("in-order replay: %v", err)
	}
	mustDecrypt(t, eb, envs[5], pub, "m5") // skips 1..4
	if len(skipped()) != 4 {
		t.Fatalf("%d skipped keys, want 4", len(skipped()))
	}
	mustDecrypt(t, eb, envs[3], pub, "m3")
	if _, ok := skipped()[3]; ok {
		t.Fatal("the key of message 3 is kept after use")
	}
	state, _ := eb.MarshalBinary()
	if stored, err := UnmarshalEpoch(state); err != nil {
		t.Fatal(err)
	} else if _, ok := stored.chains[alice.ref].skipped[3]; ok || len(stored.chains[alice.ref].skipped) != 3 {
		t.Fatal("the stored state still holds the used key")
	}
	// Replays, including through the wire encoding.
	for _, i := range []int{3, 5, 0} {
		wire, err := protocol.ParseEnvelope(envs[i].Marshal())
		if err != nil {
			t.Fatal(err)
		}
		for _, env := range []*protocol.Envelope{envs[i], wire} {
			if pt, err := eb.Decrypt(env, pub); !errors.Is(err, ErrDuplicate) || pt != nil {
				t.Fatalf("replay of %d: %q, %v", i, pt, err)
			}
		}
	}
	for _, i := range []int{4, 1, 2} {
		mustDecrypt(t, eb, envs[i], pub, fmt.Sprint("m", i))
		if _, err := eb.Decrypt(envs[i], pub); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("second decrypt of skipped %d: %v", i, err)
		}
	}
	if len(skipped()) != 0 {
		t.Fatalf("%d skipped keys left", len(skipped()))
	}
}

// TestEnvelopeOutOfPlace: an envelope moved to another conversation, epoch,
// sender device or counter, and re-signed by the same account, never
// decrypts.
func TestEnvelopeOutOfPlace(t *testing.T) {
	alice, bob := newParty(t, nil, protocol.UserID{}), newParty(t, nil, protocol.UserID{})
	alice2 := newParty(t, alice.id, alice.ref.User)
	_, chain := genesis(t, alice, bob)
	devs := refs(alice, alice2, bob)
	d1, _ := distribute(t, alice, chain, 1, alice, alice2, bob)
	d2, _ := distribute(t, alice, chain, 2, alice, alice2, bob)
	ea := openEpoch(t, alice, d1, chain, devs)
	eb1, eb2 := openEpoch(t, bob, d1, chain, devs), openEpoch(t, bob, d2, chain, devs)
	env := encrypt(t, ea, alice.id, "only here")
	resign := func(h protocol.Header) *protocol.Envelope {
		e := &protocol.Envelope{Header: h, Ciphertext: env.Ciphertext}
		e.Signature = alice.id.Sign(e.SignedData())
		return e
	}
	h := env.Header
	h.Epoch = 2
	if _, err := eb2.Decrypt(resign(h), alice.id.Public()); !errors.Is(err, ErrDecrypt) {
		t.Errorf("moved to epoch 2: %v, want ErrDecrypt", err)
	}
	if _, err := eb1.Decrypt(resign(h), alice.id.Public()); !errors.Is(err, ErrWrongEpoch) {
		t.Errorf("epoch 2 header in epoch 1: %v, want ErrWrongEpoch", err)
	}
	h = env.Header
	h.Conversation[0] ^= 1
	if _, err := eb1.Decrypt(resign(h), alice.id.Public()); !errors.Is(err, ErrWrongEpoch) {
		t.Errorf("other conversation: %v, want ErrWrongEpoch", err)
	}
	h = env.Header
	h.Sender = alice2.ref // the same account's other device
	if _, err := eb1.Decrypt(resign(h), alice.id.Public()); !errors.Is(err, ErrDecrypt) {
		t.Errorf("other sender device: %v, want ErrDecrypt", err)
	}
	h = env.Header
	h.Counter = 1
	if _, err := eb1.Decrypt(resign(h), alice.id.Public()); !errors.Is(err, ErrDecrypt) {
		t.Errorf("other counter: %v, want ErrDecrypt", err)
	}
	// Control: in place it decrypts (and only once).
	mustDecrypt(t, eb1, env, alice.id.Public(), "only here")
}

// TestEpochStateKeepsPending: MarshalBinary/UnmarshalEpoch keeps skipped keys,
// so out-of-order messages still decrypt after a restart; the restored state
// is independent of the original and re-encodes identically.
func TestEpochStateKeepsPending(t *testing.T) {
	alice, bob, ea, eb := senderAndReceiver(t)
	pub := alice.id.Public()
	var envs []*protocol.Envelope
	for i := range 10 {
		envs = append(envs, encrypt(t, ea, alice.id, fmt.Sprint("m", i)))
	}
	mustDecrypt(t, eb, envs[9], pub, "m9")
	mustDecrypt(t, eb, envs[4], pub, "m4")
	sent := encrypt(t, eb, bob.id, "from bob") // bob's sending chain moves too

	state, err := eb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := UnmarshalEpoch(state)
	if err != nil {
		t.Fatal(err)
	}
	if !restored.equal(eb) {
		t.Fatal("restored state differs")
	}
	if again, _ := restored.MarshalBinary(); !bytes.Equal(again, state) {
		t.Fatal("restored state re-encodes differently")
	}
	if n := len(restored.chains[alice.ref].skipped); n != 8 {
		t.Fatalf("%d pending keys restored, want 8", n)
	}
	for _, i := range []int{8, 0, 3, 1, 2, 7, 5, 6} {
		mustDecrypt(t, restored, envs[i], pub, fmt.Sprint("m", i))
	}
	for _, i := range []int{9, 4, 0} {
		if _, err := restored.Decrypt(envs[i], pub); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("replay of %d after restore: %v", i, err)
		}
	}
	mustDecrypt(t, restored, encrypt(t, ea, alice.id, "m10"), pub, "m10")
	// bob's sending chain continues after the restore: the next counter.
	next := encrypt(t, restored, bob.id, "after restore")
	if next.Counter != sent.Counter+1 {
		t.Fatalf("sending counter %d after restore, want %d", next.Counter, sent.Counter+1)
	}
	mustDecrypt(t, ea, sent, bob.id.Public(), "from bob")
	mustDecrypt(t, ea, next, bob.id.Public(), "after restore")
	// The original is independent of the restored copy.
	mustDecrypt(t, eb, envs[8], pub, "m8")
}

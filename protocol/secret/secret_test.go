package secret

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"sandi.dev/protocol"
)

// party is one device of one account in tests.
type party struct {
	id      *IdentityPrivateKey
	ref     protocol.DeviceRef
	bundle  *protocol.Bundle
	prekeys PreKeyPrivates
}

const testNow = 1_780_000_000 // Unix seconds

func newParty(t testing.TB, id *IdentityPrivateKey, user protocol.UserID) *party {
	t.Helper()
	if id == nil {
		id = NewIdentity()
	}
	if user.IsZero() {
		user = protocol.NewUserID()
	}
	p := &party{id: id, ref: protocol.DeviceRef{User: user, Device: protocol.NewDeviceID()}}
	var err error
	p.bundle, p.prekeys, err = NewBundle(id, user, p.ref.Device, 1, 3, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.bundle.Verify(); err != nil {
		t.Fatal(err)
	}
	return p
}

// claimed returns the bundle with only its first remaining one-time key,
// as the server's claim returns it, and removes that key from the party.
func (p *party) claimed() *protocol.Bundle {
	b := *p.bundle
	if len(p.bundle.OneTime) > 0 {
		b.OneTime = p.bundle.OneTime[:1]
		p.bundle.OneTime = p.bundle.OneTime[1:]
	}
	return &b
}

func (p *party) preKey(id uint32) (*KEMPrivateKey, error) {
	k, ok := p.prekeys[id]
	if !ok {
		return nil, fmt.Errorf("no pre-key %d", id)
	}
	return k, nil
}

func member(p *party, role protocol.Role) protocol.Member {
	return protocol.Member{User: p.ref.User, Identity: p.id.Public(), Role: role}
}

func genesis(t testing.TB, creator *party, others ...*party) (*protocol.Record, *protocol.Chain) {
	t.Helper()
	rec := &protocol.Record{Op: protocol.OpCreate, Conversation: protocol.NewConversationID(), Time: testNow * 1000, Author: creator.ref.User}
	rec.Members = append(rec.Members, member(creator, protocol.RoleAdmin))
	for _, o := range others {
		rec.Members = append(rec.Members, member(o, protocol.RoleMember))
	}
	SignRecord(creator.id, rec)
	c, err := protocol.Genesis(rec)
	if err != nil {
		t.Fatal(err)
	}
	return rec, c
}

func distribute(t testing.TB, creator *party, c *protocol.Chain, epoch uint64, devices ...*party) (*protocol.Distribution, *EpochSecret) {
	t.Helper()
	req := EpochRequest{Chain: c, Epoch: epoch, Creator: creator.ref, Time: testNow * 1000}
	for _, d := range devices {
		req.Bundles = append(req.Bundles, d.claimed())
	}
	d, s, err := NewDistribution(creator.id, req)
	if err != nil {
		t.Fatal(err)
	}
	return d, s
}

func refs(ps ...*party) []protocol.DeviceRef {
	var out []protocol.DeviceRef
	for _, p := range ps {
		out = append(out, p.ref)
	}
	return out
}

func openEpoch(t testing.TB, p *party, d *protocol.Distribution, c *protocol.Chain, devices []protocol.DeviceRef) *Epoch {
	t.Helper()
	s, err := OpenDistribution(OpenRequest{Distribution: d, Chain: c, Devices: devices, Self: p.ref, PreKey: p.preKey})
	if err != nil {
		t.Fatalf("%s opens: %v", p.ref.Device, err)
	}
	e, err := NewEpoch(s, d.Conversation, d.Epoch, p.ref, d.Devices())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestConversationRoundTrip(t *testing.T) {
	alice, bob := newParty(t, nil, protocol.UserID{}), newParty(t, nil, protocol.UserID{})
	bob2 := newParty(t, bob.id, bob.ref.User) // bob's second device shares his identity
	_, chain := genesis(t, alice, bob)
	devs := refs(alice, bob, bob2)
	d, secret := distribute(t, alice, chain, 1, alice, bob, bob2)

	// Round trip through the encoding, as the server relays it.
	d2, err := protocol.ParseDistribution(d.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	ea, eb, eb2 := openEpoch(t, alice, d2, chain, devs), openEpoch(t, bob, d2, chain, devs), openEpoch(t, bob2, d2, chain, devs)
	_ = secret

	for i, msg := range []string{"hi bob", "", "a longer message, to cross a padding boundary......................"} {
		env, err := ea.Encrypt(alice.id, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		wire, err := protocol.ParseEnvelope(env.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []*Epoch{eb, eb2} {
			pt, err := e.Decrypt(wire, alice.id.Public())
			if err != nil || string(pt) != msg {
				t.Fatalf("message %d: got %q, %v", i, pt, err)
			}
		}
		if _, err := eb.Decrypt(wire, alice.id.Public()); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("replay: got %v, want ErrDuplicate", err)
		}
	}
	// Bob answers; Alice reads it; bob2 reads his own account's other device.
	env, err := eb.Encrypt(bob.id, []byte("hello alice"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Epoch{ea, eb2} {
		if pt, err := e.Decrypt(env, bob.id.Public()); err != nil || string(pt) != "hello alice" {
			t.Fatalf("got %q, %v", pt, err)
		}
	}
	// A forged sender: alice signs a message claiming bob's device.
	forged := *env
	forged.Signature = alice.id.Sign(forged.SignedData())
	if _, err := ea.Decrypt(&forged, bob.id.Public()); !errors.Is(err, protocol.ErrBadSignature) {
		t.Fatalf("forged: %v", err)
	}
}

func TestOutOfOrderAndSkipBound(t *testing.T) {
	alice, bob := newParty(t, nil, protocol.UserID{}), newParty(t, nil, protocol.UserID{})
	_, chain := genesis(t, alice, bob)
	d, _ := distribute(t, alice, chain, 1, alice, bob)
	ea, eb := openEpoch(t, alice, d, chain, nil), openEpoch(t, bob, d, chain, nil)
	var envs []*protocol.Envelope
	for i := range 5 {
		env, err := ea.Encrypt(alice.id, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	for _, i := range []int{3, 0, 4, 1, 2} {
		pt, err := eb.Decrypt(envs[i], alice.id.Public())
		if err != nil || !bytes.Equal(pt, []byte{byte(i)}) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i := range envs {
		if _, err := eb.Decrypt(envs[i], alice.id.Public()); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("replay %d: %v", i, err)
		}
	}
	// Exactly MaxSkip ahead is accepted; one more is refused.
	ea.chains[ea.Self].next = 5 + MaxSkip + 1
	// Rebuild alice's chain key at that counter by stepping a copy of bob's view.
	far, err := ea.Encrypt(alice.id, []byte("far"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eb.Decrypt(far, alice.id.Public()); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("far: %v", err)
	}
}

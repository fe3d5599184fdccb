package protocol_test

// FuzzOpenDistribution: distribution verification (Distribution.Verify,
// CheckDevices, §7) and opening (secret.OpenDistribution) by a device with
// fixed pre-keys, over distributions decoded from the fuzz input. The input
// is a control byte and a distribution in the compact form of expand, whose
// references name the X-Wing ciphertexts and sealed secrets of the seed
// distributions; the control byte may ask for the distribution to be
// re-signed by its creator's key (when the creator is a fixture party), so
// that mutated distributions pass the signature check and reach the
// membership, recipient and opening checks behind it.

import (
	"bytes"
	"errors"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Control bits of FuzzOpenDistribution.
const (
	distResign     = 1 << 0 // re-sign with the creator's identity
	distDevices    = 1 << 1 // pass the member devices the opener verified
	distNamedChain = 1 << 2 // verify against the chain the distribution names, not the newest
)

type distFixture struct {
	self      *tparty
	chains    []*protocol.Chain      // chains[i] is at record i
	devices   [][]protocol.DeviceRef // devices[i]: the member devices at record i
	keys      map[protocol.UserID]*secret.IdentityPrivateKey
	secrets   []*secret.EpochSecret
	blobs     [][]byte
	seeds     [][]byte // raw encodings
	conv      protocol.ConversationID
	lastChain *protocol.Chain
}

func newDistFixture(tb testing.TB) *distFixture {
	tb.Helper()
	alice := newTParty(tb, "alice", nil, protocol.UserID{}, 1)
	bob := newTParty(tb, "bob", nil, protocol.UserID{}, 1)
	bob2 := newTParty(tb, "bob2", bob.id, bob.ref.User, 1)
	carol := newTParty(tb, "carol", nil, protocol.UserID{}, 1)
	_, c0 := tGenesis(tb, "distribution", alice, bob)
	add := next(c0, protocol.OpAdd, alice)
	add.Members = []protocol.Member{carol.member(protocol.RoleMember)}
	c1, err := c0.Apply(signed(alice.id, add))
	if err != nil {
		tb.Fatal(err)
	}
	fx := &distFixture{
		self:    bob,
		chains:  []*protocol.Chain{c0, c1},
		devices: [][]protocol.DeviceRef{trefs(alice, bob, bob2), trefs(alice, bob, bob2, carol)},
		keys:    map[protocol.UserID]*secret.IdentityPrivateKey{alice.ref.User: alice.id, bob.ref.User: bob.id, carol.ref.User: carol.id},
		conv:    c0.Conversation, lastChain: c1,
	}
	for _, s := range []struct {
		creator *tparty
		chain   *protocol.Chain
		epoch   uint64
		devs    []*tparty
	}{
		{alice, c0, 1, []*tparty{alice, bob, bob2}},
		{carol, c1, 2, []*tparty{alice, bob, bob2, carol}},
		{carol, c1, 3, []*tparty{alice, bob, carol}}, // misses bob's second device
	} {
		d, sec := tDistribute(tb, s.creator, s.chain, s.epoch, s.devs...)
		fx.secrets = append(fx.secrets, sec)
		fx.seeds = append(fx.seeds, d.Marshal())
		// Every part HPKE's randomness made is a blob, so that a seed's
		// compact form is the same in every process (each fuzzing worker
		// builds its own fixture) and expands to that process's valid
		// distribution.
		fx.blobs = append(fx.blobs, bytes.Clone(d.Commitment[:]), bytes.Clone(d.Signature[:]))
		for _, e := range d.Recipients {
			fx.blobs = append(fx.blobs, bytes.Clone(e.Enc[:]), bytes.Clone(e.Ciphertext[:]))
		}
	}
	// Identifiers and chain heads too: the shorter an input, the cheaper
	// its minimization (quadratic in the length).
	fx.blobs = append(fx.blobs, fx.conv[:], bytes.Clone(c0.Head[:]), bytes.Clone(c1.Head[:]))
	for _, p := range []*tparty{alice, bob, bob2, carol} {
		fx.blobs = append(fx.blobs, bytes.Clone(p.ref.User[:]), bytes.Clone(p.ref.Device[:]))
	}
	return fx
}

func FuzzOpenDistribution(f *testing.F) {
	fx := newDistFixture(f)
	for _, s := range fx.seeds {
		for _, control := range []byte{0, distDevices | distNamedChain, distResign | distDevices | distNamedChain} {
			f.Add(append([]byte{control}, compact(s, fx.blobs)...))
		}
	}
	// Control: the seeds open, except the one that misses a device when the
	// devices are checked.
	for i, s := range fx.seeds {
		for _, control := range []byte{distNamedChain, distDevices | distNamedChain} {
			err := fx.check(f, append([]byte{control}, compact(s, fx.blobs)...))
			if want := i == 2 && control&distDevices != 0; (err != nil) != want || (want && !errors.Is(err, protocol.ErrRecipients)) {
				f.Fatalf("control: seed %d, control %b: %v", i, control, err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) { fx.check(t, in) })
}

// check runs one input and returns why it was refused (nil: opened).
func (fx *distFixture) check(t testing.TB, in []byte) error {
	if len(in) == 0 || len(in) > maxCompactInput {
		return nil
	}
	control := in[0]
	d, err := protocol.ParseDistribution(expand(in[1:], fx.blobs))
	if err != nil {
		return err
	}
	if id := fx.keys[d.Creator.User]; id != nil && control&distResign != 0 {
		d.Signature = id.Sign(d.SignedData())
	}
	chain, devs := fx.lastChain, fx.devices[len(fx.devices)-1]
	if control&distNamedChain != 0 && d.ChainSeq < uint64(len(fx.chains)) {
		chain, devs = fx.chains[d.ChainSeq], fx.devices[d.ChainSeq]
	}
	if control&distDevices == 0 {
		devs = nil
	}
	before := d.Marshal()
	verr := d.Verify(chain)
	if verr == nil {
		creator, ok := chain.Member(d.Creator.User)
		if !ok || d.Entry(d.Creator) == nil || creator.Identity.Verify(d.SignedData(), d.Signature[:]) != nil {
			t.Fatal("Verify accepted a distribution its creator, a member, did not sign for its own device")
		}
		if d.Conversation != chain.Conversation || d.ChainSeq != chain.Seq || d.ChainHead != chain.Head || d.Epoch == 0 {
			t.Fatalf("Verify accepted a distribution for record %d of %s against record %d", d.ChainSeq, d.Conversation, chain.Seq)
		}
		for i, e := range d.Recipients {
			if _, ok := chain.Member(e.User); !ok || (i > 0 && bytes.Compare(d.Recipients[i-1].User[:], e.User[:]) > 0) {
				t.Fatalf("Verify accepted recipient %d (%s)", i, e.User)
			}
		}
	}
	s, oerr := secret.OpenDistribution(secret.OpenRequest{Distribution: d, Chain: chain, Devices: devs, Self: fx.self.ref, PreKey: fx.self.preKey})
	if !bytes.Equal(d.Marshal(), before) {
		t.Fatal("verifying or opening changed the distribution")
	}
	if oerr != nil {
		if s != nil {
			t.Fatalf("refused (%v) with a secret", oerr)
		}
		if verr == nil && errors.Is(oerr, protocol.ErrBadSignature) {
			t.Fatalf("Verify accepted what OpenDistribution refuses as unsigned: %v", oerr)
		}
		return oerr
	}
	if verr != nil {
		t.Fatalf("opened a distribution Verify refuses: %v", verr)
	}
	if devs != nil {
		if _, _, err := d.CheckDevices(devs); err != nil {
			t.Fatalf("opened a distribution that does not cover the member devices: %v", err)
		}
	}
	c, err := secret.Commitment(s, d.Conversation, d.Epoch)
	if err != nil || c != d.Commitment {
		t.Fatal("opened a secret that does not match the commitment")
	}
	known := false
	for _, k := range fx.secrets {
		known = known || k.Equal(s)
	}
	if !known {
		t.Fatal("opened a secret no seed distribution sealed")
	}
	return nil
}

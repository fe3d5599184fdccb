package protocol_test

// Adversarial tests of the public structures: a single altered byte of any
// signed structure is refused, membership changes need the right authority,
// a server cannot roll a chain back or fork it, and a distribution must
// cover exactly the member devices. The fixtures are in fuzz_test.go.

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// rejectFlips alters orig at each position with each mask of masks(pos) and
// fails the test for every altered encoding that check accepts. check must
// accept orig itself (a positive control, so a check that refuses
// everything cannot pass).
func rejectFlips(t *testing.T, what string, orig []byte, positions []int, masks func(pos int) []byte, check func([]byte) error) {
	t.Helper()
	if err := check(bytes.Clone(orig)); err != nil {
		t.Fatalf("%s: the unaltered encoding is refused: %v", what, err)
	}
	buf := make([]byte, len(orig))
	tried := 0
	for _, p := range positions {
		for _, m := range masks(p) {
			copy(buf, orig)
			buf[p] ^= m
			if err := check(buf); err == nil {
				t.Errorf("%s: byte %d xor %#02x (of %d) is accepted", what, p, m, len(orig))
			}
			tried++
		}
	}
	t.Logf("%s: %d bytes, %d positions, %d alterations refused", what, len(orig), len(positions), tried)
}

func allPositions(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// threeMasks flips the low bit, the high bit, then the whole byte.
func threeMasks(int) []byte { return []byte{0x01, 0x80, 0xff} }

// twoMasks flips the whole byte and one bit whose index rotates with the
// position, so that every bit index is exercised across a structure.
func twoMasks(p int) []byte { return []byte{0xff, 1 << (p % 8)} }

// TestTamperPreKey: every position of a pre-key (1293 bytes, all of them,
// two alterations each) breaks decoding or the signature check.
func TestTamperPreKey(t *testing.T) {
	t.Parallel()
	alice := newTParty(t, "alice", nil, protocol.UserID{}, 0)
	pk := alice.bundle.Signed
	check := func(b []byte) error {
		k, err := protocol.ParsePreKey(b)
		if err != nil {
			return err
		}
		return k.Verify(alice.id.Public(), alice.ref.User, alice.ref.Device)
	}
	enc := pk.Marshal()
	rejectFlips(t, "pre-key", enc, allPositions(len(enc)), twoMasks, check)

	// The top bit of the X25519 point is ignored by X25519 itself, so this
	// encodes the same point: only the signature over the bytes stops it.
	last := 1 + 4 + 8 + protocol.KEMPublicKeySize - 1
	rejectFlips(t, "pre-key X25519 high bit", enc, []int{last}, func(int) []byte { return []byte{0x80} }, check)

	// The pre-key also does not verify for another device or user.
	k, _ := protocol.ParsePreKey(enc)
	if k.Verify(alice.id.Public(), alice.ref.User, fixedDevice("other")) == nil ||
		k.Verify(alice.id.Public(), fixedUser("other"), alice.ref.Device) == nil ||
		k.Verify(fixedIdentity(t, "other").Public(), alice.ref.User, alice.ref.Device) == nil {
		t.Error("pre-key verifies for another device, user or identity")
	}
}

// TestTamperBundle: a claimed bundle (3 pre-keys, 3946 bytes). Positions: a
// deterministic sample of 838: every byte outside the X-Wing public keys
// (versions, ids, identity, kinds, key ids, times, signatures, count), the
// whole X25519 part of each public key, and every 8th byte of each ML-KEM
// encapsulation key. Two alterations at each.
func TestTamperBundle(t *testing.T) {
	t.Parallel()
	alice := newTParty(t, "alice", nil, protocol.UserID{}, 1)
	enc := alice.claimed().Marshal()
	const header = 1 + 2*protocol.IDSize + protocol.IdentityKeySize
	const kemStart = 1 + 4 + 8 // within a pre-key
	starts := []int{header, header + protocol.PreKeySize, header + 2*protocol.PreKeySize + 2}
	if len(enc) != starts[2]+protocol.PreKeySize {
		t.Fatalf("bundle layout: %d bytes", len(enc))
	}
	var positions []int
	for p := range enc {
		keep := true
		for i, s := range starts {
			off := p - s - kemStart
			if off >= 0 && off < protocol.KEMPublicKeySize {
				keep = off >= 1184 || off%8 == i
			}
		}
		if keep {
			positions = append(positions, p)
		}
	}
	if len(positions) < 500 {
		t.Fatalf("only %d positions sampled", len(positions))
	}
	rejectFlips(t, "bundle", enc, positions, twoMasks, func(b []byte) error {
		bb, err := protocol.ParseBundle(b)
		if err != nil {
			return err
		}
		return bb.Verify()
	})
}

// TestTamperRecord: every position of a genesis record and of an add
// record (all bytes, three alterations each) breaks decoding, Genesis or
// Apply.
func TestTamperRecord(t *testing.T) {
	alice := newTParty(t, "alice", nil, protocol.UserID{}, 0)
	bob := newTParty(t, "bob", nil, protocol.UserID{}, 0)
	carol := newTParty(t, "carol", nil, protocol.UserID{}, 0)
	g, c := tGenesis(t, "tamper", alice, bob)
	enc := g.Marshal()
	rejectFlips(t, "genesis record", enc, allPositions(len(enc)), threeMasks, func(b []byte) error {
		rec, err := protocol.ParseRecord(b)
		if err != nil {
			return err
		}
		_, err = protocol.Genesis(rec)
		return err
	})

	add := next(c, protocol.OpAdd, alice)
	add.Members = []protocol.Member{carol.member(protocol.RoleAdmin)}
	enc = signed(alice.id, add).Marshal()
	rejectFlips(t, "add record", enc, allPositions(len(enc)), threeMasks, func(b []byte) error {
		rec, err := protocol.ParseRecord(b)
		if err != nil {
			return err
		}
		_, err = c.Apply(rec)
		return err
	})
}

// TestTamperDistribution: every position of a distribution to three
// devices (all bytes, two alterations each) breaks decoding, verification
// or opening by a recipient.
func TestTamperDistribution(t *testing.T) {
	t.Parallel()
	alice := newTParty(t, "alice", nil, protocol.UserID{}, 1)
	bob := newTParty(t, "bob", nil, protocol.UserID{}, 1)
	bob2 := newTParty(t, "bob2", bob.id, bob.ref.User, 1)
	_, c := tGenesis(t, "tamper", alice, bob)
	d, want := tDistribute(t, alice, c, 1, alice, bob, bob2)
	devs := trefs(alice, bob, bob2)
	enc := d.Marshal()
	rejectFlips(t, "distribution", enc, allPositions(len(enc)), twoMasks, func(b []byte) error {
		dd, err := protocol.ParseDistribution(b)
		if err != nil {
			return err
		}
		s, err := secret.OpenDistribution(secret.OpenRequest{Distribution: dd, Chain: c, Devices: devs, Self: bob.ref, PreKey: bob.preKey})
		if err == nil && !s.Equal(want) {
			t.Fatal("opened to a different secret")
		}
		return err
	})
}

// TestTamperEnvelope: every position of an envelope (all bytes, three
// alterations each) breaks decoding or decryption, and the receiver's state
// is untouched by the failures: the original still decrypts afterwards.
func TestTamperEnvelope(t *testing.T) {
	alice := newTParty(t, "alice", nil, protocol.UserID{}, 0)
	bob := newTParty(t, "bob", nil, protocol.UserID{}, 0)
	conv := fixedConversation("tamper")
	ea := tEpoch(t, "tamper", conv, 1, alice, alice, bob)
	env, err := ea.Encrypt(alice.id, []byte("attack at dawn"))
	if err != nil {
		t.Fatal(err)
	}
	enc := env.Marshal()
	eb := tEpoch(t, "tamper", conv, 1, bob, alice, bob)
	decrypt := func(b []byte) error {
		e, err := protocol.ParseEnvelope(b)
		if err != nil {
			return err
		}
		_, err = eb.Decrypt(e, alice.id.Public())
		return err
	}
	// The positive control of rejectFlips would consume the message, so run
	// the flips against a check that decrypts a fresh copy of bob's state.
	state, err := eb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	fresh := func(b []byte) error {
		var err error
		if eb, err = secret.UnmarshalEpoch(state); err != nil {
			t.Fatal(err)
		}
		return decrypt(b)
	}
	rejectFlips(t, "envelope", enc, allPositions(len(enc)), threeMasks, fresh)

	// Without resetting the state between attempts: the failures changed
	// nothing, so the message still decrypts once, then is a duplicate.
	if eb, err = secret.UnmarshalEpoch(state); err != nil {
		t.Fatal(err)
	}
	for p := range enc {
		b := bytes.Clone(enc)
		b[p] ^= 0xff
		if decrypt(b) == nil {
			t.Fatalf("byte %d accepted", p)
		}
	}
	e, _ := protocol.ParseEnvelope(enc)
	if pt, err := eb.Decrypt(e, alice.id.Public()); err != nil || string(pt) != "attack at dawn" {
		t.Fatalf("after the failed attempts the message gives %q, %v", pt, err)
	}
	if _, err := eb.Decrypt(e, alice.id.Public()); !errors.Is(err, secret.ErrDuplicate) {
		t.Fatalf("second delivery: %v, want ErrDuplicate", err)
	}
}

// ---- membership authority ----

type members struct {
	alice, bob, carol, dave *tparty
	genesis                 *protocol.Record
	chain                   *protocol.Chain // alice admin, bob member
}

func newMembers(t *testing.T) *members {
	m := &members{
		alice: newTParty(t, "alice", nil, protocol.UserID{}, 0),
		bob:   newTParty(t, "bob", nil, protocol.UserID{}, 0),
		carol: newTParty(t, "carol", nil, protocol.UserID{}, 0),
		dave:  newTParty(t, "dave", nil, protocol.UserID{}, 0),
	}
	m.genesis, m.chain = tGenesis(t, "membership", m.alice, m.bob)
	return m
}

func mustApply(t *testing.T, c *protocol.Chain, rec *protocol.Record) *protocol.Chain {
	t.Helper()
	n, err := c.Apply(rec)
	if err != nil {
		t.Fatalf("record %d (%s): %v", rec.Seq, rec.Op, err)
	}
	return n
}

func wantUnauthorized(t *testing.T, what string, c *protocol.Chain, rec *protocol.Record) {
	t.Helper()
	n, err := c.Apply(rec)
	if !errors.Is(err, protocol.ErrUnauthorized) || n != nil {
		t.Errorf("%s: got %v (chain %v), want ErrUnauthorized", what, err, n != nil)
	}
}

// TestAddByNonAdmin: a plain member cannot add, remove or change roles,
// even with a valid signature of its own.
func TestAddByNonAdmin(t *testing.T) {
	m := newMembers(t)
	add := next(m.chain, protocol.OpAdd, m.bob)
	add.Members = []protocol.Member{m.carol.member(protocol.RoleMember)}
	wantUnauthorized(t, "add by a plain member", m.chain, signed(m.bob.id, add))

	rm := next(m.chain, protocol.OpRemove, m.bob)
	rm.Users = []protocol.UserID{m.alice.ref.User}
	wantUnauthorized(t, "remove by a plain member", m.chain, signed(m.bob.id, rm))

	role := next(m.chain, protocol.OpRole, m.bob)
	role.Members = []protocol.Member{m.bob.member(protocol.RoleAdmin)}
	wantUnauthorized(t, "self-promotion", m.chain, signed(m.bob.id, role))

	// Control: the same add by the admin is accepted.
	ok := next(m.chain, protocol.OpAdd, m.alice)
	ok.Members = add.Members
	if c := mustApply(t, m.chain, signed(m.alice.id, ok)); len(c.Members()) != 3 {
		t.Fatalf("members after add: %v", c.Members())
	}
}

// TestForgedSignature: records claiming an author whose key did not sign
// them are refused, at genesis and later.
func TestForgedSignature(t *testing.T) {
	m := newMembers(t)
	add := next(m.chain, protocol.OpAdd, m.alice)
	add.Members = []protocol.Member{m.carol.member(protocol.RoleAdmin)}
	wantUnauthorized(t, "signed by another member", m.chain, signed(m.bob.id, add))
	wantUnauthorized(t, "signed by a non-member", m.chain, signed(m.carol.id, add))

	// A genuine signature of alice moved onto another record.
	other := next(m.chain, protocol.OpAdd, m.alice)
	other.Members = []protocol.Member{m.dave.member(protocol.RoleMember)}
	signed(m.alice.id, other)
	add.Signature = other.Signature
	wantUnauthorized(t, "signature of another record", m.chain, add)
	add.Signature = [protocol.SignatureSize]byte{}
	wantUnauthorized(t, "zero signature", m.chain, add)

	// Genesis claiming alice as creator, signed by the server's key.
	g := *m.genesis
	signed(fixedIdentity(t, "server"), &g)
	if _, err := protocol.Genesis(&g); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Errorf("forged genesis: %v, want ErrUnauthorized", err)
	}
	// Genesis whose creator is a plain member.
	g2 := *m.genesis
	g2.Author = m.bob.ref.User
	signed(m.bob.id, &g2)
	if _, err := protocol.Genesis(&g2); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Errorf("genesis by a plain member: %v, want ErrUnauthorized", err)
	}
}

// TestRemovedMemberCannotSign: once removed, even a former admin can make no
// change, with its genuine key.
func TestRemovedMemberCannotSign(t *testing.T) {
	m := newMembers(t)
	promote := next(m.chain, protocol.OpRole, m.alice)
	promote.Members = []protocol.Member{m.bob.member(protocol.RoleAdmin)}
	c1 := mustApply(t, m.chain, signed(m.alice.id, promote))

	// Control: bob, an admin now, may add carol.
	add := next(c1, protocol.OpAdd, m.bob)
	add.Members = []protocol.Member{m.carol.member(protocol.RoleMember)}
	mustApply(t, c1, signed(m.bob.id, add))

	rm := next(c1, protocol.OpRemove, m.alice)
	rm.Users = []protocol.UserID{m.bob.ref.User}
	c2 := mustApply(t, c1, signed(m.alice.id, rm))
	if _, ok := c2.Member(m.bob.ref.User); ok {
		t.Fatal("bob still a member")
	}

	add = next(c2, protocol.OpAdd, m.bob)
	add.Members = []protocol.Member{m.carol.member(protocol.RoleMember)}
	wantUnauthorized(t, "add by a removed admin", c2, signed(m.bob.id, add))
	back := next(c2, protocol.OpAdd, m.bob)
	back.Members = []protocol.Member{m.bob.member(protocol.RoleAdmin)}
	wantUnauthorized(t, "removed admin re-adding itself", c2, signed(m.bob.id, back))
	rmA := next(c2, protocol.OpRemove, m.bob)
	rmA.Users = []protocol.UserID{m.alice.ref.User}
	wantUnauthorized(t, "remove by a removed admin", c2, signed(m.bob.id, rmA))
	leave := next(c2, protocol.OpLeave, m.bob)
	wantUnauthorized(t, "leave by a removed member", c2, signed(m.bob.id, leave))
	rekey := next(c2, protocol.OpRekey, m.bob)
	nb := fixedIdentity(t, "bob new")
	rekey.Members = []protocol.Member{{User: m.bob.ref.User, Identity: nb.Public(), Role: protocol.RoleAdmin}}
	wantUnauthorized(t, "rekey by a removed member", c2, signed(nb, rekey))
}

// TestRekeySignedByOldKey: a rekey must be signed by the new key; after it
// the old key signs nothing.
func TestRekeySignedByOldKey(t *testing.T) {
	m := newMembers(t)
	newKey := fixedIdentity(t, "bob new")
	rekey := next(m.chain, protocol.OpRekey, m.bob)
	rekey.Members = []protocol.Member{{User: m.bob.ref.User, Identity: newKey.Public(), Role: protocol.RoleMember}}
	wantUnauthorized(t, "rekey signed by the old key", m.chain, signed(m.bob.id, rekey))
	wantUnauthorized(t, "rekey signed by another member", m.chain, signed(m.alice.id, rekey))

	c1 := mustApply(t, m.chain, signed(newKey, rekey))
	if got, _ := c1.Member(m.bob.ref.User); !got.Identity.Equal(newKey.Public()) {
		t.Fatal("identity not replaced")
	}
	leave := next(c1, protocol.OpLeave, m.bob)
	wantUnauthorized(t, "leave signed by the replaced key", c1, signed(m.bob.id, leave))
	mustApply(t, c1, signed(newKey, leave))

	// A rekey is signed by the new key alone, which anyone could have
	// made: it never carries admin rights, not even an admin's own.
	aliceNew := fixedIdentity(t, "alice new")
	rk := next(m.chain, protocol.OpRekey, m.alice)
	rk.Members = []protocol.Member{{User: m.alice.ref.User, Identity: aliceNew.Public(), Role: protocol.RoleAdmin}}
	wantUnauthorized(t, "rekey keeping admin rights", m.chain, signed(aliceNew, rk))
	rk.Members[0].Role = protocol.RoleMember
	c2 := mustApply(t, m.chain, signed(aliceNew, rk))
	if got, _ := c2.Member(m.alice.ref.User); got.Role != protocol.RoleMember {
		t.Fatalf("rekeyed admin has role %v", got.Role)
	}
	add := next(c2, protocol.OpAdd, m.alice)
	add.Members = []protocol.Member{m.carol.member(protocol.RoleMember)}
	wantUnauthorized(t, "add after an admin's rekey", c2, signed(aliceNew, add))
}

// ---- rollback and fork ----

func chainOf(t *testing.T, recs []*protocol.Record) *protocol.Chain {
	t.Helper()
	c, err := protocol.VerifyChain(recs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// extend appends an add of p, signed by author, to recs.
func extend(t *testing.T, recs []*protocol.Record, author *tparty, p *tparty, time int64) []*protocol.Record {
	t.Helper()
	c := chainOf(t, recs)
	rec := next(c, protocol.OpAdd, author)
	rec.Time = time
	rec.Members = []protocol.Member{p.member(protocol.RoleMember)}
	return append(slices.Clip(recs), signed(author.id, rec))
}

func TestUpdateRollback(t *testing.T) {
	m := newMembers(t)
	full := extend(t, extend(t, []*protocol.Record{m.genesis}, m.alice, m.carol, 1), m.alice, m.dave, 2)
	held := chainOf(t, full)
	for n := 1; n < len(full); n++ {
		got, err := protocol.Update(held, full[:n])
		if !errors.Is(err, protocol.ErrRollback) || got != nil {
			t.Errorf("chain cut to %d records: %v, want ErrRollback", n, err)
		}
	}
	// Controls: the same chain, and a suffix after a shorter held chain.
	if got, err := protocol.Update(held, full); err != nil || got.Head != held.Head {
		t.Fatalf("same chain: %v", err)
	}
	short := chainOf(t, full[:2])
	if got, err := protocol.Update(short, full[2:]); err != nil || got.Head != held.Head {
		t.Fatalf("suffix: %v", err)
	}
}

func TestUpdateFork(t *testing.T) {
	m := newMembers(t)
	g := []*protocol.Record{m.genesis}
	a1 := extend(t, g, m.alice, m.carol, 1)
	b1 := extend(t, g, m.alice, m.carol, 2) // same change, another record
	b1b := extend(t, g, m.alice, m.dave, 1)
	if a1[1].Hash() == b1[1].Hash() {
		t.Fatal("fixture: records do not differ")
	}
	held := chainOf(t, a1)
	for name, recs := range map[string][]*protocol.Record{
		"other record at the held seq":         b1,
		"other member at the held seq":         b1b,
		"other record at the held seq, longer": extend(t, b1, m.alice, m.dave, 3),
		"other member at the held seq, longer": extend(t, extend(t, b1b, m.alice, m.carol, 4), m.alice, namedParty(t, "erin"), 5),
	} {
		got, err := protocol.Update(held, recs)
		if !errors.Is(err, protocol.ErrFork) || got != nil {
			t.Errorf("%s: %v, want ErrFork", name, err)
		}
	}
	// A fork below a longer held chain is caught too.
	held2 := chainOf(t, extend(t, a1, m.alice, m.dave, 3))
	if _, err := protocol.Update(held2, extend(t, extend(t, b1, m.alice, m.dave, 3), m.alice, namedParty(t, "erin"), 4)); !errors.Is(err, protocol.ErrFork) {
		t.Errorf("fork below the held head: %v, want ErrFork", err)
	}
	// Control: the held chain's own extension is accepted.
	if _, err := protocol.Update(held, extend(t, a1, m.alice, m.dave, 3)); err != nil {
		t.Fatalf("extension: %v", err)
	}
}

func namedParty(t *testing.T, name string) *tparty {
	return newTParty(t, name, nil, protocol.UserID{}, 0)
}

// ---- recipient set ----

func TestCheckDevices(t *testing.T) {
	alice := newTParty(t, "alice", nil, protocol.UserID{}, 2)
	bob := newTParty(t, "bob", nil, protocol.UserID{}, 2)
	bob2 := newTParty(t, "bob2", bob.id, bob.ref.User, 2)
	carol := newTParty(t, "carol", nil, protocol.UserID{}, 0)
	_, c := tGenesis(t, "devices", alice, bob)
	dTwo, _ := tDistribute(t, alice, c, 1, alice, bob)
	dThree, _ := tDistribute(t, alice, c, 2, alice, bob, bob2)

	for _, tc := range []struct {
		name           string
		d              *protocol.Distribution
		want           []protocol.DeviceRef
		missing, extra []protocol.DeviceRef
	}{
		{"exact", dThree, trefs(bob2, alice, bob), nil, nil},
		{"misses a device", dTwo, trefs(alice, bob, bob2), trefs(bob2), nil},
		{"adds a device", dThree, trefs(alice, bob), nil, trefs(bob2)},
		{"misses and adds", dThree, trefs(alice, bob, carol), trefs(carol), trefs(bob2)},
		{"misses all", dTwo, trefs(bob2, carol), trefs(bob2, carol), dTwo.Devices()},
	} {
		missing, extra, err := tc.d.CheckDevices(tc.want)
		sortRefs(missing)
		sortRefs(extra)
		sortRefs(tc.missing)
		sortRefs(tc.extra)
		if !slices.Equal(missing, tc.missing) || !slices.Equal(extra, tc.extra) {
			t.Errorf("%s: missing %v extra %v, want %v %v", tc.name, missing, extra, tc.missing, tc.extra)
		}
		if wantErr := tc.missing != nil || tc.extra != nil; wantErr != errors.Is(err, protocol.ErrRecipients) || (!wantErr && err != nil) {
			t.Errorf("%s: err %v", tc.name, err)
		}
		// Opening enforces the same check.
		_, err = secret.OpenDistribution(secret.OpenRequest{Distribution: tc.d, Chain: c, Devices: tc.want, Self: alice.ref, PreKey: alice.preKey})
		if wantErr := tc.missing != nil || tc.extra != nil; wantErr != errors.Is(err, protocol.ErrRecipients) || (!wantErr && err != nil) {
			t.Errorf("%s: open: %v", tc.name, err)
		}
	}
}

func sortRefs(r []protocol.DeviceRef) {
	slices.SortFunc(r, func(a, b protocol.DeviceRef) int {
		if c := bytes.Compare(a.User[:], b.User[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.Device[:], b.Device[:])
	})
}

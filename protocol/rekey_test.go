package protocol_test

// Rekeys (§6.2): a rekey co-signed by the member's current key keeps its
// role; one signed by the new key alone (which a server can forge) demotes
// to member and the chain remembers the key and role from before it; a
// rekey co-signed by that earlier key restores the role. A server, which
// holds neither key, can do neither.

import (
	"errors"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// rekeyRec returns an unsigned rekey by author announcing key with role.
func rekeyRec(c *protocol.Chain, author *tparty, key *secret.IdentityPrivateKey, role protocol.Role) *protocol.Record {
	rec := next(c, protocol.OpRekey, author)
	rec.Members = []protocol.Member{{User: author.ref.User, Identity: key.Public(), Role: role}}
	return rec
}

func cosigned(newID, old *secret.IdentityPrivateKey, rec *protocol.Record) *protocol.Record {
	secret.SignRekey(newID, old, rec)
	return rec
}

// applyParsed applies rec after a round trip through its encoding, as a
// receiver would.
func applyParsed(t *testing.T, c *protocol.Chain, rec *protocol.Record) (*protocol.Chain, error) {
	t.Helper()
	parsed, err := protocol.ParseRecord(rec.Marshal())
	if err != nil {
		t.Fatalf("%s record does not decode: %v", rec.Op, err)
	}
	return c.Apply(parsed)
}

func wantRole(t *testing.T, c *protocol.Chain, p *tparty, key *secret.IdentityPrivateKey, role protocol.Role) {
	t.Helper()
	m, ok := c.Member(p.ref.User)
	if !ok || !m.Identity.Equal(key.Public()) || m.Role != role {
		t.Fatalf("%s: member %v %+v, want key %s role %s", p.name, ok, m, key.Public(), role)
	}
}

func wantRekeyed(t *testing.T, c *protocol.Chain, p *tparty, prev *secret.IdentityPrivateKey, role protocol.Role) {
	t.Helper()
	k, r, ok := c.Rekeyed(p.ref.User)
	switch {
	case prev == nil && ok:
		t.Fatalf("%s: Rekeyed gives %s %s, want nothing", p.name, k, r)
	case prev != nil && (!ok || !k.Equal(prev.Public()) || r != role):
		t.Fatalf("%s: Rekeyed gives %s %s %v, want %s %s", p.name, k, r, ok, prev.Public(), role)
	}
}

// canAdd reports whether key, as p's identity, may add a new member.
func canAdd(t *testing.T, c *protocol.Chain, p *tparty, key *secret.IdentityPrivateKey) bool {
	t.Helper()
	add := next(c, protocol.OpAdd, p)
	add.Members = []protocol.Member{newTParty(t, "newcomer", nil, protocol.UserID{}, 0).member(protocol.RoleMember)}
	_, err := applyParsed(t, c, signed(key, add))
	return err == nil
}

// TestRekeyCosignedKeepsRole: an admin's rekey co-signed by its current
// key keeps admin, and the new key may add members.
func TestRekeyCosignedKeepsRole(t *testing.T) {
	m := newMembers(t)
	k2 := fixedIdentity(t, "alice second")
	c1, err := applyParsed(t, m.chain, cosigned(k2, m.alice.id, rekeyRec(m.chain, m.alice, k2, protocol.RoleAdmin)))
	if err != nil {
		t.Fatal(err)
	}
	wantRole(t, c1, m.alice, k2, protocol.RoleAdmin)
	wantRekeyed(t, c1, m.alice, nil, 0)
	if !canAdd(t, c1, m.alice, k2) || canAdd(t, c1, m.alice, m.alice.id) {
		t.Fatal("after a co-signed rekey, the new key must add and the old must not")
	}
	// The record must state the role it keeps: no promotion, no demotion.
	if _, err := applyParsed(t, m.chain, cosigned(k2, m.alice.id, rekeyRec(m.chain, m.alice, k2, protocol.RoleMember))); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("co-signed rekey claiming another role: %v", err)
	}
	if _, err := applyParsed(t, m.chain, cosigned(k2, m.bob.id, rekeyRec(m.chain, m.bob, k2, protocol.RoleAdmin))); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("member promoting itself through a co-signed rekey: %v", err)
	}
	if _, err := applyParsed(t, m.chain, cosigned(m.alice.id, m.alice.id, rekeyRec(m.chain, m.alice, m.alice.id, protocol.RoleAdmin))); !errors.Is(err, protocol.ErrBadChain) {
		t.Fatalf("co-signed rekey to the same key: %v", err)
	}
}

// TestForgedRekeyOfOnlyAdmin is the attack: the server forges a rekey of
// the only admin with a key of its own. The admin is demoted, the server's
// key can add nobody, nor restore the role; the real admin, co-signing
// with its earlier key, gets admin back, and can add members again.
func TestForgedRekeyOfOnlyAdmin(t *testing.T) {
	m := newMembers(t)
	server := fixedIdentity(t, "server")
	c1, err := applyParsed(t, m.chain, signed(server, rekeyRec(m.chain, m.alice, server, protocol.RoleMember)))
	if err != nil {
		t.Fatal(err)
	}
	wantRole(t, c1, m.alice, server, protocol.RoleMember)
	wantRekeyed(t, c1, m.alice, m.alice.id, protocol.RoleAdmin)
	if canAdd(t, c1, m.alice, server) || canAdd(t, c1, m.alice, m.alice.id) {
		t.Fatal("somebody adds after the forged rekey")
	}
	// The server keeps forging: a second un-co-signed rekey, and one
	// co-signed by its own current key. Neither gains anything, and the
	// chain still remembers alice's genuine key.
	server2 := fixedIdentity(t, "server 2")
	c2, err := applyParsed(t, c1, signed(server2, rekeyRec(c1, m.alice, server2, protocol.RoleMember)))
	if err != nil {
		t.Fatal(err)
	}
	wantRekeyed(t, c2, m.alice, m.alice.id, protocol.RoleAdmin)
	if _, err := applyParsed(t, c2, cosigned(server, server2, rekeyRec(c2, m.alice, server, protocol.RoleAdmin))); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("server claiming admin with its own co-signature: %v", err)
	}
	c3, err := applyParsed(t, c2, cosigned(server, server2, rekeyRec(c2, m.alice, server, protocol.RoleMember)))
	if err != nil {
		t.Fatal(err)
	}
	wantRole(t, c3, m.alice, server, protocol.RoleMember)
	wantRekeyed(t, c3, m.alice, m.alice.id, protocol.RoleAdmin)

	// Any other cosigner is refused: another member, a stranger, the key
	// before the last forged one.
	for name, k := range map[string]*secret.IdentityPrivateKey{"bob": m.bob.id, "stranger": fixedIdentity(t, "stranger"), "an earlier forged key": server2} {
		rec := cosigned(m.alice.id, k, rekeyRec(c3, m.alice, m.alice.id, protocol.RoleAdmin))
		if _, err := applyParsed(t, c3, rec); !errors.Is(err, protocol.ErrUnauthorized) {
			t.Errorf("co-signed by %s: %v", name, err)
		}
	}
	// The real alice rekeys back to her own key, co-signed by it.
	back := cosigned(m.alice.id, m.alice.id, rekeyRec(c3, m.alice, m.alice.id, protocol.RoleAdmin))
	c4, err := applyParsed(t, c3, back)
	if err != nil {
		t.Fatal(err)
	}
	wantRole(t, c4, m.alice, m.alice.id, protocol.RoleAdmin)
	wantRekeyed(t, c4, m.alice, nil, 0)
	if !canAdd(t, c4, m.alice, m.alice.id) {
		t.Fatal("alice cannot add after rekeying back")
	}
	// Restoring must claim exactly the remembered role.
	if _, err := applyParsed(t, c3, cosigned(m.alice.id, m.alice.id, rekeyRec(c3, m.alice, m.alice.id, protocol.RoleMember))); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("restore claiming member: %v", err)
	}
	// A restore may also move to a fresh key, co-signed by the earlier one.
	k3 := fixedIdentity(t, "alice third")
	c5, err := applyParsed(t, c3, cosigned(k3, m.alice.id, rekeyRec(c3, m.alice, k3, protocol.RoleAdmin)))
	if err != nil {
		t.Fatal(err)
	}
	wantRole(t, c5, m.alice, k3, protocol.RoleAdmin)
	wantRekeyed(t, c5, m.alice, nil, 0)
	// Once restored, the earlier key restores nothing more.
	if _, err := applyParsed(t, c5, cosigned(m.alice.id, m.alice.id, rekeyRec(c5, m.alice, m.alice.id, protocol.RoleAdmin))); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("second restore by a replaced key: %v", err)
	}
}

// TestRekeyedMemoryEnds: the remembered key goes with the member: after
// leaving and being added again, a member has no earlier key.
func TestRekeyedMemoryEnds(t *testing.T) {
	m := newMembers(t)
	server := fixedIdentity(t, "server")
	c1 := mustApply(t, m.chain, signed(server, rekeyRec(m.chain, m.bob, server, protocol.RoleMember)))
	wantRekeyed(t, c1, m.bob, m.bob.id, protocol.RoleMember)
	rm := next(c1, protocol.OpRemove, m.alice)
	rm.Users = []protocol.UserID{m.bob.ref.User}
	c2 := mustApply(t, c1, signed(m.alice.id, rm))
	wantRekeyed(t, c2, m.bob, nil, 0)
	add := next(c2, protocol.OpAdd, m.alice)
	add.Members = []protocol.Member{m.bob.member(protocol.RoleMember)}
	c3 := mustApply(t, c2, signed(m.alice.id, add))
	wantRekeyed(t, c3, m.bob, nil, 0)
	if _, err := applyParsed(t, c3, cosigned(m.bob.id, m.bob.id, rekeyRec(c3, m.bob, m.bob.id, protocol.RoleMember))); err == nil {
		t.Fatal("a restore after re-adding is accepted")
	}

	c4 := mustApply(t, c1, signed(server, next(c1, protocol.OpLeave, m.bob)))
	wantRekeyed(t, c4, m.bob, nil, 0)
}

// TestCosignatureBinding: the co-signature covers the record, a valid one
// moved to another record is refused, the new key's signature is still
// required, and the co-signature fields exist only on a co-signed rekey.
func TestCosignatureBinding(t *testing.T) {
	m := newMembers(t)
	k2 := fixedIdentity(t, "alice second")
	good := cosigned(k2, m.alice.id, rekeyRec(m.chain, m.alice, k2, protocol.RoleAdmin))

	// The same co-signature on a record announcing another key, re-signed
	// by that key.
	k3 := fixedIdentity(t, "alice third")
	moved := rekeyRec(m.chain, m.alice, k3, protocol.RoleAdmin)
	moved.Op, moved.Cosigner, moved.Cosignature = protocol.OpRekeyCosigned, good.Cosigner, good.Cosignature
	signed(k3, moved)
	if _, err := applyParsed(t, m.chain, moved); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("moved co-signature: %v", err)
	}
	// Signed by the old key only: the new key must sign.
	bad := *good
	bad.Signature = m.alice.id.Sign(bad.SignedData())
	if _, err := applyParsed(t, m.chain, &bad); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("not signed by the new key: %v", err)
	}
	// The co-signature made over the signed data (the wrong label).
	bad = *good
	bad.Cosignature = m.alice.id.Sign(bad.SignedData())
	signed(k2, &bad)
	if _, err := applyParsed(t, m.chain, &bad); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("co-signature without its label: %v", err)
	}
	// Co-signature fields on another op, in memory (the encoding has no
	// place for them).
	leave := next(m.chain, protocol.OpLeave, m.bob)
	leave.Cosigner = m.bob.id.Public()
	signed(m.bob.id, leave)
	if _, err := m.chain.Apply(leave); !errors.Is(err, protocol.ErrBadChain) {
		t.Fatalf("leave with a cosigner: %v", err)
	}
	g := *m.genesis
	g.Cosignature = good.Cosignature
	if _, err := protocol.Genesis(&g); !errors.Is(err, protocol.ErrBadChain) {
		t.Fatalf("genesis with a co-signature: %v", err)
	}
	if _, err := applyParsed(t, m.chain, good); err != nil {
		t.Fatalf("the genuine record: %v", err)
	}
}

// TestCosignedRekeyDecoding: the encoding of a co-signed rekey carries the
// cosigner (a valid identity key) and a canonical co-signature; truncated,
// with a small-order cosigner or with S >= L it is refused at decode.
func TestCosignedRekeyDecoding(t *testing.T) {
	m := newMembers(t)
	k2 := fixedIdentity(t, "alice second")
	good := cosigned(k2, m.alice.id, rekeyRec(m.chain, m.alice, k2, protocol.RoleAdmin))
	enc := good.Marshal()
	if want := 150 + 49 + 32 + 64; len(enc) != want {
		t.Fatalf("co-signed rekey is %d bytes, want %d", len(enc), want)
	}
	rec, err := protocol.ParseRecord(enc)
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Marshal()) != string(enc) || !rec.Cosigner.Equal(m.alice.id.Public()) || rec.Cosignature != good.Cosignature {
		t.Fatal("round trip")
	}
	// Op 6 with the co-signature fields, op 7 without them.
	as6 := append([]byte{}, enc...)
	as6[1] = byte(protocol.OpRekey)
	if _, err := protocol.ParseRecord(as6); err == nil {
		t.Error("a rekey with trailing co-signature fields decodes")
	}
	plain := signed(k2, rekeyRec(m.chain, m.alice, k2, protocol.RoleMember)).Marshal()
	plain[1] = byte(protocol.OpRekeyCosigned)
	if _, err := protocol.ParseRecord(plain); err == nil {
		t.Error("a co-signed rekey without its co-signature decodes")
	}
	cosignerAt := len(enc) - 64 - 64 - 32
	small := append([]byte{}, enc...)
	copy(small[cosignerAt:], append([]byte{1}, make([]byte, 31)...))
	if _, err := protocol.ParseRecord(small); err == nil {
		t.Error("a small-order cosigner decodes")
	}
	highS := append([]byte{}, enc...)
	for i := range 32 {
		highS[len(enc)-64-32+i] = 0xff
	}
	if _, err := protocol.ParseRecord(highS); err == nil {
		t.Error("a co-signature with S >= L decodes")
	}
	if protocol.OpRekeyCosigned.String() != "rekey-cosigned" || !protocol.OpRekeyCosigned.IsRekey() || !protocol.OpRekey.IsRekey() || protocol.OpRole.IsRekey() {
		t.Error("op names")
	}
}

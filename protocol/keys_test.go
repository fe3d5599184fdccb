package protocol_test

// Identity keys and signatures are checked at decode (§2.3): small-order
// and non-canonical keys, and non-canonical signatures, are refused by every
// decoder that meets them, before any signature is verified. The refused
// encodings come from testdata/vectors/keys.json, which the vector test of
// protocol/secret derives from the group itself.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"filippo.io/edwards25519"

	"sandi.dev/protocol"
)

type keyVectors struct {
	IdentityKeys []struct {
		Encoding string `json:"encoding"`
		Valid    bool   `json:"valid"`
		Reason   string `json:"reason"`
	} `json:"identity_keys"`
	Signatures []struct {
		Signature string `json:"signature"`
		Valid     bool   `json:"valid"`
		Reason    string `json:"reason"`
	} `json:"signatures"`
}

// refusedEncodings returns the refused identity keys and signatures of
// keys.json, by reason; the loader fails on a file with none.
func refusedEncodings(t testing.TB) (keys, sigs map[string][]byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v keyVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	keys, sigs = map[string][]byte{}, map[string][]byte{}
	dec := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, k := range v.IdentityKeys {
		if !k.Valid {
			keys[k.Reason+" "+k.Encoding] = dec(k.Encoding)
		}
	}
	for _, s := range v.Signatures {
		if !s.Valid {
			sigs[s.Reason+" "+s.Signature] = dec(s.Signature)
		}
	}
	if len(keys) < 16 || len(sigs) < 16 {
		t.Fatalf("keys.json lists %d refused keys and %d refused signatures", len(keys), len(sigs))
	}
	return keys, sigs
}

// TestSmallOrderGenesis: the identity point as an identity key, with the
// signature R = identity, S = 0, "verifies" for every message under
// crypto/ed25519 ([0]B = identity + [k]identity). A genesis record naming
// such a key for its creator, "signed" so, is refused at decode, and by
// Genesis if built in memory.
func TestSmallOrderGenesis(t *testing.T) {
	var weak protocol.IdentityKey
	weak[0] = 1 // y = 1: the identity point
	var universal [protocol.SignatureSize]byte
	universal[0] = 1 // R = identity, S = 0
	for _, msg := range []string{"anything", "at all", ""} {
		if !ed25519.Verify(ed25519.PublicKey(weak[:]), []byte(msg), universal[:]) {
			t.Fatal("the universal signature does not verify under crypto/ed25519: the attack this test guards against is gone")
		}
	}
	alice := newTParty(t, "alice", nil, protocol.UserID{}, 0)
	bob := newTParty(t, "bob", nil, protocol.UserID{}, 0)
	g := &protocol.Record{Op: protocol.OpCreate, Conversation: fixedConversation("weak"), Time: fixNow * 1000, Author: alice.ref.User,
		Members:   []protocol.Member{{User: alice.ref.User, Identity: weak, Role: protocol.RoleAdmin}, bob.member(protocol.RoleMember)},
		Signature: universal}
	if _, err := protocol.Genesis(g); err == nil {
		t.Fatal("Genesis accepts a creator key of small order with a universal signature")
	}
	if _, err := protocol.ParseRecord(g.Marshal()); err == nil {
		t.Fatal("ParseRecord accepts a member key of small order")
	}
	// With a genuine creator key, a small-order key for another member is
	// refused too, although the creator's signature is real.
	g2 := &protocol.Record{Op: protocol.OpCreate, Conversation: fixedConversation("weak"), Time: fixNow * 1000, Author: alice.ref.User,
		Members: []protocol.Member{alice.member(protocol.RoleAdmin), {User: bob.ref.User, Identity: weak, Role: protocol.RoleMember}}}
	signed(alice.id, g2)
	if _, err := protocol.Genesis(g2); err == nil {
		t.Fatal("Genesis accepts a member key of small order")
	}
	if _, err := protocol.ParseRecord(g2.Marshal()); err == nil {
		t.Fatal("ParseRecord accepts a member key of small order")
	}
	if err := weak.Verify([]byte("anything"), universal[:]); !errors.Is(err, protocol.ErrBadSignature) {
		t.Fatalf("Verify of the universal signature: %v", err)
	}
}

// TestRefusedIdentityKeys: every refused key of keys.json is refused by
// ParseIdentityKey, the text form, JSON, and inside a record and a bundle;
// a valid key in the same places is accepted (the control).
func TestRefusedIdentityKeys(t *testing.T) {
	keys, _ := refusedEncodings(t)
	alice := newTParty(t, "alice", nil, protocol.UserID{}, 0)
	bob := newTParty(t, "bob", nil, protocol.UserID{}, 0)
	check := func(k []byte) []string {
		var failed []string
		if _, err := protocol.ParseIdentityKey(k); err == nil {
			failed = append(failed, "ParseIdentityKey")
		} else if !errors.Is(err, protocol.ErrBadKey) {
			t.Errorf("ParseIdentityKey error does not wrap ErrBadKey: %v", err)
		}
		text := "sandi-identity:" + base64.RawURLEncoding.EncodeToString(k)
		var ik protocol.IdentityKey
		if ik.UnmarshalText([]byte(text)) == nil {
			failed = append(failed, "UnmarshalText")
		}
		if json.Unmarshal([]byte(`"`+text+`"`), &ik) == nil {
			failed = append(failed, "JSON")
		}
		g := &protocol.Record{Op: protocol.OpCreate, Conversation: fixedConversation("weak"), Time: fixNow * 1000, Author: alice.ref.User,
			Members: []protocol.Member{alice.member(protocol.RoleAdmin), {User: bob.ref.User, Identity: protocol.IdentityKey(k), Role: protocol.RoleMember}}}
		signed(alice.id, g)
		if _, err := protocol.ParseRecord(g.Marshal()); err == nil {
			failed = append(failed, "ParseRecord")
		}
		b := *alice.bundle
		b.Identity = protocol.IdentityKey(k)
		if _, err := protocol.ParseBundle(b.Marshal()); err == nil {
			failed = append(failed, "ParseBundle")
		}
		return failed
	}
	valid := bob.id.Public()
	if failed := check(valid[:]); len(failed) != 5 {
		t.Fatalf("a valid key is refused by all but %v", failed)
	}
	for name, k := range keys {
		if failed := check(k); len(failed) > 0 {
			t.Errorf("%s: accepted by %v", name, failed)
		}
	}
}

// TestRefusedSignatures: every refused signature of keys.json, put in
// place of a genuine one, is refused at decode by every structure that
// carries a signature (pre-key, bundle, record, distribution, envelope),
// and by IdentityKey.Verify.
func TestRefusedSignatures(t *testing.T) {
	_, sigs := refusedEncodings(t)
	alice := newTParty(t, "alice", nil, protocol.UserID{}, 1)
	bob := newTParty(t, "bob", nil, protocol.UserID{}, 1)
	g, c := tGenesis(t, "sigs", alice, bob)
	d, _ := tDistribute(t, alice, c, 1, alice, bob)
	e := tEpoch(t, "sigs", c.Conversation, 1, alice, alice, bob)
	env, err := e.Encrypt(alice.id, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	type carrier struct {
		name  string
		enc   []byte
		at    int // offset of the signature in enc
		parse func([]byte) error
	}
	pk := alice.bundle.Signed.Marshal()
	bundle := alice.claimed().Marshal()
	carriers := []carrier{
		{"pre-key", pk, len(pk) - 64, func(b []byte) error { _, err := protocol.ParsePreKey(b); return err }},
		{"bundle", bundle, len(bundle) - 64, func(b []byte) error { _, err := protocol.ParseBundle(b); return err }},
		{"record", g.Marshal(), len(g.Marshal()) - 64, func(b []byte) error { _, err := protocol.ParseRecord(b); return err }},
		{"distribution", d.Marshal(), len(d.Marshal()) - 64, func(b []byte) error { _, err := protocol.ParseDistribution(b); return err }},
		{"envelope", env.Marshal(), len(env.Marshal()) - 64, func(b []byte) error { _, err := protocol.ParseEnvelope(b); return err }},
	}
	for _, cr := range carriers {
		if err := cr.parse(cr.enc); err != nil {
			t.Fatalf("%s: the genuine encoding is refused: %v", cr.name, err)
		}
		if got := cr.enc[cr.at:]; len(got) != 64 {
			t.Fatalf("%s: signature offset", cr.name)
		}
	}
	for name, sig := range sigs {
		for _, cr := range carriers {
			b := bytes.Clone(cr.enc)
			copy(b[cr.at:], sig)
			if err := cr.parse(b); err == nil {
				t.Errorf("%s: %s accepted at decode", name, cr.name)
			}
		}
		if err := alice.id.Public().Verify(g.SignedData(), sig); !errors.Is(err, protocol.ErrBadSignature) {
			t.Errorf("%s: Verify gives %v", name, err)
		}
		if err := protocol.CheckSignature(sig); err == nil {
			t.Errorf("%s: CheckSignature accepts it", name)
		}
	}
	if err := protocol.CheckSignature(g.Signature[:]); err != nil {
		t.Fatalf("a genuine signature: %v", err)
	}
}

// keyOracle decides a 32-byte identity key by the rules of §2.3 computed
// another way than ParseIdentityKey: the canonical checks on the integer y
// (math/big), the curve check by decoding, small order by three doublings.
func keyOracle(b []byte) bool {
	le := slices.Clone(b)
	sign := le[31] >> 7
	le[31] &= 0x7f
	slices.Reverse(le)
	y := new(big.Int).SetBytes(le)
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	if y.Cmp(p) >= 0 {
		return false
	}
	if sign == 1 && (y.Cmp(big.NewInt(1)) == 0 || y.Cmp(new(big.Int).Sub(p, big.NewInt(1))) == 0) {
		return false // x = 0 with the sign bit set
	}
	pt, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return false
	}
	for range 3 {
		pt.Add(pt, pt)
	}
	return pt.Equal(edwards25519.NewIdentityPoint()) == 0
}

// FuzzKeyAndSignatureChecks: ParseIdentityKey and CheckSignature agree
// with keyOracle and with S < L computed with math/big, on any 64 bytes
// (the first 32 as a key and as R).
func FuzzKeyAndSignatureChecks(f *testing.F) {
	keys, sigs := refusedEncodings(f)
	for _, k := range keys {
		f.Add(append(slices.Clone(k), make([]byte, 32)...))
	}
	for _, s := range sigs {
		f.Add(s)
	}
	id := fixedIdentity(f, "alice")
	sig := id.Sign([]byte("seed"))
	f.Add(sig[:])
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 64 {
			return
		}
		want := keyOracle(b[:32])
		if _, err := protocol.ParseIdentityKey(b[:32]); (err == nil) != want {
			t.Fatalf("key %x: ParseIdentityKey %v, oracle %v", b[:32], err, want)
		}
		s := slices.Clone(b[32:])
		slices.Reverse(s)
		want = want && new(big.Int).SetBytes(s).Cmp(l) < 0
		if err := protocol.CheckSignature(b); (err == nil) != want {
			t.Fatalf("signature %x: CheckSignature %v, oracle %v", b, err, want)
		}
	})
}

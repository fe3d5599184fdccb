package secret

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"testing"

	"filippo.io/edwards25519"

	"sandi.dev/protocol"
)

// ---- keys.json ----

const vecKeysDescription = `Identity keys and signature encodings that a receiver refuses at decode (protocol.md §2.3), with valid ones as controls. All byte strings hex. ` +
	`An identity key is valid only if it is the canonical 32-byte encoding (RFC 8032 §5.1.2: y below p = 2^255 - 19, little-endian, with the sign of x in the top bit) ` +
	`of a point of the edwards25519 curve whose order does not divide 8. identity_keys lists encodings with valid true or false and the reason for a refusal: ` +
	`"not on the curve" (no x satisfies the curve equation for y), "non-canonical" (y >= p, or x = 0 with the sign bit set; the point decodes but re-encodes differently), ` +
	`"small order N" (the canonical encoding of one of the 8 points of order N dividing 8: the identity, the point of order 2, two of order 4, four of order 8; the all-zero string is one of order 4), ` +
	`and "non-canonical, small order N" for the non-canonical encodings of those points. ` +
	`signatures lists (public, message, signature) triples: valid ones verify (Ed25519, RFC 8032 §5.1.7, cofactorless), the others are refused before verification because ` +
	`R (signature bytes 0..31) is "R not on the curve", "R non-canonical", "R small order N" or "R non-canonical, small order N" as for a key, or because ` +
	`S (bytes 32..63, little-endian) is "S not below L", with L = 2^252 + 27742317777372353535851937790883648493 the group order; "S + L" is the valid signature with L added to S, ` +
	`which a verifier that reduces S would accept. Every value here is implementation-independent.`

type vecKeysFile struct {
	vecHeader
	IdentityKeys []vecKeyEncoding `json:"identity_keys"`
	Signatures   []vecSignature   `json:"signatures"`
}

func (f *vecKeysFile) sizes() map[string]int {
	n := map[string]int{"identity keys": len(f.IdentityKeys), "signatures": len(f.Signatures)}
	for what, want := range map[string]bool{"valid keys": true, "refused keys": false} {
		for _, k := range f.IdentityKeys {
			if k.Valid == want {
				n[what]++
			}
		}
	}
	for what, want := range map[string]bool{"valid signatures": true, "refused signatures": false} {
		for _, s := range f.Signatures {
			if s.Valid == want {
				n[what]++
			}
		}
	}
	return n
}

type vecKeyEncoding struct {
	Encoding vecHex `json:"encoding"`
	Valid    bool   `json:"valid"`
	Reason   string `json:"reason,omitempty"`
}

type vecSignature struct {
	Public    vecHex `json:"public"`
	Message   vecHex `json:"message"`
	Signature vecHex `json:"signature"`
	Valid     bool   `json:"valid"`
	Reason    string `json:"reason,omitempty"`
}

// vecP is p = 2^255 - 19, little-endian.
var vecP = func() [32]byte {
	var p [32]byte
	for i := range p {
		p[i] = 0xff
	}
	p[0], p[31] = 0xed, 0x7f
	return p
}()

// vecL is the group order L, little-endian.
var vecL = [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}

// vecAddLE returns a + b as 32-byte little-endian numbers (no overflow
// past 2^256 may occur).
func vecAddLE(a, b []byte) []byte {
	out := make([]byte, 32)
	carry := 0
	for i := range out {
		s := int(a[i]) + int(b[i]) + carry
		out[i], carry = byte(s), s>>8
	}
	if carry != 0 {
		panic("vecAddLE overflow")
	}
	return out
}

// vecTorsion returns the 8 points of small order, [k]T for k = 0..7 with T
// of order 8, found from the group itself: [L]P for a point P is P's
// component of small order, and the first P whose component has order 8
// gives T.
func vecTorsion(t *testing.T) []*edwards25519.Point {
	one, err := edwards25519.NewScalar().SetCanonicalBytes(append([]byte{1}, make([]byte, 31)...))
	if err != nil {
		t.Fatal(err)
	}
	lMinus1 := edwards25519.NewScalar().Subtract(edwards25519.NewScalar(), one)
	id := edwards25519.NewIdentityPoint()
	for i := uint32(0); i < 1000; i++ {
		h := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("sandi vector torsion"), i))
		p, err := new(edwards25519.Point).SetBytes(h[:])
		if err != nil {
			continue
		}
		tp := new(edwards25519.Point).ScalarMult(lMinus1, p)
		tp.Add(tp, p) // [L]P
		four := new(edwards25519.Point).Add(tp, tp)
		four.Add(four, four)
		if four.Equal(id) == 1 {
			continue // order divides 4
		}
		out := []*edwards25519.Point{edwards25519.NewIdentityPoint()}
		for k := 1; k < 8; k++ {
			out = append(out, new(edwards25519.Point).Add(out[k-1], tp))
		}
		return out
	}
	t.Fatal("no point with a component of order 8")
	return nil
}

// vecPointClass classifies a 32-byte string as a key decoder must, with
// the group operations alone: "" for a valid key, else the refusal reason.
func vecPointClass(b []byte) string {
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return "not on the curve"
	}
	reason := ""
	if !bytes.Equal(p.Bytes(), b) {
		reason = "non-canonical"
	}
	q := new(edwards25519.Point).Set(p)
	id := edwards25519.NewIdentityPoint()
	for order := 1; order <= 8; order *= 2 {
		if q.Equal(id) == 1 {
			if reason != "" {
				return fmt.Sprintf("%s, small order %d", reason, order)
			}
			return fmt.Sprintf("small order %d", order)
		}
		q.Add(q, q)
	}
	return reason
}

// vecRefusedPoints returns every refused encoding the file lists, in a
// fixed order: the 8 small-order points, their non-canonical encodings,
// non-canonical encodings of a point of large order, and strings that are
// not on the curve.
func vecRefusedPoints(t *testing.T) [][]byte {
	var out [][]byte
	seen := map[string]bool{}
	add := func(b []byte) {
		if !seen[string(b)] {
			seen[string(b)] = true
			out = append(out, bytes.Clone(b))
		}
	}
	var noncanon [][]byte
	for _, p := range vecTorsion(t) {
		e := p.Bytes()
		add(e)
		variants := [][]byte{e}
		if bytes.Equal(new(edwards25519.Point).Negate(p).Bytes(), e) { // x = 0
			f := bytes.Clone(e)
			f[31] |= 0x80
			variants = append(variants, f)
		}
		for _, v := range variants {
			y := bytes.Clone(v)
			y[31] &= 0x7f
			if bytes.Equal(y[1:], make([]byte, 31)) && y[0] < 19 { // y + p < 2^255
				w := vecAddLE(y, vecP[:])
				w[31] |= v[31] & 0x80
				variants = append(variants, w)
			}
		}
		noncanon = append(noncanon, variants[1:]...)
	}
	for _, v := range noncanon {
		add(v)
	}
	// y = p + n for small n: the non-canonical encodings of points of large
	// order, then canonical strings that are not on the curve.
	var large, offCurve int
	for n := byte(0); n < 19 && large < 2; n++ {
		y := vecAddLE([]byte{n, 31: 0}, vecP[:])
		if c := vecPointClass(y); c == "non-canonical" {
			add(y)
			large++
		}
	}
	for n := byte(2); offCurve < 2; n++ {
		if y := []byte{n, 31: 0}; vecPointClass(y) == "not on the curve" {
			add(y)
			offCurve++
		}
	}
	return out
}

func vecGenKeys(t *testing.T) *vecKeysFile {
	f := &vecKeysFile{vecHeader: vecHeader{vecKeysDescription}}
	alice, bob := vecIdentity(t, "alice"), vecIdentity(t, "bob")
	for _, k := range []*IdentityPrivateKey{alice, bob} {
		f.IdentityKeys = append(f.IdentityKeys, vecKeyEncoding{Encoding: vecPub(k), Valid: true})
	}
	refused := vecRefusedPoints(t)
	for _, b := range refused {
		f.IdentityKeys = append(f.IdentityKeys, vecKeyEncoding{Encoding: b, Reason: vecPointClass(b)})
	}

	msg := []byte("sandi vector message")
	sig := alice.Sign(msg)
	r, s := sig[:32], sig[32:]
	add := func(sig []byte, reason string) {
		f.Signatures = append(f.Signatures, vecSignature{Public: vecPub(alice), Message: msg, Signature: sig, Valid: reason == "", Reason: reason})
	}
	add(sig[:], "")
	bsig := bob.Sign(msg)
	f.Signatures = append(f.Signatures, vecSignature{Public: vecPub(bob), Message: msg, Signature: bsig[:], Valid: true})
	add(append(bytes.Clone(r), vecAddLE(s, vecL[:])...), "S + L: S not below L")
	add(append(bytes.Clone(r), vecL[:]...), "S = L: S not below L")
	add(append(bytes.Clone(r), bytes.Repeat([]byte{0xff}, 32)...), "S = 2^256 - 1: S not below L")
	for _, b := range refused {
		add(append(bytes.Clone(b), s...), "R "+vecPointClass(b))
	}
	add(make([]byte, 64), "R "+vecPointClass(make([]byte, 32)))
	return f
}

func vecReplayKeys(t *testing.T, f *vecKeysFile) {
	orders := map[string]int{}
	for _, v := range f.IdentityKeys {
		what := fmt.Sprintf("identity key %x", []byte(v.Encoding))
		if got := vecPointClass(v.Encoding); got != v.Reason || v.Valid != (got == "") {
			t.Errorf("%s: the group says %q, the file valid %v reason %q", what, got, v.Valid, v.Reason)
		}
		orders[v.Reason]++
		_, err := protocol.ParseIdentityKey(v.Encoding)
		if v.Valid != (err == nil) {
			t.Errorf("%s: ParseIdentityKey gives %v, file says valid %v", what, err, v.Valid)
		}
		var k protocol.IdentityKey
		if err := k.UnmarshalText([]byte("sandi-identity:" + base64.RawURLEncoding.EncodeToString(v.Encoding))); v.Valid != (err == nil) {
			t.Errorf("%s: the text form gives %v, file says valid %v", what, err, v.Valid)
		}
	}
	// All eight small-order points, each canonical encoding once.
	if n := orders["small order 1"] + orders["small order 2"] + orders["small order 4"] + orders["small order 8"]; n != 8 ||
		orders["small order 1"] != 1 || orders["small order 2"] != 1 || orders["small order 4"] != 2 {
		t.Errorf("the file lists %v", orders)
	}
	for _, v := range f.Signatures {
		what := fmt.Sprintf("signature %x", []byte(v.Signature))
		pub, err := protocol.ParseIdentityKey(v.Public)
		if err != nil {
			t.Fatalf("%s: public key: %v", what, err)
		}
		reason := ""
		if c := vecPointClass(v.Signature[:32]); c != "" {
			reason = "R " + c
		} else if _, err := edwards25519.NewScalar().SetCanonicalBytes(v.Signature[32:]); err != nil {
			reason = "S not below L"
		}
		if !bytes.HasSuffix([]byte(v.Reason), []byte(reason)) || v.Valid != (reason == "") {
			t.Errorf("%s: the group says %q, the file valid %v reason %q", what, reason, v.Valid, v.Reason)
		}
		if err := protocol.CheckSignature(v.Signature); v.Valid != (err == nil) {
			t.Errorf("%s: CheckSignature gives %v, file says valid %v", what, err, v.Valid)
		}
		if err := pub.Verify(v.Message, v.Signature); v.Valid != (err == nil) {
			t.Errorf("%s: Verify gives %v, file says valid %v", what, err, v.Valid)
		}
		if v.Valid && !ed25519.Verify(ed25519.PublicKey(v.Public), v.Message, v.Signature) {
			t.Errorf("%s: crypto/ed25519 refuses a valid signature", what)
		}
	}
}

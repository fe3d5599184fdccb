package protocol_test

// Fuzz targets for every decoder of untrusted bytes in package protocol (the
// wire.Reader is exercised through them). The property checked for each one
// is the same: either decoding fails and returns no result at all, or
// re-encoding the result gives back the input byte for byte (the encodings
// are canonical, so no two byte strings decode to the same value) and the
// result does not alias the input.
//
// Seeds: valid encodings built below (f.Add) and the committed corpus under
// testdata/fuzz/<FuzzName>/. The fixtures are deterministic (fixed seeds for
// every key) except where HPKE draws its ephemeral randomness.
//
// The targets whose encodings carry X-Wing keys or ciphertexts (pre-keys,
// bundles, distributions) take their input in the compact form of expand:
// see there why.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/internal/wire"
	"sandi.dev/protocol/secret"
)

// ---- deterministic fixtures shared by the tests of this package ----

const fixNow = 1_780_000_000 // Unix seconds

// fixedBytes derives n reproducible bytes from a label.
func fixedBytes(label string, n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		h := sha256.Sum256(fmt.Appendf(nil, "sandi protocol test %s %d", label, i))
		out = append(out, h[:]...)
	}
	return out[:n]
}

func fixedUser(label string) (u protocol.UserID) {
	copy(u[:], fixedBytes("user "+label, protocol.IDSize))
	return u
}

func fixedDevice(label string) (d protocol.DeviceID) {
	copy(d[:], fixedBytes("device "+label, protocol.IDSize))
	return d
}

func fixedConversation(label string) (c protocol.ConversationID) {
	copy(c[:], fixedBytes("conversation "+label, protocol.IDSize))
	return c
}

func fixedIdentity(tb testing.TB, label string) *secret.IdentityPrivateKey {
	tb.Helper()
	id, err := secret.IdentityFromSeed(fixedBytes("identity "+label, secret.SeedSize))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func fixedKEM(tb testing.TB, label string) *secret.KEMPrivateKey {
	tb.Helper()
	k, err := secret.KEMKeyFromSeed(fixedBytes("kem "+label, secret.SeedSize))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// tparty is one device of one account.
type tparty struct {
	name   string
	id     *secret.IdentityPrivateKey
	ref    protocol.DeviceRef
	bundle *protocol.Bundle // signed, last-resort and the one-time keys
	privs  secret.PreKeyPrivates
}

// newTParty builds a device with a deterministic bundle holding n one-time
// pre-keys. id may be shared between devices of one account (then user must
// be the same too).
func newTParty(tb testing.TB, name string, id *secret.IdentityPrivateKey, user protocol.UserID, n int) *tparty {
	tb.Helper()
	if id == nil {
		id = fixedIdentity(tb, name)
	}
	if user.IsZero() {
		user = fixedUser(name)
	}
	p := &tparty{name: name, id: id, ref: protocol.DeviceRef{User: user, Device: fixedDevice(name)}, privs: secret.PreKeyPrivates{}}
	b := &protocol.Bundle{User: user, Device: p.ref.Device, Identity: id.Public()}
	mk := func(kind protocol.PreKeyKind, keyID uint32) protocol.PreKey {
		k := fixedKEM(tb, fmt.Sprintf("%s %d", name, keyID))
		p.privs[keyID] = k
		return secret.SignPreKey(id, user, p.ref.Device, kind, keyID, fixNow, k)
	}
	b.Signed = mk(protocol.SignedPreKey, 1)
	b.LastResort = mk(protocol.LastResortPreKey, 2)
	for i := range n {
		b.OneTime = append(b.OneTime, mk(protocol.OneTimePreKey, uint32(3+i)))
	}
	if err := b.Verify(); err != nil {
		tb.Fatal(err)
	}
	p.bundle = b
	return p
}

// claimed returns the bundle as the server hands it out: at most the first
// one-time key.
func (p *tparty) claimed() *protocol.Bundle {
	b := *p.bundle
	if len(b.OneTime) > 1 {
		b.OneTime = b.OneTime[:1]
	}
	return &b
}

func (p *tparty) preKey(id uint32) (*secret.KEMPrivateKey, error) {
	if k, ok := p.privs[id]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%s has no pre-key %d", p.name, id)
}

func (p *tparty) member(role protocol.Role) protocol.Member {
	return protocol.Member{User: p.ref.User, Identity: p.id.Public(), Role: role}
}

func trefs(ps ...*tparty) []protocol.DeviceRef {
	out := make([]protocol.DeviceRef, len(ps))
	for i, p := range ps {
		out[i] = p.ref
	}
	return out
}

// signed signs rec with id and returns it.
func signed(id *secret.IdentityPrivateKey, rec *protocol.Record) *protocol.Record {
	secret.SignRecord(id, rec)
	return rec
}

// tGenesis creates a conversation whose admin is creator and whose other
// members are plain members.
func tGenesis(tb testing.TB, conv string, creator *tparty, others ...*tparty) (*protocol.Record, *protocol.Chain) {
	tb.Helper()
	rec := &protocol.Record{Op: protocol.OpCreate, Conversation: fixedConversation(conv), Time: fixNow * 1000, Author: creator.ref.User}
	rec.Members = append(rec.Members, creator.member(protocol.RoleAdmin))
	for _, o := range others {
		rec.Members = append(rec.Members, o.member(protocol.RoleMember))
	}
	signed(creator.id, rec)
	c, err := protocol.Genesis(rec)
	if err != nil {
		tb.Fatal(err)
	}
	return rec, c
}

// next returns a record following c, not yet signed.
func next(c *protocol.Chain, op protocol.Op, author *tparty) *protocol.Record {
	return &protocol.Record{Op: op, Conversation: c.Conversation, Seq: c.Seq + 1, Prev: c.Head, Time: fixNow*1000 + int64(c.Seq+1), Author: author.ref.User}
}

func tDistribute(tb testing.TB, creator *tparty, c *protocol.Chain, epoch uint64, devices ...*tparty) (*protocol.Distribution, *secret.EpochSecret) {
	tb.Helper()
	req := secret.EpochRequest{Chain: c, Epoch: epoch, Creator: creator.ref, Time: fixNow * 1000}
	for _, d := range devices {
		req.Bundles = append(req.Bundles, d.claimed())
	}
	d, s, err := secret.NewDistribution(creator.id, req)
	if err != nil {
		tb.Fatal(err)
	}
	return d, s
}

// tEpoch builds the epoch state of self from a fixed epoch secret, so that
// envelopes made with it are reproducible.
func tEpoch(tb testing.TB, label string, conv protocol.ConversationID, epoch uint64, self *tparty, devices ...*tparty) *secret.Epoch {
	tb.Helper()
	var s secret.EpochSecret
	copy(s[:], fixedBytes("epoch secret "+label, len(s)))
	e, err := secret.NewEpoch(&s, conv, epoch, self.ref, trefs(devices...))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// ---- valid encodings used as seeds ----

func preKeySeeds(tb testing.TB) [][]byte {
	a := newTParty(tb, "alice", nil, protocol.UserID{}, 1)
	b := a.bundle
	return [][]byte{b.Signed.Marshal(), b.LastResort.Marshal(), b.OneTime[0].Marshal()}
}

func bundleSeeds(tb testing.TB) [][]byte {
	a := newTParty(tb, "alice", nil, protocol.UserID{}, 2)
	b0 := *a.bundle
	b0.OneTime = nil
	return [][]byte{a.bundle.Marshal(), a.claimed().Marshal(), b0.Marshal()}
}

func recordSeeds(tb testing.TB) [][]byte {
	alice := newTParty(tb, "alice", nil, protocol.UserID{}, 0)
	bob := newTParty(tb, "bob", nil, protocol.UserID{}, 0)
	carol := newTParty(tb, "carol", nil, protocol.UserID{}, 0)
	g, c := tGenesis(tb, "seeds", alice, bob)
	add := next(c, protocol.OpAdd, alice)
	add.Members = []protocol.Member{carol.member(protocol.RoleMember)}
	signed(alice.id, add)
	c1, err := c.Apply(add)
	if err != nil {
		tb.Fatal(err)
	}
	rm := next(c1, protocol.OpRemove, alice)
	rm.Users = []protocol.UserID{bob.ref.User, carol.ref.User}
	signed(alice.id, rm)
	// A rekey signed by the new key alone, and one co-signed by the old.
	k2 := fixedIdentity(tb, "alice second")
	rk := next(c1, protocol.OpRekey, alice)
	rk.Members = []protocol.Member{{User: alice.ref.User, Identity: k2.Public(), Role: protocol.RoleMember}}
	signed(k2, rk)
	rkc := next(c1, protocol.OpRekey, alice)
	rkc.Members = []protocol.Member{{User: alice.ref.User, Identity: k2.Public(), Role: protocol.RoleAdmin}}
	secret.SignRekey(k2, alice.id, rkc)
	if _, err := c1.Apply(rkc); err != nil {
		tb.Fatal(err)
	}
	return [][]byte{g.Marshal(), add.Marshal(), rm.Marshal(), rk.Marshal(), rkc.Marshal()}
}

func distributionSeeds(tb testing.TB) [][]byte {
	alice := newTParty(tb, "alice", nil, protocol.UserID{}, 1)
	bob := newTParty(tb, "bob", nil, protocol.UserID{}, 1)
	bob2 := newTParty(tb, "bob2", bob.id, bob.ref.User, 1)
	_, c := tGenesis(tb, "seeds", alice, bob)
	d1, _ := tDistribute(tb, alice, c, 1, alice)
	d2, _ := tDistribute(tb, alice, c, 2, alice, bob, bob2)
	return [][]byte{d1.Marshal(), d2.Marshal()}
}

func envelopeSeeds(tb testing.TB) [][]byte {
	alice := newTParty(tb, "alice", nil, protocol.UserID{}, 0)
	bob := newTParty(tb, "bob", nil, protocol.UserID{}, 0)
	e := tEpoch(tb, "seeds", fixedConversation("seeds"), 1, alice, alice, bob)
	var out [][]byte
	for _, msg := range []string{"", "hello, bob", string(bytes.Repeat([]byte("0123456789"), 30))} {
		env, err := e.Encrypt(alice.id, []byte(msg))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, env.Marshal())
	}
	return out
}

func identityTextSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	for _, name := range []string{"alice", "bob"} {
		b, err := fixedIdentity(tb, name).Public().MarshalText()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func idTextSeeds(tb testing.TB) [][]byte {
	return [][]byte{[]byte(fixedUser("alice").String()), []byte(fixedDevice("bob").String()), []byte(fixedConversation("seeds").String())}
}

// ---- compact inputs ----

// blobEscape starts a reference in a compact fuzz input.
const blobEscape = 0xff

// expand turns a compact fuzz input into the bytes a decoder is given: 0xff
// followed by a byte k < len(blobs) stands for blobs[k], 0xff 0xff for one
// 0xff byte, and 0xff followed by anything else for itself. Every byte
// string is the expansion of some input (escape each 0xff), so the decoder
// still meets arbitrary bytes.
//
// Why: a pre-key carries a 1,216-byte X-Wing key and a distribution entry a
// 1,120-byte one, and decoding a pre-key validates its key (an ML-KEM-768
// matrix expansion by rejection sampling and an X25519 multiplication,
// 0.1 to 0.3 ms in the instrumented binary). Fed raw, these targets had
// inputs of 1.3 to 5 kB in which almost every mutation of a key's bytes
// changes how often the rejection-sampling loops run, which the engine
// counts as new coverage; it then minimizes that input for up to
// -fuzzminimizetime (60 s), and its minimizer tries a number of candidates
// quadratic in the length (about n²/2: 875,000 for one pre-key, 8 million
// for a bundle). Both workers were always minimizing and never fuzzing:
// FuzzParseBundle ran 6 to 20 inputs in 30 s. With the keys referenced,
// inputs are 100 to 400 bytes, a key is always one of a few fixed values
// (so the crypto's coverage is stable), and a minimization takes
// milliseconds.
func expand(in []byte, blobs [][]byte) []byte {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		if in[i] == blobEscape && i+1 < len(in) {
			if k := int(in[i+1]); k < len(blobs) {
				out = append(out, blobs[k]...)
				i++
				continue
			}
			if in[i+1] == blobEscape {
				i++
			}
		}
		out = append(out, in[i])
	}
	return out
}

// maxCompactInput is the longest compact input the targets try; a longer
// one is skipped at once, so it never shows new coverage and is never
// minimized. Ten one-time pre-keys fit; more only repeat the same code
// (the limits on counts are checked before the entries are read).
const maxCompactInput = 1024

// compact is the inverse of expand: it replaces each occurrence of a blob by
// its reference and escapes every 0xff byte.
func compact(raw []byte, blobs [][]byte) []byte {
	out := compactOf(raw, blobs)
	if !bytes.Equal(expand(out, blobs), raw) {
		panic("compact: expand does not give the input back")
	}
	return out
}

func compactOf(raw []byte, blobs [][]byte) []byte {
	var out []byte
next:
	for i := 0; i < len(raw); {
		for k, b := range blobs {
			if len(b) > 0 && bytes.HasPrefix(raw[i:], b) {
				out = append(out, blobEscape, byte(k))
				i += len(b)
				continue next
			}
		}
		if raw[i] == blobEscape {
			out = append(out, blobEscape)
		}
		out = append(out, raw[i])
		i++
	}
	return out
}

// kemBlobs are the X-Wing public keys a compact input can name: the valid
// keys of the fixture parties, one whose X25519 part is of small order and
// one whose ML-KEM part is not canonical (a coefficient of q = 3329).
func kemBlobs(tb testing.TB) [][]byte {
	var out [][]byte
	for _, p := range []*tparty{newTParty(tb, "alice", nil, protocol.UserID{}, 2), newTParty(tb, "bob", nil, protocol.UserID{}, 1)} {
		for _, k := range append([]protocol.PreKey{p.bundle.Signed, p.bundle.LastResort}, p.bundle.OneTime...) {
			out = append(out, k.Public.Bytes())
		}
	}
	small := bytes.Clone(out[0])
	clear(small[1184:]) // the X25519 point 0, of order 1
	bad := bytes.Clone(out[0])
	bad[0], bad[1] = 0x01, bad[1]&0xf0|0x0d // first 12-bit coefficient 0xd01 = 3329
	return append(out, small, bad)
}

// encBlobs are fixed X-Wing ciphertexts for distribution entries, which
// decoding does not check.
func encBlobs() [][]byte {
	return [][]byte{fixedBytes("enc 0", protocol.KEMEncSize), fixedBytes("enc 1", protocol.KEMEncSize), fixedBytes("enc 2", protocol.KEMEncSize)}
}

// ---- the property ----

// checkDecoder runs parse on in and checks: failure means a nil result;
// success means a non-nil result that re-encodes to exactly in and does not
// share memory with it.
func checkDecoder[T any](t *testing.T, in []byte, parse func([]byte) (*T, error), marshal func(*T) []byte) {
	t.Helper()
	buf := bytes.Clone(in) // the fuzz input itself must not be modified
	v, err := parse(buf)
	if err != nil {
		if v != nil {
			t.Fatalf("decoding failed (%v) but returned a partial result", err)
		}
		if !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("decoding error does not wrap a malformed-encoding error: %v", err)
		}
		return
	}
	if v == nil {
		t.Fatal("decoding returned neither a result nor an error")
	}
	for i := range buf {
		buf[i] = ^in[i] // the result must not alias the input buffer
	}
	if out := marshal(v); !bytes.Equal(out, in) {
		t.Fatalf("Marshal(decode(x)) != x\n   x: %x\n got: %x", in, out)
	}
}

// FuzzParsePreKey and FuzzParseBundle read compact inputs (expand) whose
// references name kemBlobs.
func FuzzParsePreKey(f *testing.F) {
	blobs := kemBlobs(f)
	for _, s := range preKeySeeds(f) {
		f.Add(compact(s, blobs))
	}
	// The signed pre-key with its key swapped for the two malformed ones.
	signed := compact(preKeySeeds(f)[0], blobs)
	for _, k := range []byte{byte(len(blobs) - 2), byte(len(blobs) - 1)} {
		f.Add(bytes.Replace(signed, []byte{blobEscape, 0}, []byte{blobEscape, k}, 1))
	}
	f.Add([]byte{})
	f.Add([]byte{byte(protocol.SignedPreKey)})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > maxCompactInput {
			return
		}
		checkDecoder(t, expand(in, blobs), protocol.ParsePreKey, (*protocol.PreKey).Marshal)
	})
}

func FuzzParseBundle(f *testing.F) {
	blobs := kemBlobs(f)
	for _, s := range bundleSeeds(f) {
		f.Add(compact(s, blobs))
	}
	f.Add([]byte{protocol.Version})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > maxCompactInput {
			return
		}
		checkDecoder(t, expand(in, blobs), protocol.ParseBundle, (*protocol.Bundle).Marshal)
	})
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range recordSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{protocol.Version, byte(protocol.OpCreate)})
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecoder(t, in, protocol.ParseRecord, (*protocol.Record).Marshal)
	})
}

// FuzzParseDistribution reads compact inputs whose references name
// encBlobs; the seeds carry those in place of the ciphertexts HPKE drew.
func FuzzParseDistribution(f *testing.F) {
	blobs := encBlobs()
	for _, s := range distributionSeeds(f) {
		d, err := protocol.ParseDistribution(s)
		if err != nil {
			f.Fatal(err)
		}
		for i := range d.Recipients {
			copy(d.Recipients[i].Enc[:], blobs[i%len(blobs)])
		}
		f.Add(compact(d.Marshal(), blobs))
	}
	f.Add([]byte{protocol.Version})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > maxCompactInput {
			return
		}
		checkDecoder(t, expand(in, blobs), protocol.ParseDistribution, (*protocol.Distribution).Marshal)
	})
}

func FuzzParseEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds(f) {
		f.Add(s)
	}
	f.Add(make([]byte, protocol.HeaderSize+4+protocol.SignatureSize))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecoder(t, in, protocol.ParseEnvelope, (*protocol.Envelope).Marshal)
		if len(in) > protocol.MaxEnvelopeSize {
			if _, err := protocol.ParseEnvelope(in); err == nil {
				t.Fatalf("envelope of %d bytes, over MaxEnvelopeSize, accepted", len(in))
			}
		}
	})
}

// FuzzIdentityKeyUnmarshalText: the text form "sandi-identity:" + base64url
// is accepted only in its canonical form (MarshalText gives the input back),
// and a refused text leaves no partial key behind (the receiver keeps its
// value, or is zeroed).
func FuzzIdentityKeyUnmarshalText(f *testing.F) {
	for _, s := range identityTextSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte("sandi-identity:"))
	f.Add([]byte("sandi-identity:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
	sentinel := fixedIdentity(f, "sentinel").Public()
	f.Fuzz(func(t *testing.T, in []byte) {
		k := sentinel
		err := k.UnmarshalText(bytes.Clone(in))
		if err != nil {
			if !errors.Is(err, protocol.ErrBadKey) {
				t.Fatalf("error does not wrap ErrBadKey: %v", err)
			}
			if k != sentinel && k != (protocol.IdentityKey{}) {
				t.Fatalf("refused text %q left a partial key %x", in, k[:])
			}
			return
		}
		out, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("non-canonical identity text accepted:\n  in: %q\n out: %q", in, out)
		}
		if _, err := protocol.ParseIdentityKey(k[:]); err != nil {
			t.Fatalf("accepted text gives an invalid key: %v", err)
		}
	})
}

// FuzzParseUserID covers the hex form of all three identifiers (one parser):
// accepted only in canonical form (32 lower-case hex digits, not all zero),
// and a refused text yields the zero id.
func FuzzParseUserID(f *testing.F) {
	for _, s := range idTextSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte("00000000000000000000000000000000"))
	f.Add([]byte("0123456789ABCDEF0123456789abcdef"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := string(in)
		u, uerr := protocol.ParseUserID(s)
		d, derr := protocol.ParseDeviceID(s)
		c, cerr := protocol.ParseConversationID(s)
		if (uerr == nil) != (derr == nil) || (uerr == nil) != (cerr == nil) {
			t.Fatalf("id parsers disagree on %q: %v / %v / %v", s, uerr, derr, cerr)
		}
		if uerr != nil {
			if !u.IsZero() || !d.IsZero() || !c.IsZero() {
				t.Fatalf("refused id %q left a partial value", s)
			}
			return
		}
		if u.IsZero() {
			t.Fatalf("all-zero id %q accepted", s)
		}
		for _, m := range []interface{ MarshalText() ([]byte, error) }{u, d, c} {
			out, err := m.MarshalText()
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("non-canonical id accepted: %q gives %q (%v)", in, out, err)
			}
		}
	})
}

func deviceListSeeds(tb testing.TB) [][]byte {
	id := fixedIdentity(tb, "alice")
	first := &protocol.DeviceList{User: fixedUser("alice"), Seq: 1, Time: fixNow * 1000, Devices: []protocol.DeviceID{fixedDevice("alice")}}
	secret.SignDeviceList(id, first)
	second := &protocol.DeviceList{User: first.User, Seq: 2, Time: fixNow*1000 + 1, Prev: first.Hash(),
		Devices: protocol.SortDevices([]protocol.DeviceID{fixedDevice("alice"), fixedDevice("alice 2"), fixedDevice("alice 3")})}
	secret.SignDeviceList(id, second)
	empty := &protocol.DeviceList{User: first.User, Seq: 3, Time: fixNow*1000 + 2, Prev: second.Hash()}
	secret.SignDeviceList(id, empty)
	return [][]byte{first.Marshal(), second.Marshal(), empty.Marshal()}
}

func FuzzParseDeviceList(f *testing.F) {
	for _, s := range deviceListSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{protocol.Version})
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecoder(t, in, protocol.ParseDeviceList, (*protocol.DeviceList).Marshal)
	})
}

func FuzzParseDeviceName(f *testing.F) {
	id := secret.NewIdentity()
	n := &protocol.DeviceName{User: fixedUser("alice"), Device: fixedDevice("alice"), Seq: 2, Time: fixNow * 1000, Name: "Chromium on Linux"}
	secret.SignDeviceName(id, n)
	f.Add(n.Marshal())
	f.Add([]byte{protocol.Version})
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecoder(t, in, protocol.ParseDeviceName, (*protocol.DeviceName).Marshal)
	})
}

func FuzzParseBlock(f *testing.F) {
	id := secret.NewIdentity()
	for _, blocked := range []bool{true, false} {
		b := &protocol.Block{User: fixedUser("alice"), Other: fixedUser("bob"), Blocked: blocked, Time: fixNow * 1000}
		secret.SignBlock(id, b)
		f.Add(b.Marshal())
	}
	f.Add([]byte{protocol.Version})
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecoder(t, in, protocol.ParseBlock, (*protocol.Block).Marshal)
	})
}

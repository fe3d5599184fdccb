package secret

// Fuzz targets for the decoders of package secret that read bytes it did not
// write itself in this run: the stored epoch state (UnmarshalEpoch), the
// padding of a decrypted message (Unpad), a typed link code (ParseLinkCode)
// and a sealed identity seed relayed by the server (OpenIdentity). Either the
// input is refused with no result, or the result re-encodes to the input.
//
// Seeds: valid encodings built below (f.Add) and the committed corpus under
// testdata/fuzz/<FuzzName>/. Keys come from fixed seeds, so the committed
// sealed identities open with the key rebuilt here.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"sandi.dev/protocol"
)

func fuzzSeed(label string) []byte {
	h := sha256.Sum256([]byte("sandi secret fuzz " + label))
	return h[:]
}

func fuzzRef(label string) protocol.DeviceRef {
	var r protocol.DeviceRef
	copy(r.User[:], fuzzSeed("user "+label))
	copy(r.Device[:], fuzzSeed("device "+label))
	return r
}

func fuzzIdentity(tb testing.TB, label string) *IdentityPrivateKey {
	tb.Helper()
	id, err := IdentityFromSeed(fuzzSeed("identity " + label))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func fuzzKEM(tb testing.TB, label string) *KEMPrivateKey {
	tb.Helper()
	k, err := KEMKeyFromSeed(fuzzSeed("kem " + label))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// epochStateSeeds returns stored epoch states: fresh, with pending skipped
// keys of two senders, and after sending.
func epochStateSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var s EpochSecret
	copy(s[:], fuzzSeed("epoch secret"))
	var conv protocol.ConversationID
	copy(conv[:], fuzzSeed("conversation"))
	a, b, c := fuzzRef("a"), fuzzRef("b"), fuzzRef("c")
	devs := []protocol.DeviceRef{a, b, c}
	mk := func(self protocol.DeviceRef) *Epoch {
		e, err := NewEpoch(&s, conv, 7, self, devs)
		if err != nil {
			tb.Fatal(err)
		}
		return e
	}
	ida, idc := fuzzIdentity(tb, "a"), fuzzIdentity(tb, "c")
	ea, eb, ec := mk(a), mk(b), mk(c)
	marshal := func(e *Epoch) []byte {
		out, err := e.MarshalBinary()
		if err != nil {
			tb.Fatal(err)
		}
		return out
	}
	fresh := marshal(eb)
	var fromA, fromC []*protocol.Envelope
	for range 6 {
		env, err := ea.Encrypt(ida, []byte("from a"))
		if err != nil {
			tb.Fatal(err)
		}
		fromA = append(fromA, env)
		if env, err = ec.Encrypt(idc, []byte("from c")); err != nil {
			tb.Fatal(err)
		}
		fromC = append(fromC, env)
	}
	for _, d := range []struct {
		env *protocol.Envelope
		id  *IdentityPrivateKey
	}{{fromA[5], ida}, {fromA[2], ida}, {fromC[3], idc}} {
		if _, err := eb.Decrypt(d.env, d.id.Public()); err != nil {
			tb.Fatal(err)
		}
	}
	pending := marshal(eb)
	if _, err := ea.Encrypt(ida, nil); err != nil {
		tb.Fatal(err)
	}
	// Skipped keys with times, then some expired (an expiry mark).
	eb.ExpireSkipped(1_780_000_000, 60)
	if _, err := eb.DecryptAt(fromA[0], ida.Public(), 1_780_000_030); err != nil {
		tb.Fatal(err)
	}
	timed := marshal(eb)
	eb.ExpireSkipped(1_780_000_061, 60)
	return [][]byte{fresh, pending, marshal(ea), timed, marshal(eb)}
}

func FuzzUnmarshalEpoch(f *testing.F) {
	for _, s := range epochStateSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{protocol.Version, epochStateTag})
	f.Fuzz(func(t *testing.T, in []byte) {
		buf := bytes.Clone(in)
		e, err := UnmarshalEpoch(buf)
		if err != nil {
			if e != nil {
				t.Fatalf("refused (%v) with a partial result", err)
			}
			return
		}
		if e == nil || e.chains[e.Self] == nil {
			t.Fatal("accepted state without this device's chain")
		}
		for ref, c := range e.chains {
			if len(c.skipped) > MaxSkip {
				t.Fatalf("chain %v keeps %d skipped keys, more than MaxSkip", ref, len(c.skipped))
			}
			for i := range c.skipped {
				if i >= c.next {
					t.Fatalf("skipped counter %d not below next %d", i, c.next)
				}
			}
		}
		for i := range buf {
			buf[i] = ^in[i] // the state must not alias its encoding
		}
		out, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if in[0] == epochStateV1 {
			// The old encoding is read and written as version 2, which
			// holds the same state and must itself round-trip.
			e2, err := UnmarshalEpoch(out)
			if err != nil || !e2.equal(e) {
				t.Fatalf("version 1 state re-encoded as %x: %v", out, err)
			}
			in = bytes.Clone(out)
			if out, err = e2.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("MarshalBinary(UnmarshalEpoch(x)) != x\n   x: %x\n got: %x", in, out)
		}
	})
}

func paddingSeeds() [][]byte {
	return [][]byte{Pad(nil), Pad([]byte("hello")), Pad(bytes.Repeat([]byte{0x80}, 63)), Pad(bytes.Repeat([]byte("x"), 300))}
}

// FuzzUnpad: Unpad accepts exactly the outputs of Pad (so the padding is
// canonical), and Pad then Unpad gives back any plaintext. The input is
// tried both as a padded message and as a plaintext.
func FuzzUnpad(f *testing.F) {
	for _, s := range paddingSeeds() {
		f.Add(s)
	}
	f.Add(make([]byte, MinPadded))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Unpad(bytes.Clone(in))
		if err != nil {
			if out != nil || !errors.Is(err, ErrPadding) {
				t.Fatalf("refused with %q, %v", out, err)
			}
		} else {
			if len(in) != PaddedLen(len(out)) || !bytes.Equal(Pad(out), in) {
				t.Fatalf("Unpad accepted a form Pad does not produce: %x gives %x", in, out)
			}
		}
		if len(in) <= MaxPlaintext {
			p := Pad(in)
			if len(p) != PaddedLen(len(in)) || len(p) < MinPadded {
				t.Fatalf("Pad(%d bytes) is %d bytes", len(in), len(p))
			}
			back, err := Unpad(p)
			if err != nil || !bytes.Equal(back, in) {
				t.Fatalf("Unpad(Pad(x)) = %x, %v; x = %x", back, err, in)
			}
		}
	})
}

// normalizeCode is the rule ParseLinkCode documents: dashes and spaces
// are ignored and ASCII letters compared without case; nothing else is.
func normalizeCode(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		switch {
		case c == '-' || c == ' ':
		case c >= 'a' && c <= 'z':
			sb.WriteByte(c - 'a' + 'A')
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// fuzzLinkKey is a fixed link key.
func fuzzLinkKey(n byte) LinkKey {
	var l LinkKey
	for i := range l.k {
		l.k[i] = n + byte(i)
	}
	return l
}

// FuzzParseLinkCode: a typed code is accepted exactly when, up to case,
// spaces and dashes, it is the canonical code of what it parses to.
func FuzzParseLinkCode(f *testing.F) {
	code := fuzzLinkKey(1).Code()
	f.Add([]byte(code))
	f.Add([]byte(strings.ToLower(strings.ReplaceAll(code, "-", " "))))
	f.Add([]byte(code + "\t"))
	f.Add([]byte("AAAAA-AAAAA-AAAAA-AAAAA-AAAAAB"))
	f.Add([]byte("AAAA-AAAA-AAAA-AAAA-AAAA"))
	f.Fuzz(func(t *testing.T, in []byte) {
		l, err := ParseLinkCode(string(in))
		if err != nil {
			if !errors.Is(err, ErrLinkCode) || l != (LinkKey{}) {
				t.Fatalf("refused %q with %v and a partial result", in, err)
			}
			return
		}
		if got := l.CompactCode(); got != normalizeCode(in) {
			t.Fatalf("accepted %q, canonical form %q", in, got)
		}
		if back, err := ParseLinkCode(l.Code()); err != nil || back != l {
			t.Fatalf("the code of %q does not parse back: %v", in, err)
		}
	})
}

// identityLink is the fixed setup of FuzzOpenIdentity.
type identityLink struct {
	tmp          *KEMPrivateKey
	id           *IdentityPrivateKey
	key          LinkKey
	user         protocol.UserID
	device, dev2 protocol.DeviceID
}

func newIdentityLink(tb testing.TB) identityLink {
	l := identityLink{tmp: fuzzKEM(tb, "link"), id: fuzzIdentity(tb, "link")}
	l.key = fuzzLinkKey(1)
	l.user, l.device, l.dev2 = fuzzRef("link").User, fuzzRef("link").Device, fuzzRef("link 2").Device
	return l
}

// sealedIdentitySeeds returns two sealings of the identity for the linked
// device (they open), one for another device and one under another link
// key (neither may open).
func sealedIdentitySeeds(tb testing.TB) [][]byte {
	l := newIdentityLink(tb)
	var out [][]byte
	for _, s := range []struct {
		dev protocol.DeviceID
		key LinkKey
	}{{l.device, l.key}, {l.device, l.key}, {l.dev2, l.key}, {l.device, fuzzLinkKey(2)}} {
		b, err := SealIdentity(l.id, l.tmp.Public(), l.user, s.dev, s.key)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzOpenIdentity: OpenIdentity refuses any length but the sealed size
// without a panic, returns nothing on failure, and on success returns the
// sealed identity only.
func FuzzOpenIdentity(f *testing.F) {
	l := newIdentityLink(f)
	seeds := sealedIdentitySeeds(f)
	if _, err := OpenIdentity(l.tmp, seeds[0], l.user, l.device, l.key); err != nil {
		f.Fatalf("control: %v", err)
	}
	if _, err := OpenIdentity(l.tmp, seeds[2], l.user, l.device, l.key); err == nil {
		f.Fatal("a sealing for another device opens")
	}
	if _, err := OpenIdentity(l.tmp, seeds[3], l.user, l.device, l.key); err == nil {
		f.Fatal("a sealing under another link key opens")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add(seeds[0][:len(seeds[0])-1])
	f.Add(append(bytes.Clone(seeds[0]), 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := OpenIdentity(l.tmp, bytes.Clone(in), l.user, l.device, l.key)
		if err != nil {
			if got != nil {
				t.Fatalf("refused (%v) with a result", err)
			}
			return
		}
		if len(in) != protocol.KEMEncSize+SeedSize+16 {
			t.Fatalf("opened a sealed key of %d bytes", len(in))
		}
		if got == nil || !got.Equal(l.id) {
			t.Fatal("opened to another identity")
		}
	})
}

// FuzzOpenIdentityWith: the sealed identity followed by a history
// transfer offer (§14.5) opens only at the two sizes it allows, returns
// nothing on failure, and on success the sealed identity and exactly the
// sealed extra.
func FuzzOpenIdentityWith(f *testing.F) {
	const extraSize = 48
	l := newIdentityLink(f)
	extra := bytes.Repeat([]byte{0xe7}, extraSize)
	with, err := SealIdentityWith(l.id, extra, l.tmp.Public(), l.user, l.device, l.key)
	if err != nil {
		f.Fatal(err)
	}
	if id, got, err := OpenIdentityWith(l.tmp, with, extraSize, l.user, l.device, l.key); err != nil || !id.Equal(l.id) || !bytes.Equal(got, extra) {
		f.Fatalf("control: %v", err)
	}
	other, err := SealIdentityWith(l.id, extra, l.tmp.Public(), l.user, l.dev2, l.key)
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := OpenIdentityWith(l.tmp, other, extraSize, l.user, l.device, l.key); err == nil {
		f.Fatal("a sealing for another device opens")
	}
	f.Add(with)
	f.Add(other)
	f.Add(sealedIdentitySeeds(f)[0])
	f.Add(with[:len(with)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		id, got, err := OpenIdentityWith(l.tmp, bytes.Clone(in), extraSize, l.user, l.device, l.key)
		if err != nil {
			if id != nil || got != nil {
				t.Fatalf("refused (%v) with a result", err)
			}
			return
		}
		switch len(in) {
		case SealedIdentitySize:
			if got != nil {
				t.Fatalf("opened %d extra bytes from a sealing without any", len(got))
			}
		case SealedIdentityOfferSize(extraSize):
			if !bytes.Equal(got, extra) {
				t.Fatal("opened to another extra")
			}
		default:
			t.Fatalf("opened a sealed key of %d bytes", len(in))
		}
		if id == nil || !id.Equal(l.id) {
			t.Fatal("opened to another identity")
		}
	})
}

package secret

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"sandi.dev/protocol"
)

func TestLinkKey(t *testing.T) {
	id := NewIdentity()
	tmp := NewKEMKey()
	user, dev := protocol.NewUserID(), protocol.NewDeviceID()
	l := NewLinkKey()
	code := l.Code()
	if len(code) != LinkCodeLength+4 || strings.Count(code, "-") != 4 || len(l.CompactCode()) != LinkCodeLength {
		t.Fatalf("code %q", code)
	}
	for _, typed := range []string{code, l.CompactCode(), strings.ToLower(strings.ReplaceAll(code, "-", " ")), " " + code[:3] + " - " + code[3:] + " "} {
		got, err := ParseLinkCode(typed)
		if err != nil || !got.Equal(l) {
			t.Fatalf("parse %q: %v", typed, err)
		}
	}
	tag := l.Tag(user, dev, tmp.Public())
	if len(tag) != LinkTagSize || !l.Verifies(user, dev, tmp.Public(), tag) {
		t.Fatal("the tag does not verify")
	}
	// The tag binds the key, the account, the device and the temporary key.
	other := NewKEMKey().Public()
	for name, ok := range map[string]bool{
		"another link key":       NewLinkKey().Verifies(user, dev, tmp.Public(), tag),
		"another account":        l.Verifies(protocol.NewUserID(), dev, tmp.Public(), tag),
		"another device":         l.Verifies(user, protocol.NewDeviceID(), tmp.Public(), tag),
		"another temporary key":  l.Verifies(user, dev, other, tag),
		"a truncated tag":        l.Verifies(user, dev, tmp.Public(), tag[:LinkTagSize-1]),
		"a tag with one bit off": l.Verifies(user, dev, tmp.Public(), append(bytes.Clone(tag[:LinkTagSize-1]), tag[LinkTagSize-1]^1)),
	} {
		if ok {
			t.Errorf("the tag verifies for %s", name)
		}
	}

	sealed, err := SealIdentity(id, tmp.Public(), user, dev, l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenIdentity(tmp, sealed, user, dev, l)
	if err != nil || !got.Equal(id) {
		t.Fatalf("open: %v", err)
	}
	// Without the link key, a seal made to the same temporary key does not
	// open: a server that relays requests cannot hand over an identity.
	forged, err := SealIdentity(NewIdentity(), tmp.Public(), user, dev, NewLinkKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenIdentity(tmp, forged, user, dev, l); err == nil {
		t.Fatal("a seal under another link key opened")
	}
}

func TestParseLinkCodeRefuses(t *testing.T) {
	l := NewLinkKey()
	code, compact := l.Code(), l.CompactCode()
	last := compact[LinkCodeLength-1]
	// The last character carries 2 bits that must be zero: flip one.
	idx := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", last)
	nonCanonical := compact[:LinkCodeLength-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[idx^1])
	for _, bad := range []string{
		"", "AAAA", compact[:LinkCodeLength-1], compact + "A", code + "-A",
		nonCanonical,
		strings.Replace(compact, compact[:1], "1", 1), // not in the alphabet
		strings.Replace(compact, compact[:1], "0", 1),
		compact[:10] + "\t" + compact[10:],     // only dashes and spaces are ignored
		compact[:10] + "_" + compact[10:],      //
		compact[:10] + "\u00a0" + compact[10:], // no other space
		compact + "=",                          // no padding
		"AAAA-AAAA-AAAA-AAAA-AAAA",             // the 20-character form of an older code
	} {
		if got, err := ParseLinkCode(bad); !errors.Is(err, ErrLinkCode) || !got.Equal(LinkKey{}) {
			t.Errorf("ParseLinkCode(%q) = %v", bad, err)
		}
	}
}

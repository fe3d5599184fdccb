package secret

import (
	"errors"
	"strings"
	"testing"

	"sandi.dev/protocol"
)

func TestLinkSecret(t *testing.T) {
	id := NewIdentity()
	tmp := NewKEMKey()
	user, dev := protocol.NewUserID(), protocol.NewDeviceID()
	l := NewLinkSecret(tmp.Public())
	code := l.Code()
	if len(code) != 24 {
		t.Fatalf("code %q", code)
	}
	typed, err := ParseLinkSecret(strings.ToLower(strings.ReplaceAll(code, "-", " ")))
	if err != nil || typed != l || !typed.Selects(tmp.Public()) {
		t.Fatalf("parse %q: %v", code, err)
	}
	if typed.Selects(NewKEMKey().Public()) {
		t.Fatal("selector matches another key")
	}
	sealed, err := SealIdentity(id, tmp.Public(), user, dev, typed)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenIdentity(tmp, sealed, user, dev, l)
	if err != nil || !got.Equal(id) {
		t.Fatalf("open: %v", err)
	}
	// Without the code's secret, a seal made to the same key does not open:
	// a server that relays requests cannot forge an identity.
	other := NewLinkSecret(tmp.Public())
	forged, err := SealIdentity(NewIdentity(), tmp.Public(), user, dev, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenIdentity(tmp, forged, user, dev, l); err == nil {
		t.Fatal("a seal under another secret opened")
	}
	for _, bad := range []string{"", "AAAA", code + "A", strings.Replace(code, code[:1], "1", 1)} {
		if _, err := ParseLinkSecret(bad); !errors.Is(err, ErrLinkCode) {
			t.Errorf("ParseLinkSecret(%q) = %v", bad, err)
		}
	}
}

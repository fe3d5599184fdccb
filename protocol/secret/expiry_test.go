package secret

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/internal/wire"
)

// TestSkippedKeysExpire: a skipped message key is kept for maxAge seconds
// after it was stored (§8.3), then erased; the withheld message that arrives
// later is ErrExpired, never decrypted and never a crash; a message within
// the lifetime still decrypts; the stored state keeps times and mark.
func TestSkippedKeysExpire(t *testing.T) {
	const t0, maxAge = int64(1_780_000_000), int64(7 * 24 * 3600)
	alice, _, ea, eb := senderAndReceiver(t)
	pub := alice.id.Public()
	var envs []*protocol.Envelope
	for i := range 8 {
		envs = append(envs, encrypt(t, ea, alice.id, fmt.Sprint("m", i)))
	}
	// m5 arrives first: 0..4 are skipped at t0; m7 a day later skips 6.
	if _, err := eb.DecryptAt(envs[5], pub, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.DecryptAt(envs[7], pub, t0+86400); err != nil {
		t.Fatal(err)
	}
	if pt, err := eb.DecryptAt(envs[2], pub, t0+3600); err != nil || string(pt) != "m2" {
		t.Fatalf("m2 within its lifetime: %q %v", pt, err)
	}
	if eb.ExpireSkipped(t0+maxAge, maxAge) || eb.Skipped() != 5 {
		t.Fatalf("keys erased at exactly their lifetime: %d left", eb.Skipped())
	}
	if !eb.ExpireSkipped(t0+maxAge+1, maxAge) || eb.Skipped() != 1 {
		t.Fatalf("after the lifetime of 0..4: %d skipped keys left, want 1 (of m6)", eb.Skipped())
	}
	stored := cloneEpoch(t, eb)
	if !stored.equal(eb) {
		t.Fatal("the stored state lost skipped-key times or the expiry mark")
	}
	for _, e := range []*Epoch{eb, stored} {
		for _, i := range []int{0, 4} {
			if pt, err := e.DecryptAt(envs[i], pub, t0+maxAge+2); !errors.Is(err, ErrExpired) || pt != nil {
				t.Fatalf("withheld m%d after its key expired: %q, %v; want ErrExpired", i, pt, err)
			}
		}
		if _, err := e.DecryptAt(envs[7], pub, t0+maxAge+2); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("m7 again: %v; want ErrDuplicate (above the expiry mark)", err)
		}
		mustDecrypt(t, e, envs[6], pub, "m6")
	}
}

// TestEpochStateV1: a state stored in version 1 of §8.5 (no times, no
// expiry mark) is read; its skipped keys get a time at the first
// ExpireSkipped and expire maxAge after that; it is written as version 2.
func TestEpochStateV1(t *testing.T) {
	const t0, maxAge = int64(1_780_000_000), int64(3600)
	alice, _, ea, eb := senderAndReceiver(t)
	pub := alice.id.Public()
	var envs []*protocol.Envelope
	for i := range 4 {
		envs = append(envs, encrypt(t, ea, alice.id, fmt.Sprint("m", i)))
	}
	mustDecrypt(t, eb, envs[3], pub, "m3")
	// Version 1, as earlier code wrote it.
	w := wire.NewBuilder(256)
	w.U8(1)
	w.U8(epochStateTag)
	w.Fixed(eb.Conversation[:])
	w.U64(eb.Number)
	w.Fixed(eb.Self.User[:])
	w.Fixed(eb.Self.Device[:])
	w.U16(uint16(len(eb.chains)))
	for _, ref := range sortedRefs(eb.chains) {
		c := eb.chains[ref]
		w.Fixed(ref.User[:])
		w.Fixed(ref.Device[:])
		w.U32(c.next)
		w.Fixed(c.key[:])
		w.U16(uint16(len(c.skipped)))
		for _, i := range slices.Sorted(maps.Keys(c.skipped)) {
			k := c.skipped[i]
			w.U32(i)
			w.Fixed(k[:])
		}
	}
	old, err := UnmarshalEpoch(w.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !old.equal(eb) || old.Skipped() != 3 {
		t.Fatal("version 1 state read wrong")
	}
	if b, _ := old.MarshalBinary(); b[0] != 2 {
		t.Fatalf("written as version %d", b[0])
	}
	if !old.ExpireSkipped(t0+1_000_000, maxAge) || old.Skipped() != 3 {
		t.Fatal("the first expiry must give the old keys a time, not erase them")
	}
	mustDecrypt(t, old, envs[1], pub, "m1")
	old.ExpireSkipped(t0+1_000_000+maxAge+1, maxAge)
	if old.Skipped() != 0 {
		t.Fatalf("%d skipped keys after their lifetime", old.Skipped())
	}
	if _, err := old.Decrypt(envs[0], pub); !errors.Is(err, ErrExpired) {
		t.Fatalf("m0 after expiry: %v", err)
	}
}

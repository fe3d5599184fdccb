package storetest

import (
	"slices"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// testOneTimeCap: the per-device cap on one-time keys (uploads and
// bundles past it are refused whole), the kept count through every write
// that adds or takes keys, claims served without a one-time key, and
// Contacts.
func testOneTimeCap(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice := f.user(2, false)
	dev := alice.Devs[0]
	f.bundle(alice, dev, 5) // ids 1..5
	count := func(d protocol.DeviceID, want int, what string) {
		t.Helper()
		if n, err := s.CountOneTimeKeys(ctx, d); err != nil || n != want {
			t.Fatalf("%s: CountOneTimeKeys = %d, %v; want %d", what, n, err, want)
		}
	}
	rows := func(from, n int) []store.PreKeyRow {
		var out []store.PreKeyRow
		for i := range n {
			out = append(out, store.PreKeyRow{ID: uint32(from + i), Encoded: random(24)})
		}
		return out
	}

	// AddOneTimeKeys: up to the cap, then refused whole.
	if n, err := s.AddOneTimeKeys(ctx, dev, rows(10, 4), 10); err != nil || n != 9 {
		t.Fatalf("AddOneTimeKeys to 9 of 10 = %d, %v", n, err)
	}
	_, err := s.AddOneTimeKeys(ctx, dev, rows(20, 2), 10)
	wantErr(t, "AddOneTimeKeys past the cap", err, store.ErrTooManyKeys)
	count(dev, 9, "after a refused upload")
	if n, err := s.AddOneTimeKeys(ctx, dev, rows(20, 1), 10); err != nil || n != 10 {
		t.Fatalf("AddOneTimeKeys to the cap = %d, %v", n, err)
	}

	// A bundle: ids held already are replaced and not counted again; new
	// ids past the cap refuse the whole bundle (its signed pre-key too).
	b := f.bundleUpload(alice, dev, alice.Key, 5) // ids 1..5, all held
	b.MaxOneTime = 10
	if err := s.PutBundle(ctx, b); err != nil {
		t.Fatalf("a bundle replacing held ids at the cap: %v", err)
	}
	count(dev, 10, "after a bundle of held ids")
	before, _ := s.Devices(ctx, alice.ID)
	b = f.bundleUpload(alice, dev, alice.Key, 6) // id 6 is new
	b.MaxOneTime = 10
	wantErr(t, "a bundle past the cap", s.PutBundle(ctx, b), store.ErrTooManyKeys)
	after, _ := s.Devices(ctx, alice.ID)
	if !slices.EqualFunc(before, after, func(x, y store.Device) bool { return string(x.SignedPreKey) == string(y.SignedPreKey) }) {
		t.Fatalf("a refused bundle replaced the signed pre-key")
	}
	count(dev, 10, "after a refused bundle")
	b.MaxOneTime = 0 // no cap
	if err := s.PutBundle(ctx, b); err != nil {
		t.Fatal(err)
	}
	count(dev, 11, "after an uncapped bundle")

	// ClaimBundles: a signed-only device keeps its keys; the others give
	// one each, and the count follows.
	f.bundle(alice, alice.Devs[1], 3)
	cs, err := s.ClaimBundles(ctx, alice.Devs, map[protocol.DeviceID]bool{dev: true}, 0, f.tick())
	if err != nil || len(cs) != 2 {
		t.Fatalf("ClaimBundles: %v", err)
	}
	if cs[0].OneTime != nil || cs[0].Remaining != 11 || len(cs[0].SignedPreKey) == 0 {
		t.Fatalf("signed-only claim %+v: want no one-time key, 11 left", cs[0])
	}
	if cs[1].OneTime == nil || cs[1].Remaining != 2 {
		t.Fatalf("claim %+v: want a one-time key, 2 left", cs[1])
	}
	count(dev, 11, "after a signed-only claim")
	count(alice.Devs[1], 2, "after a claim")
	for i := range 11 {
		cs, err := s.Claim(ctx, []protocol.DeviceID{dev}, 0, f.tick())
		if err != nil || cs[0].OneTime == nil || cs[0].Remaining != 10-i {
			t.Fatalf("claim %d: %+v, %v", i, cs, err)
		}
	}
	cs, err = s.Claim(ctx, []protocol.DeviceID{dev}, 0, f.tick())
	if err != nil || cs[0].OneTime != nil || cs[0].Remaining != 0 {
		t.Fatalf("claim past the last key: %+v, %v", cs, err)
	}
	count(dev, 0, "after the last claim")

	// An identity reset empties the device's keys and revokes the other
	// device (whose keys go with it): both counts follow.
	if _, err := s.AddOneTimeKeys(ctx, dev, rows(100, 3), 0); err != nil {
		t.Fatal(err)
	}
	r := f.bundleUpload(alice, dev, newIdentity(), 2)
	r.Reset = true
	if err := s.PutBundle(ctx, r); err != nil {
		t.Fatal(err)
	}
	count(dev, 2, "after a reset with 2 keys")
	count(alice.Devs[1], 0, "a device revoked by a reset")
	if err := s.RevokeDevice(ctx, alice.ID, dev, f.tick()); err != nil {
		t.Fatal(err)
	}
	count(dev, 0, "a revoked device")
	count(protocol.NewDeviceID(), 0, "an unknown device")

	// Contacts: the user itself and those sharing a current conversation.
	bob, carol, dave := f.user(1, true), f.user(1, true), f.user(1, true)
	conv := f.conversation(bob, carol)
	f.conversation(carol, dave)
	got, err := s.Contacts(ctx, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.UserID{bob.ID, carol.ID}
	sortIDs := func(ids []protocol.UserID) {
		slices.SortFunc(ids, func(a, b protocol.UserID) int { return compareIDs(a[:], b[:]) })
	}
	sortIDs(got)
	sortIDs(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Contacts(bob) = %v, want %v", got, want)
	}
	f.change(conv, bob) // carol removed
	if got, _ := s.Contacts(ctx, bob.ID); !slices.Equal(got, []protocol.UserID{bob.ID}) {
		t.Fatalf("Contacts(bob) after carol left = %v", got)
	}
	if got, _ := s.Contacts(ctx, alice.ID); !slices.Equal(got, []protocol.UserID{alice.ID}) {
		t.Fatalf("Contacts of a user without conversations = %v", got)
	}
}

func compareIDs(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return len(a) - len(b)
}

package storetest

import (
	"bytes"
	"errors"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// testUsers: accounts, devices and tokens.
func testUsers(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx

	alice := f.user(1, false)
	u, err := s.UserByName(ctx, alice.Name)
	if err != nil || u.ID != alice.ID || u.Username != alice.Name || u.PasswordHash != "$argon2id$test" {
		t.Fatalf("UserByName = %+v, %v", u, err)
	}
	if u.Identity != nil {
		t.Fatalf("a new account has identity %x, want none until its first bundle", *u.Identity)
	}
	if u2, err := s.User(ctx, alice.ID); err != nil || u2.Username != alice.Name || u2.CreatedAt != u.CreatedAt {
		t.Fatalf("User = %+v, %v", u2, err)
	}
	_, err = s.User(ctx, protocol.NewUserID())
	wantErr(t, "User(unknown)", err, store.ErrNotFound)
	_, err = s.UserByName(ctx, "nobody")
	wantErr(t, "UserByName(unknown)", err, store.ErrNotFound)

	// A taken username is refused whole: neither the account nor its
	// device nor its token is written.
	dup := store.Device{ID: protocol.NewDeviceID(), Name: "x", CreatedAt: f.tick()}
	dupTok := random(32)
	other := protocol.NewUserID()
	dup.User = other
	err = s.CreateUser(ctx, store.User{ID: other, Username: alice.Name, PasswordHash: "h", CreatedAt: f.now}, dup, dupTok)
	wantErr(t, "CreateUser(taken username)", err, store.ErrConflict)
	if _, err := s.DeviceByToken(ctx, dupTok); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused account's token resolves: %v", err)
	}
	if _, err := s.User(ctx, other); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused account exists: %v", err)
	}

	d, err := s.DeviceByToken(ctx, alice.Toks[0])
	if err != nil || d.ID != alice.Devs[0] || d.User != alice.ID || d.Name != "dev0" || d.Revoked || d.SignedPreKey != nil {
		t.Fatalf("DeviceByToken = %+v, %v", d, err)
	}

	d2 := f.device(alice, false)
	devs, err := s.Devices(ctx, alice.ID)
	if err != nil || len(devs) != 2 || devs[0].ID != alice.Devs[0] || devs[1].ID != d2 {
		t.Fatalf("Devices = %+v, %v; want the two devices, oldest first", devs, err)
	}
	_, err = s.Devices(ctx, protocol.NewUserID())
	wantErr(t, "Devices(unknown user)", err, store.ErrNotFound)

	err = s.AddDevice(ctx, store.Device{ID: protocol.NewDeviceID(), User: protocol.NewUserID(), Name: "x"}, random(32), 0)
	wantErr(t, "AddDevice(unknown user)", err, store.ErrNotFound)
	err = s.AddDevice(ctx, store.Device{ID: d2, User: alice.ID, Name: "again"}, random(32), 0)
	wantErr(t, "AddDevice(taken device id)", err, store.ErrConflict)
	d3 := protocol.NewDeviceID()
	err = s.AddDevice(ctx, store.Device{ID: d3, User: alice.ID, Name: "x"}, alice.Toks[0], 0)
	wantErr(t, "AddDevice(taken token)", err, store.ErrConflict)
	if devs, _ := s.Devices(ctx, alice.ID); len(devs) != 2 {
		t.Fatalf("a device whose token was refused was added: %d devices", len(devs))
	}

	if err := s.DeleteToken(ctx, alice.Toks[0]); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	_, err = s.DeviceByToken(ctx, alice.Toks[0])
	wantErr(t, "DeviceByToken(deleted)", err, store.ErrNotFound)
	if d, err := s.DeviceByToken(ctx, alice.Toks[1]); err != nil || d.ID != d2 {
		t.Fatalf("the other device's token: %+v, %v", d, err)
	}
	wantErr(t, "DeleteToken(again)", s.DeleteToken(ctx, alice.Toks[0]), store.ErrNotFound)
}

// testIdentity: the account's identity key is set by its first bundle, in
// the same transaction, and every later bundle must carry the same key
// (DESIGN.md §1, defect 1).
func testIdentity(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice := f.user(2, false)
	d1, d2 := alice.Devs[0], alice.Devs[1]

	if err := s.PutBundle(ctx, f.bundleUpload(alice, d1, alice.Key, 5)); err != nil {
		t.Fatalf("first bundle: %v", err)
	}
	for _, get := range []func() (store.User, error){
		func() (store.User, error) { return s.User(ctx, alice.ID) },
		func() (store.User, error) { return s.UserByName(ctx, alice.Name) },
	} {
		u, err := get()
		if err != nil || u.Identity == nil || *u.Identity != alice.Key {
			t.Fatalf("after the first bundle the account serves identity %v (%v), want %x", u.Identity, err, alice.Key)
		}
	}
	if n, err := s.CountOneTimeKeys(ctx, d1); err != nil || n != 5 {
		t.Fatalf("CountOneTimeKeys = %d, %v; want 5", n, err)
	}

	// Re-upload with the same key: new signed pre-key; keys 3..7 replace
	// 3..5 and add 6, 7.
	b := f.bundleUpload(alice, d1, alice.Key, 0)
	for id := uint32(3); id <= 7; id++ {
		b.OneTime = append(b.OneTime, store.PreKeyRow{ID: id, Encoded: random(24)})
	}
	if err := s.PutBundle(ctx, b); err != nil {
		t.Fatalf("re-upload: %v", err)
	}
	if n, _ := s.CountOneTimeKeys(ctx, d1); n != 7 {
		t.Fatalf("after re-upload: %d one-time keys, want 7", n)
	}
	devs, _ := s.Devices(ctx, alice.ID)
	if !bytes.Equal(devs[0].SignedPreKey, b.SignedPreKey) || !bytes.Equal(devs[0].LastResort, b.LastResort) {
		t.Fatalf("the re-uploaded signed pre-key is not served")
	}

	// A different key from the second device is refused and changes nothing.
	other := newIdentity()
	err := s.PutBundle(ctx, f.bundleUpload(alice, d2, other, 5))
	wantErr(t, "bundle with another identity", err, store.ErrIdentityMismatch)
	u, _ := s.User(ctx, alice.ID)
	if *u.Identity != alice.Key {
		t.Fatalf("a refused bundle changed the identity")
	}
	devs, _ = s.Devices(ctx, alice.ID)
	if devs[1].SignedPreKey != nil {
		t.Fatalf("a refused bundle stored its signed pre-key")
	}
	if n, _ := s.CountOneTimeKeys(ctx, d2); n != 0 {
		t.Fatalf("a refused bundle stored %d one-time keys", n)
	}
	// The same key from the second device (a linked device) is accepted.
	if err := s.PutBundle(ctx, f.bundleUpload(alice, d2, alice.Key, 5)); err != nil {
		t.Fatalf("linked device bundle: %v", err)
	}

	bob := f.user(1, false)
	err = s.PutBundle(ctx, f.bundleUpload(alice, bob.Devs[0], alice.Key, 1))
	wantErr(t, "bundle for another account's device", err, store.ErrNotFound)
	err = s.PutBundle(ctx, f.bundleUpload(alice, protocol.NewDeviceID(), alice.Key, 1))
	wantErr(t, "bundle for an unknown device", err, store.ErrNotFound)
	ghost := &acct{ID: protocol.NewUserID()}
	err = s.PutBundle(ctx, f.bundleUpload(ghost, d1, alice.Key, 1))
	wantErr(t, "bundle for an unknown account", err, store.ErrNotFound)
}

// testIdentityReset: a reset replaces the key, revokes the account's other
// devices with their tokens and keys, and tells the contacts.
func testIdentityReset(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice := f.user(2, true)
	d3 := f.device(alice, false)
	bob := f.user(1, true)
	carol := f.user(1, true) // shares no conversation with alice
	conv := f.conversation(bob, alice)
	since := f.lastEvent()

	newKey := newIdentity()
	b := f.bundleUpload(alice, d3, newKey, 3)
	err := s.PutBundle(ctx, b)
	wantErr(t, "bundle with a new key, no reset", err, store.ErrIdentityMismatch)
	b.Reset = true
	if err := s.PutBundle(ctx, b); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if u, _ := s.User(ctx, alice.ID); u.Identity == nil || *u.Identity != newKey {
		t.Fatalf("after reset the identity is %v, want the new key", u.Identity)
	}
	devs, _ := s.Devices(ctx, alice.ID)
	if len(devs) != 1 || devs[0].ID != d3 {
		t.Fatalf("after reset the active devices are %+v, want only the resetting one", devs)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.DeviceByToken(ctx, alice.Toks[i]); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a revoked device's token still resolves: %v", err)
		}
		if n, _ := s.CountOneTimeKeys(ctx, alice.Devs[i]); n != 0 {
			t.Fatalf("a revoked device keeps %d one-time keys", n)
		}
	}
	if d, err := s.DeviceByToken(ctx, alice.Toks[2]); err != nil || d.ID != d3 {
		t.Fatalf("the resetting device's token: %v", err)
	}
	_, err = s.Claim(ctx, []protocol.DeviceID{alice.Devs[0]}, 0, 1)
	wantErr(t, "claim of a revoked device", err, store.ErrNotFound)
	err = s.PutBundle(ctx, f.bundleUpload(alice, alice.Devs[0], newKey, 1))
	wantErr(t, "bundle from a revoked device", err, store.ErrNotFound)

	evs := f.sync(bob, 0, since)
	ic := ofKind(evs, store.EventIdentityChanged)
	if len(ic) != 1 || ic[0].User == nil || *ic[0].User != alice.ID {
		t.Fatalf("bob's identity_changed events: %+v, want one naming alice", ic)
	}
	if n := kinds(f.sync(carol, 0, since))[store.EventIdentityChanged]; n != 0 {
		t.Fatalf("carol, who shares no conversation with alice, got %d identity_changed events", n)
	}
	c := f.conv(conv)
	if !c.RotationRequired || c.RotationReason != "identity" {
		t.Fatalf("after alice's reset the shared conversation has rotation %v %q, want required for \"identity\"", c.RotationRequired, c.RotationReason)
	}
	// The next epoch must cover alice's remaining device and not the
	// revoked ones.
	ns := f.nextSession(conv, bob, bob)
	err = s.AddSession(ctx, ns)
	var ce *store.CoverageError
	if !errors.As(err, &ce) || len(ce.Missing) != 1 || ce.Missing[0] != d3 || len(ce.Extra) != 0 {
		t.Fatalf("session without alice's new device: %v, want Missing=[%s]", err, d3)
	}
}

// testConcurrentIdentities: two devices of a new account upload bundles
// with different identity keys at the same moment. Exactly one wins and the
// state is the winner's whole: its key, its bundle, nothing of the loser.
func testConcurrentIdentities(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	for round := 0; round < 20; round++ {
		a := f.user(2, false)
		keys := []protocol.IdentityKey{newIdentity(), newIdentity()}
		ups := []store.BundleUpload{f.bundleUpload(a, a.Devs[0], keys[0], 5), f.bundleUpload(a, a.Devs[1], keys[1], 5)}
		errs := atOnce(2, func(i int) error { return s.PutBundle(ctx, ups[i]) })
		win := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if win >= 0 {
					t.Fatalf("round %d: both bundles with different identities were accepted", round)
				}
				win = i
			case !errors.Is(err, store.ErrIdentityMismatch):
				t.Fatalf("round %d: bundle %d: %v", round, i, err)
			}
		}
		if win < 0 {
			t.Fatalf("round %d: both bundles refused: %v", round, errs)
		}
		lose := 1 - win
		u, _ := s.User(ctx, a.ID)
		if u.Identity == nil || *u.Identity != keys[win] {
			t.Fatalf("round %d: identity is not the winner's", round)
		}
		devs, _ := s.Devices(ctx, a.ID)
		for _, d := range devs {
			has := d.SignedPreKey != nil
			if d.ID == a.Devs[win] && (!has || !bytes.Equal(d.SignedPreKey, ups[win].SignedPreKey)) {
				t.Fatalf("round %d: the winner's bundle is not stored", round)
			}
			if d.ID == a.Devs[lose] && has {
				t.Fatalf("round %d: the loser's bundle is stored", round)
			}
		}
		if n, _ := s.CountOneTimeKeys(ctx, a.Devs[lose]); n != 0 {
			t.Fatalf("round %d: the loser's device has %d one-time keys", round, n)
		}
	}
}

// testOneTimeKeys: upload, count, claim order and the prekeys_low event.
func testOneTimeKeys(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice := f.user(1, false)
	bob := f.user(2, true)
	dev := alice.Devs[0]

	_, err := s.Claim(ctx, []protocol.DeviceID{dev}, 0, 1)
	wantErr(t, "claim of a device without a bundle", err, store.ErrNotFound)
	f.bundle(alice, dev, 3)

	n, err := s.AddOneTimeKeys(ctx, dev, []store.PreKeyRow{{ID: 10, Encoded: random(24)}, {ID: 11, Encoded: random(24)}}, 0)
	if err != nil || n != 5 {
		t.Fatalf("AddOneTimeKeys = %d, %v; want 5", n, err)
	}
	// One id already present: the whole upload is refused.
	_, err = s.AddOneTimeKeys(ctx, dev, []store.PreKeyRow{{ID: 12, Encoded: random(24)}, {ID: 10, Encoded: random(24)}}, 0)
	wantErr(t, "AddOneTimeKeys(existing id)", err, store.ErrConflict)
	if n, _ := s.CountOneTimeKeys(ctx, dev); n != 5 {
		t.Fatalf("a refused upload changed the count to %d", n)
	}
	_, err = s.AddOneTimeKeys(ctx, protocol.NewDeviceID(), []store.PreKeyRow{{ID: 1, Encoded: random(24)}}, 0)
	wantErr(t, "AddOneTimeKeys(unknown device)", err, store.ErrNotFound)

	// A claim of several devices answers in their order; a failing device
	// fails the whole claim.
	_, err = s.Claim(ctx, []protocol.DeviceID{bob.Devs[0], protocol.NewDeviceID()}, 0, 1)
	wantErr(t, "claim with an unknown device", err, store.ErrNotFound)
	if n, _ := s.CountOneTimeKeys(ctx, bob.Devs[0]); n != 10 {
		t.Fatalf("a failed claim consumed a key: %d left, want 10", n)
	}
	order := []protocol.DeviceID{bob.Devs[1], dev, bob.Devs[0]}
	cs, err := s.Claim(ctx, order, 0, 1)
	if err != nil || len(cs) != 3 {
		t.Fatalf("claim: %v", err)
	}
	devs, _ := s.Devices(ctx, bob.ID)
	for i, c := range cs {
		if c.Device != order[i] || c.OneTime == nil || len(c.SignedPreKey) == 0 || len(c.LastResort) == 0 {
			t.Fatalf("claim %d = %+v, want device %s with keys", i, c, order[i])
		}
		for _, d := range devs {
			if d.ID == c.Device && !bytes.Equal(d.SignedPreKey, c.SignedPreKey) {
				t.Fatalf("claim returned another signed pre-key than the device's")
			}
		}
	}
	if cs[1].OneTime.ID != 1 || cs[1].Remaining != 4 {
		t.Fatalf("alice's claim: key %d, %d left; want key 1, 4 left", cs[1].OneTime.ID, cs[1].Remaining)
	}

	// prekeys_low: emitted once when the count falls below the low water
	// mark, again only after an upload.
	since := f.lastEvent()
	low := func() int { return kinds(f.sync(alice, 0, since))[store.EventPreKeysLow] }
	for i := 0; i < 3; i++ { // 4 -> 1 left, below 3 at the second claim
		if _, err := s.Claim(ctx, []protocol.DeviceID{dev}, 3, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := low(); n != 1 {
		t.Fatalf("%d prekeys_low events after falling below the mark, want 1", n)
	}
	if n := kinds(f.sync(bob, 0, since))[store.EventPreKeysLow]; n != 0 {
		t.Fatalf("bob got %d prekeys_low events for alice's device", n)
	}
	c, _ := s.Claim(ctx, []protocol.DeviceID{dev}, 3, 1) // the last key
	last, _ := s.Claim(ctx, []protocol.DeviceID{dev}, 3, 1)
	if c[0].OneTime == nil || last[0].OneTime != nil || last[0].Remaining != 0 || len(last[0].SignedPreKey) == 0 {
		t.Fatalf("claims past the last key: %+v then %+v; want a key, then none with the signed pre-key", c[0], last[0])
	}
	if n := low(); n != 1 {
		t.Fatalf("%d prekeys_low events without an upload in between, want still 1", n)
	}
	if _, err := s.AddOneTimeKeys(ctx, dev, []store.PreKeyRow{{ID: 100, Encoded: random(24)}, {ID: 101, Encoded: random(24)}}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, []protocol.DeviceID{dev}, 3, 1); err != nil {
		t.Fatal(err)
	}
	if n := low(); n != 2 {
		t.Fatalf("%d prekeys_low events after an upload and a claim below the mark, want 2", n)
	}
}

// testConcurrentClaims: 500 concurrent claims of a device with 100
// one-time keys give out each key exactly once, then none.
func testConcurrentClaims(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice := f.user(1, false)
	dev := alice.Devs[0]
	f.bundle(alice, dev, 100)
	since := f.lastEvent()

	const claimers = 500
	res := make([]store.Claimed, claimers)
	errs := atOnce(claimers, func(i int) error {
		cs, err := s.Claim(ctx, []protocol.DeviceID{dev}, 20, 1)
		if err == nil {
			res[i] = cs[0]
		}
		return err
	})
	got := make(map[uint32]int)
	remaining := make(map[int]int)
	none := 0
	for i := range claimers {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if res[i].OneTime == nil {
			none++
			if res[i].Remaining != 0 || len(res[i].SignedPreKey) == 0 {
				t.Fatalf("a claim without a one-time key: %+v", res[i])
			}
			continue
		}
		got[res[i].OneTime.ID]++
		remaining[res[i].Remaining]++
	}
	if len(got) != 100 || none != claimers-100 {
		t.Fatalf("%d distinct keys given out and %d claims without one; want 100 and %d", len(got), none, claimers-100)
	}
	for id, n := range got {
		if n != 1 || id < 1 || id > 100 {
			t.Fatalf("key %d given out %d times", id, n)
		}
	}
	// Each successful claim saw a different remaining count: 99 … 0.
	for r := 0; r < 100; r++ {
		if remaining[r] != 1 {
			t.Fatalf("%d claims reported %d keys remaining, want exactly 1", remaining[r], r)
		}
	}
	if n, _ := s.CountOneTimeKeys(ctx, dev); n != 0 {
		t.Fatalf("%d one-time keys left, want 0", n)
	}
	if n := kinds(f.sync(alice, 0, since))[store.EventPreKeysLow]; n != 1 {
		t.Fatalf("%d prekeys_low events, want exactly 1", n)
	}
}

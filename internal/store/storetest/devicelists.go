package storetest

import (
	"errors"
	"slices"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// listUpdate is a device list of a naming devs, made against the stored
// list prev (0: none).
func (f *fixture) listUpdate(a *acct, prev, seq uint64, devs ...protocol.DeviceID) store.DeviceListUpdate {
	return store.DeviceListUpdate{User: a.ID, Identity: a.Key, PrevSeq: prev, Seq: seq, Encoded: random(100), Devices: devs, Now: f.tick()}
}

// served returns the devices of a the store serves to sealers: active,
// bundled, listed.
func (f *fixture) served(a *acct) []protocol.DeviceID {
	f.t.Helper()
	devs, err := f.s.Devices(f.ctx, a.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []protocol.DeviceID
	for _, d := range devs {
		if d.SignedPreKey != nil && !d.Unlisted {
			out = append(out, d.ID)
		}
	}
	return sortedDevs(out)
}

// testDeviceLists: a stored device list decides which devices sealers are
// served and new epochs must cover; a list that drops a device, and a
// revocation, take its tokens and keys away; stale, foreign and mis-keyed
// lists are refused and change nothing (protocol.md §12).
func testDeviceLists(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob, mallory := f.user(3, true), f.user(1, true), f.user(1, true)
	accts := []*acct{alice, bob, mallory}
	a0, a1, a2 := alice.Devs[0], alice.Devs[1], alice.Devs[2]
	conv := f.conversation(alice, bob)
	ids := []protocol.ConversationID{conv}

	_, err := s.DeviceList(ctx, alice.ID)
	wantErr(t, "DeviceList before any", err, store.ErrNotFound)
	if got := f.served(alice); len(got) != 3 {
		t.Fatalf("an account without a list is served %v, want its 3 bundled devices", got)
	}

	// The first list names a0 and a1: a2 is no longer served, claimed or
	// counted, but it is not revoked (it was never listed).
	since := f.lastEvent()
	up := f.listUpdate(alice, 0, 1, a0, a1)
	revoked, err := s.PutDeviceList(ctx, up)
	if err != nil || len(revoked) != 0 {
		t.Fatalf("first list: revoked %v, %v", revoked, err)
	}
	if dl, err := s.DeviceList(ctx, alice.ID); err != nil || dl.Seq != 1 || string(dl.Encoded) != string(up.Encoded) {
		t.Fatalf("DeviceList = %+v, %v", dl, err)
	}
	if got, want := f.served(alice), sortedDevs([]protocol.DeviceID{a0, a1}); !slices.Equal(got, want) {
		t.Fatalf("served %v, want %v", got, want)
	}
	if _, err := s.DeviceByToken(ctx, alice.Toks[2]); err != nil {
		t.Fatalf("an unlisted device lost its token: %v", err)
	}
	_, err = s.Claim(ctx, []protocol.DeviceID{a0, a2}, 0, f.tick())
	wantErr(t, "claim of an unlisted device", err, store.ErrNotFound)
	if c := f.conv(conv); !c.RotationRequired || c.RotationReason != "device" {
		t.Fatalf("the list changed the served devices but the conversation is %+v", c)
	}
	if evs := ofKind(f.sync(bob, 0, since), store.EventDevice); len(evs) != 1 || *evs[0].User != alice.ID {
		t.Fatalf("bob's device events: %+v", evs)
	}
	// Coverage: the unlisted device is extra, the listed ones required.
	ns := f.nextSession(conv, alice, alice, bob)
	withA2 := ns
	withA2.Session.Keys = append(slices.Clone(ns.Session.Keys), store.SessionKey{Device: a2, User: alice.ID, PreKeyID: 1, InitiatorEphemeral: random(32), Ciphertext: random(48)})
	var ce *store.CoverageError
	if err := s.AddSession(ctx, withA2); !errors.As(err, &ce) || !slices.Equal(ce.Extra, []protocol.DeviceID{a2}) || len(ce.Missing) != 0 {
		t.Fatalf("a session covering the unlisted device: %v", err)
	}
	if err := s.AddSession(ctx, ns); err != nil {
		t.Fatalf("a session covering the listed devices: %v", err)
	}

	// Refused updates change nothing.
	before := f.snapshot(accts, ids)
	refused := []struct {
		name   string
		up     store.DeviceListUpdate
		target error
	}{
		{"made against no list", f.listUpdate(alice, 0, 2, a0), store.ErrStaleDeviceList},
		{"made against a newer list", f.listUpdate(alice, 5, 6, a0), store.ErrStaleDeviceList},
		{"seq not above", f.listUpdate(alice, 1, 1, a0), store.ErrInvalid},
		{"another account's device", f.listUpdate(alice, 1, 2, a0, mallory.Devs[0]), store.ErrNotFound},
		{"an unknown device", f.listUpdate(alice, 1, 2, a0, protocol.NewDeviceID()), store.ErrNotFound},
		{"revoking another account's device", func() store.DeviceListUpdate {
			u := f.listUpdate(alice, 1, 2, a0)
			u.Revoke = []protocol.DeviceID{mallory.Devs[0]}
			return u
		}(), store.ErrNotFound},
		{"verified under another key", func() store.DeviceListUpdate {
			u := f.listUpdate(alice, 1, 2, a0)
			u.Identity = mallory.Key
			return u
		}(), store.ErrIdentityMismatch},
	}
	for _, tc := range refused {
		_, err := s.PutDeviceList(ctx, tc.up)
		wantErr(t, tc.name, err, tc.target)
		f.sameSnapshot(tc.name, before, accts, ids)
	}

	// The next list drops a1: it is revoked at once (token, bundle,
	// one-time keys), and the conversation needs a new epoch.
	revoked, err = s.PutDeviceList(ctx, f.listUpdate(alice, 1, 2, a0))
	if err != nil || !slices.Equal(revoked, []protocol.DeviceID{a1}) {
		t.Fatalf("list dropping a1: revoked %v, %v", revoked, err)
	}
	_, err = s.DeviceByToken(ctx, alice.Toks[1])
	wantErr(t, "token of a device the list dropped", err, store.ErrNotFound)
	if n, err := s.CountOneTimeKeys(ctx, a1); err != nil || n != 0 {
		t.Fatalf("a dropped device keeps %d one-time keys (%v)", n, err)
	}
	if got := f.served(alice); !slices.Equal(got, []protocol.DeviceID{a0}) {
		t.Fatalf("served %v after dropping a1", got)
	}
	if c := f.conv(conv); !c.RotationRequired {
		t.Fatalf("dropping a device left %+v", c)
	}
	f.rotate(conv, alice, alice, bob)

	// A device revoked with a list that drops it, and one named in Revoke.
	revoked, err = s.PutDeviceList(ctx, func() store.DeviceListUpdate {
		u := f.listUpdate(alice, 2, 3, a0)
		u.Revoke = []protocol.DeviceID{a2}
		return u
	}())
	if err != nil || !slices.Equal(revoked, []protocol.DeviceID{a2}) {
		t.Fatalf("revoking the unlisted a2: %v, %v", revoked, err)
	}
	_, err = s.DeviceByToken(ctx, alice.Toks[2])
	wantErr(t, "token of a revoked device", err, store.ErrNotFound)
	if c := f.conv(conv); c.RotationRequired {
		t.Fatalf("revoking a device sealers were not served needs no new epoch: %+v", c)
	}

	// RevokeDevice (a logout without a list): bob's only device.
	since = f.lastEvent()
	wantErr(t, "revoke another account's device", s.RevokeDevice(ctx, alice.ID, bob.Devs[0], f.tick()), store.ErrNotFound)
	if err := s.RevokeDevice(ctx, bob.ID, bob.Devs[0], f.tick()); err != nil {
		t.Fatal(err)
	}
	_, err = s.DeviceByToken(ctx, bob.Toks[0])
	wantErr(t, "token after RevokeDevice", err, store.ErrNotFound)
	wantErr(t, "revoke twice", s.RevokeDevice(ctx, bob.ID, bob.Devs[0], f.tick()), store.ErrNotFound)
	if got := f.served(bob); len(got) != 0 {
		t.Fatalf("bob's revoked device is still served: %v", got)
	}
	if evs := ofKind(f.sync(alice, 0, since), store.EventDevice); len(evs) != 1 || *evs[0].User != bob.ID {
		t.Fatalf("alice's device events after bob's revocation: %+v", evs)
	}

	// The list survives a restart.
	f.s.Close()
	f.s = open(t, nil)
	s = f.s
	if dl, err := s.DeviceList(ctx, alice.ID); err != nil || dl.Seq != 3 {
		t.Fatalf("after a restart: %+v, %v", dl, err)
	}

	// An identity reset deletes the list its old key signed; the new key
	// starts again from no list.
	d3 := f.device(alice, false)
	reset := f.bundleUpload(alice, d3, newIdentity(), 3)
	reset.Reset = true
	if err := s.PutBundle(ctx, reset); err != nil {
		t.Fatal(err)
	}
	_, err = s.DeviceList(ctx, alice.ID)
	wantErr(t, "DeviceList after an identity reset", err, store.ErrNotFound)
	alice.Key = reset.Identity
	if _, err := s.PutDeviceList(ctx, f.listUpdate(alice, 0, 1, d3)); err != nil {
		t.Fatalf("first list under the new key: %v", err)
	}
}

// testDeviceListFaults: a device list, the revocations it makes and its
// events are stored whole or not at all.
func testDeviceListFaults(t *testing.T, open Opener) {
	fc := &faults{}
	f := newFixture(t, open(t, fc.hook))
	s, ctx := f.s, f.ctx
	warm := f.user(2, true)
	steps := fc.recordSteps(t, func() error {
		_, err := s.PutDeviceList(ctx, f.listUpdate(warm, 0, 1, warm.Devs[0]))
		return err
	})

	alice, bob := f.user(2, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	if _, err := s.PutDeviceList(ctx, f.listUpdate(alice, 0, 1, alice.Devs...)); err != nil {
		t.Fatal(err)
	}
	accts := []*acct{alice, bob}
	ids := []protocol.ConversationID{conv}
	up := f.listUpdate(alice, 1, 2, alice.Devs[0])
	before := f.snapshot(accts, ids)
	since := f.lastEvent()
	for _, step := range steps {
		fc.failAfter(step)
		_, err := s.PutDeviceList(ctx, up)
		wantErr(t, "list failing after "+step, err, errInjected)
		f.sameSnapshot("a list failing after "+step, before, accts, ids)
		if evs := f.sync(bob, 0, since); len(evs) != 0 {
			t.Fatalf("a list failing after %s left events: %+v", step, evs)
		}
	}
	fc.failAfter("")
	if revoked, err := s.PutDeviceList(ctx, up); err != nil || len(revoked) != 1 {
		t.Fatalf("the same list without a fault: %v, %v", revoked, err)
	}
}

package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// testDeviceCap: with a cap, an account past it gets no new device
// (ErrTooManyDevices, nothing written); revoked devices do not count.
func testDeviceCap(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	alice := f.user(2, false)
	add := func() (protocol.DeviceID, error) {
		d := store.Device{ID: protocol.NewDeviceID(), User: alice.ID, Name: "more", CreatedAt: f.tick()}
		return d.ID, f.s.AddDevice(f.ctx, d, random(32), 3)
	}
	third, err := add()
	if err != nil {
		t.Fatalf("third device under a cap of 3: %v", err)
	}
	if _, err := add(); !errors.Is(err, store.ErrTooManyDevices) {
		t.Fatalf("fourth device under a cap of 3: %v, want ErrTooManyDevices", err)
	}
	if devs, err := f.s.Devices(f.ctx, alice.ID); err != nil || len(devs) != 3 {
		t.Fatalf("after the refusal: %d devices (%v), want 3", len(devs), err)
	}
	if err := f.s.RevokeDevice(f.ctx, alice.ID, third, f.tick()); err != nil {
		t.Fatal(err)
	}
	if _, err := add(); err != nil {
		t.Fatalf("a device in place of a revoked one: %v", err)
	}
}

// testDeviceCapRace: logins of one account at once are counted one after
// the other: the cap holds.
func testDeviceCapRace(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	alice := f.user(1, false)
	const n, max = 8, 3
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		d := store.Device{ID: protocol.NewDeviceID(), User: alice.ID, Name: "at once", CreatedAt: f.tick()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.s.AddDevice(f.ctx, d, random(32), max)
		}()
	}
	wg.Wait()
	ok := accepted(t, errs, store.ErrTooManyDevices, "concurrent login")
	devs, err := f.s.Devices(f.ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok != max-1 || len(devs) != max {
		t.Fatalf("%d of %d logins at once taken, %d devices, under a cap of %d", ok, n, len(devs), max)
	}
}

// testDevicePurge: PurgeDevices deletes the revoked devices of an account
// that nothing names (a link request left behind does not keep one), and
// keeps those a session, session key, message or blob names, and every
// device not revoked, and every device of other accounts.
func testDevicePurge(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s := f.s
	alice, bob := f.user(1, true), f.user(1, true)
	conv := f.conversation(alice, bob) // alice's device 0 created the session and has a key in it
	sender, uploader, linker, plain := f.device(alice, false), f.device(alice, false), f.device(alice, false), f.device(alice, false)
	active := f.device(alice, false)
	f.sendOne(store.Send{Conversation: conv, Sender: sender, SenderUser: alice.ID, ClientID: "m1", Epoch: 1, Envelope: random(40), Now: f.tick()})
	b := f.newBlob(alice, conv, 10, 1, f.now+1_000_000)
	b.Device = uploader
	if err := s.CreateBlob(f.ctx, b, store.BlobLimits{}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLinkRequest(f.ctx, store.LinkRequest{Device: linker, User: alice.ID, PublicKey: random(40), Tag: random(32), CreatedAt: f.now, ExpiresAt: f.now + 600_000}); err != nil {
		t.Fatal(err)
	}
	bobPlain := f.device(bob, false)
	for _, d := range []struct {
		a   *acct
		dev protocol.DeviceID
	}{{alice, alice.Devs[0]}, {alice, sender}, {alice, uploader}, {alice, linker}, {alice, plain}, {bob, bobPlain}} {
		if err := s.RevokeDevice(f.ctx, d.a.ID, d.dev, f.tick()); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PurgeDevices(f.ctx, alice.ID)
	if err != nil || n != 2 {
		t.Fatalf("purge: %d devices, %v; want 2 (the linker and the plain one)", n, err)
	}
	if n, err := s.PurgeDevices(f.ctx, alice.ID); err != nil || n != 0 {
		t.Fatalf("purge again: %d devices, %v; want 0", n, err)
	}
	// A row is there when its id is taken.
	for _, c := range []struct {
		what  string
		dev   protocol.DeviceID
		owner *acct
		kept  bool
	}{{"the session's creator", alice.Devs[0], alice, true}, {"the sender", sender, alice, true}, {"the uploader", uploader, alice, true},
		{"the linker", linker, alice, false}, {"the plain one", plain, alice, false}, {"the active one", active, alice, true}, {"bob's revoked one", bobPlain, bob, true}} {
		err := s.AddDevice(f.ctx, store.Device{ID: c.dev, User: c.owner.ID, Name: "again", CreatedAt: f.tick()}, random(32), 0)
		switch {
		case c.kept && !errors.Is(err, store.ErrConflict):
			t.Errorf("%s: its id is free (%v): purged", c.what, err)
		case !c.kept && err != nil:
			t.Errorf("%s: its id is still taken (%v): not purged", c.what, err)
		}
	}
	if msgs := f.allMessages(conv, 10); len(msgs) != 1 {
		t.Fatalf("the conversation holds %d messages after the purge, want 1", len(msgs))
	}
	if _, err := s.Blob(f.ctx, b.ID); err != nil {
		t.Fatalf("the blob after the purge: %v", err)
	}
}

// testDevicePurgeEvents: the events addressed to the devices a purge
// deletes go with them (nobody can read them any more), those of the
// devices it keeps stay, but the newest event of all stays, wherever it
// is addressed: the newest event id (on PostgreSQL the head of a page
// without events) must not go back, or a device holding it as its cursor
// would take the server for rolled back.
func testDevicePurgeEvents(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s := f.s
	alice, bob := f.user(1, true), f.user(1, true)
	f.conversation(alice, bob) // alice's first device created its session: kept
	first := alice.Devs[0]
	gone1 := f.device(alice, false) // the first hears of it
	gone2 := f.device(alice, false) // the first and gone1 hear of it
	revoke := func(d protocol.DeviceID) {
		t.Helper()
		if err := s.RevokeDevice(f.ctx, alice.ID, d, f.tick()); err != nil {
			t.Fatal(err)
		}
	}
	revoke(first)
	revoke(gone1)
	f.device(alice, false) // gone2 alone hears of it: the newest event
	revoke(gone2)
	addressed := func(dev protocol.DeviceID) []int64 {
		t.Helper()
		evs, err := s.Sync(f.ctx, alice.ID, dev, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, e := range evs {
			if e.Kind == store.EventSessionAdded {
				ids = append(ids, e.ID)
			}
		}
		return ids
	}
	firstBefore, gone2Before := addressed(first), addressed(gone2)
	last, err := s.LastEventID(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(firstBefore) != 2 || len(addressed(gone1)) != 1 || len(gone2Before) != 1 || gone2Before[0] != last {
		t.Fatalf("setup: the first device has %v, gone1 %v, gone2 %v, the newest event is %d; want 2, 1 and 1, gone2's the newest",
			firstBefore, addressed(gone1), gone2Before, last)
	}
	if n, err := s.PurgeDevices(f.ctx, alice.ID); err != nil || n != 2 {
		t.Fatalf("purge: %d devices, %v; want 2 (gone1 and gone2)", n, err)
	}
	if got := addressed(first); !slices.Equal(got, firstBefore) {
		t.Errorf("the kept device's events after the purge: %v, want %v", got, firstBefore)
	}
	if got := addressed(gone1); len(got) != 0 {
		t.Errorf("the events addressed to a purged device stay: %v", got)
	}
	if got := addressed(gone2); !slices.Equal(got, gone2Before) {
		t.Errorf("the newest event, addressed to a purged device: %v after the purge, want %v kept", got, gone2Before)
	}
	if after, err := s.LastEventID(f.ctx); err != nil || after < last {
		t.Errorf("the newest event id went from %d to %d (%v) with the purge", last, after, err)
	}
}

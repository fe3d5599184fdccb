package storetest

import (
	"bytes"
	"errors"
	"testing"

	"sandi.dev/internal/store"
)

// testState: a conversation's state is stored with its first epoch, kept
// or replaced at a rotation, changed only to a newer version in the
// current epoch by a current member, and each change reaches the members
// as a conversation-wide event. A refused change changes nothing.
func testState(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob, eve := f.user(1, true), f.user(1, true), f.user(1, true)
	nc := f.newConversation(alice, bob)
	nc.State = &store.StateRow{Encoded: []byte("state v1"), Epoch: 1, Version: 1}
	if err := s.CreateConversation(ctx, nc); err != nil {
		t.Fatal(err)
	}
	conv := nc.ID
	want := func(what string, enc string, epoch, version uint64) {
		t.Helper()
		c := f.conv(conv)
		if c.State == nil || string(c.State.Encoded) != enc || c.State.Epoch != epoch || c.State.Version != version {
			t.Fatalf("%s: state %+v, want %q epoch %d version %d", what, c.State, enc, epoch, version)
		}
		list, err := s.Conversations(ctx, alice.ID)
		if err != nil || len(list) == 0 || list[0].ID != conv || list[0].State == nil || !bytes.Equal(list[0].State.Encoded, c.State.Encoded) {
			t.Fatalf("%s: alice's list %+v, %v", what, list, err)
		}
	}
	want("created", "state v1", 1, 1)
	if c := f.conv(f.conversation(alice, bob)); c.State != nil {
		t.Fatalf("a conversation created without state has %+v", c.State)
	}

	// A rotation without state keeps it; with an older version it is refused.
	f.rotate(conv, alice, alice, bob)
	want("rotation without state", "state v1", 1, 1)
	ns := f.nextSession(conv, alice, alice, bob)
	ns.State = &store.StateRow{Encoded: []byte("state v1 at 3"), Epoch: 3, Version: 1}
	since := f.lastEvent()
	if err := s.AddSession(ctx, ns); err != nil {
		t.Fatal(err)
	}
	want("re-published at a rotation", "state v1 at 3", 3, 1)
	if k := kinds(f.sync(bob, 0, since)); k[store.EventSession] != 1 || k[store.EventState] != 1 {
		t.Fatalf("bob's events after a rotation with the state: %v", k)
	}

	// Changes in the current epoch.
	since = f.lastEvent()
	set := func(u *acct, enc string, epoch, version uint64) error {
		return s.SetState(ctx, store.StateUpdate{Conversation: conv, User: u.ID, State: store.StateRow{Encoded: []byte(enc), Epoch: epoch, Version: version}, Now: f.tick()})
	}
	if err := set(bob, "state v2", 3, 2); err != nil {
		t.Fatal(err)
	}
	want("changed", "state v2", 3, 2)
	evs := f.sync(alice, 0, since)
	if len(evs) != 1 || evs[0].Kind != store.EventState || evs[0].Seq != 2 || evs[0].Epoch != 3 || *evs[0].Conversation != conv {
		t.Fatalf("alice's events after the change: %+v", evs)
	}
	wantErr(t, "the same version again", set(alice, "other v2", 3, 2), store.ErrStaleState)
	wantErr(t, "an older version", set(alice, "state v1 again", 3, 1), store.ErrStaleState)
	wantErr(t, "a non-member", set(eve, "eve's", 3, 3), store.ErrNotMember)
	var ee *store.EpochError
	if err := set(alice, "old epoch", 2, 3); !errors.Is(err, store.ErrStaleEpoch) || !errors.As(err, &ee) || ee.Current != 3 {
		t.Fatalf("a state of an older epoch: %v", err)
	}
	wantErr(t, "a state of the next epoch", set(alice, "next", 4, 3), store.ErrStaleEpoch)
	wantErr(t, "an empty state", set(alice, "", 3, 3), store.ErrInvalid)
	ns = f.nextSession(conv, alice, alice, bob)
	ns.State = &store.StateRow{Encoded: []byte("rolled back"), Epoch: 4, Version: 1}
	wantErr(t, "a rotation with an older version", s.AddSession(ctx, ns), store.ErrStaleState)
	ns.State = &store.StateRow{Encoded: []byte("wrong epoch"), Epoch: 3, Version: 2}
	wantErr(t, "a rotation with a state of another epoch", s.AddSession(ctx, ns), store.ErrInvalid)
	want("after the refusals", "state v2", 3, 2)

	// A re-publication of the same version in a later epoch is accepted;
	// while a rotation is required, nothing is.
	f.rotate(conv, bob, alice, bob)
	if err := set(alice, "state v2 at 4", 4, 2); err != nil {
		t.Fatal(err)
	}
	want("re-published after a rotation", "state v2 at 4", 4, 2)
	f.change(conv, alice)
	wantErr(t, "a change while rotation is required", set(alice, "v3", 4, 3), store.ErrStaleEpoch)
	wantErr(t, "a removed member", set(bob, "bob's", 4, 3), store.ErrNotMember)
	want("after the removal", "state v2 at 4", 4, 2)
}

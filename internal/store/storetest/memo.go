package storetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// testAnswersFollowWrites asks every question a store may answer from
// memory (the token look-up, the members of a conversation, and the
// conversation counters and membership that a send checks) before each
// write that changes the answer, and checks that the next answer is the
// new one. A store that remembers answers must forget them at the right
// moments; one that does not passes trivially.
func testAnswersFollowWrites(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	alice, bob, carol := f.user(2, true), f.user(1, true), f.user(1, true)
	conv := f.conversation(alice, bob, carol)

	device := func(tok []byte) (store.Device, error) { return f.s.DeviceByToken(f.ctx, tok) }
	members := func() []protocol.UserID {
		t.Helper()
		ms, err := f.s.Members(f.ctx, conv)
		if err != nil {
			t.Fatalf("members: %v", err)
		}
		var us []protocol.UserID
		for _, m := range ms {
			us = append(us, m.User)
		}
		slices.SortFunc(us, func(a, b protocol.UserID) int { return bytes.Compare(a[:], b[:]) })
		return us
	}
	sorted := func(as ...*acct) []protocol.UserID {
		var us []protocol.UserID
		for _, a := range as {
			us = append(us, a.ID)
		}
		slices.SortFunc(us, func(a, b protocol.UserID) int { return bytes.Compare(a[:], b[:]) })
		return us
	}
	n := 0
	send := func(a *acct, dev int, epoch uint64) (store.SendResult, error) {
		n++
		return f.s.SendOne(f.ctx, f.msg(conv, a, dev, "answers-"+string(rune('a'+n%26))+string(rune('a'+n/26)), epoch))
	}

	// Warm up everything.
	for i := range 3 {
		for _, tok := range [][]byte{alice.Toks[1], bob.Toks[0]} {
			if _, err := device(tok); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := send(alice, i%2, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := send(carol, 0, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := members(); !slices.Equal(got, sorted(alice, bob, carol)) {
		t.Fatalf("members %v", got)
	}

	// A logout: the token stops resolving at once.
	if err := f.s.DeleteToken(f.ctx, bob.Toks[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := device(bob.Toks[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token after logout: %v", err)
	}

	// A new bundle: the device the token resolves to carries it.
	if _, err := device(carol.Toks[0]); err != nil {
		t.Fatal(err)
	}
	up := f.bundleUpload(carol, carol.Devs[0], carol.Key, 0)
	if err := f.s.PutBundle(f.ctx, up); err != nil {
		t.Fatal(err)
	}
	if d, err := device(carol.Toks[0]); err != nil || !bytes.Equal(d.SignedPreKey, up.SignedPreKey) {
		t.Fatalf("device after a new bundle: signed pre-key %x, %v; want %x", d.SignedPreKey, err, up.SignedPreKey)
	}

	// A removal: the removed member is gone from the members and can no
	// longer send; the rest must wait for the next epoch.
	f.change(conv, alice, bob)
	if got := members(); !slices.Equal(got, sorted(alice, bob)) {
		t.Fatalf("members after removing carol: %v", got)
	}
	if _, err := send(carol, 0, 1); !errors.Is(err, store.ErrNotMember) {
		t.Fatalf("send by the removed member: %v", err)
	}
	if _, err := send(alice, 0, 1); !errors.Is(err, store.ErrStaleEpoch) {
		t.Fatalf("send before the next epoch: %v", err)
	}
	epoch := f.rotate(conv, alice, alice, bob)
	r, err := send(alice, 0, epoch)
	if err != nil {
		t.Fatalf("send on the new epoch: %v", err)
	}
	if _, err := send(alice, 1, 1); !errors.Is(err, store.ErrStaleEpoch) {
		t.Fatalf("send on the old epoch: %v", err)
	}

	// An identity reset: the account's other devices are revoked at once,
	// their tokens stop resolving and they can no longer send.
	if _, err := device(alice.Toks[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := send(alice, 1, epoch); err != nil {
		t.Fatal(err)
	}
	reset := f.bundleUpload(alice, alice.Devs[0], newIdentity(), 0)
	reset.Reset = true
	if err := f.s.PutBundle(f.ctx, reset); err != nil {
		t.Fatal(err)
	}
	if _, err := device(alice.Toks[1]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token of a device revoked by a reset: %v", err)
	}
	epoch = f.rotate(conv, alice, alice, bob)
	if _, err := send(alice, 1, epoch); !errors.Is(err, store.ErrNotMember) {
		t.Fatalf("send by a device revoked by a reset: %v", err)
	}

	// Adding a member back: it is in the members and may send once the
	// next epoch covers it.
	f.change(conv, alice, bob, carol)
	if got := members(); !slices.Equal(got, sorted(alice, bob, carol)) {
		t.Fatalf("members after adding carol back: %v", got)
	}
	epoch = f.rotate(conv, alice, alice, bob, carol)
	r2, err := send(carol, 0, epoch)
	if err != nil {
		t.Fatalf("send by the member added back: %v", err)
	}
	if r2.Seq <= r.Seq {
		t.Fatalf("seq %d after seq %d", r2.Seq, r.Seq)
	}
}

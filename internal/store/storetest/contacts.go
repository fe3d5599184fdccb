package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// testContacts checks block lists (kept across a restart, per account, one
// way) and the cap on first contacts: a contact counts once, a member of a
// shared conversation never, and a call past the cap records nothing.
func testContacts(t *testing.T, open Opener) {
	s := open(t, nil)
	f := newFixture(t, s)
	alice, bob, carol := f.user(1, true), f.user(1, true), f.user(1, true)
	if err := s.Block(f.ctx, alice.ID, bob.ID, f.tick(), 0); err != nil {
		t.Fatalf("block: %v", err)
	}
	if err := s.Block(f.ctx, alice.ID, bob.ID, f.tick(), 0); err != nil {
		t.Fatalf("block again: %v", err)
	}
	wantErr(t, "block an unknown account", s.Block(f.ctx, alice.ID, protocol.NewUserID(), f.tick(), 0), store.ErrNotFound)
	s.Close()
	s = open(t, nil)
	f.s = s
	bl, err := s.Blocks(f.ctx, alice.ID)
	if err != nil || len(bl) != 1 || bl[0].User != bob.ID || bl[0].Username != bob.Name {
		t.Fatalf("alice's blocks after a restart = %v, %v; want bob", bl, err)
	}
	by, err := s.BlockedBy(f.ctx, bob.ID, []protocol.UserID{carol.ID, alice.ID})
	if err != nil || !slices.Equal(by, []protocol.UserID{alice.ID}) {
		t.Fatalf("blocked bob: %v, %v; want alice", by, err)
	}
	if by, err := s.BlockedBy(f.ctx, alice.ID, []protocol.UserID{bob.ID}); err != nil || len(by) != 0 {
		t.Fatalf("a block goes one way: bob blocks alice = %v, %v", by, err)
	}
	if ok, err := s.Unblock(f.ctx, alice.ID, bob.ID); err != nil || !ok {
		t.Fatalf("unblock = %v, %v", ok, err)
	}
	if ok, err := s.Unblock(f.ctx, alice.ID, bob.ID); err != nil || ok {
		t.Fatalf("unblock again = %v, %v; want false", ok, err)
	}
	if by, err := s.BlockedBy(f.ctx, bob.ID, []protocol.UserID{alice.ID}); err != nil || len(by) != 0 {
		t.Fatalf("after unblock: %v, %v", by, err)
	}

	// First contacts: alice shares a conversation with carol.
	f.conversation(alice, carol)
	strangers := []*acct{f.user(1, true), f.user(1, true), f.user(1, true)}
	ids := func(as ...*acct) []protocol.UserID {
		var out []protocol.UserID
		for _, a := range as {
			out = append(out, a.ID)
		}
		return out
	}
	since := f.now
	n, err := s.NewContacts(f.ctx, alice.ID, ids(alice, carol, bob, strangers[0]), since, f.tick(), 3)
	if err != nil || n != 2 {
		t.Fatalf("first contacts bob and a stranger = %d, %v; want 2", n, err)
	}
	if n, err := s.NewContacts(f.ctx, alice.ID, ids(bob, strangers[0]), since, f.tick(), 3); err != nil || n != 0 {
		t.Fatalf("contacting them again = %d, %v; want 0", n, err)
	}
	_, err = s.NewContacts(f.ctx, alice.ID, ids(strangers[1], strangers[2]), since, f.tick(), 3)
	wantErr(t, "two more past a cap of 3", err, store.ErrTooManyContacts)
	if n, err := s.NewContacts(f.ctx, alice.ID, ids(strangers[1]), since, f.tick(), 3); err != nil || n != 1 {
		t.Fatalf("one more up to the cap = %d, %v (the refused call must have recorded nothing)", n, err)
	}
	_, err = s.NewContacts(f.ctx, alice.ID, ids(strangers[2]), since, f.tick(), 3)
	wantErr(t, "past the cap", err, store.ErrTooManyContacts)
	if n, err := s.NewContacts(f.ctx, alice.ID, ids(strangers[2]), f.tick(), f.tick(), 3); err != nil || n != 1 {
		t.Fatalf("a new window = %d, %v; want 1", n, err)
	}

	// Concurrent calls of one author count one after the other.
	more := []*acct{f.user(1, false), f.user(1, false), f.user(1, false), f.user(1, false)}
	since = f.tick()
	errs := atOnce(len(more), func(i int) error {
		_, err := s.NewContacts(f.ctx, bob.ID, ids(more[i]), since, since+1, 2)
		return err
	})
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !isTooMany(err) {
			t.Fatalf("concurrent first contact: %v", err)
		}
	}
	if ok != 2 {
		t.Fatalf("%d concurrent first contacts passed a cap of 2", ok)
	}
}

func isTooMany(err error) bool { return errors.Is(err, store.ErrTooManyContacts) }

// testDeviceNames: a name record replaces the device's name only with a
// higher seq, only for a device of the account, and survives a restart.
func testDeviceNames(t *testing.T, open Opener) {
	s := open(t, nil)
	f := newFixture(t, s)
	alice, bob := f.user(2, true), f.user(1, true)
	dev := alice.Devs[1]
	if err := s.SetDeviceName(f.ctx, alice.ID, dev, "phone", 1, []byte("record 1")); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "same seq", s.SetDeviceName(f.ctx, alice.ID, dev, "tablet", 1, []byte("record 1'")), store.ErrConflict)
	wantErr(t, "another account's device", s.SetDeviceName(f.ctx, bob.ID, dev, "mine", 2, []byte("x")), store.ErrNotFound)
	s.Close()
	s = open(t, nil)
	names, err := s.DeviceNames(f.ctx, alice.ID)
	if err != nil || len(names) != 1 || string(names[dev]) != "record 1" {
		t.Fatalf("names = %q, %v", names, err)
	}
	devs, err := s.Devices(f.ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.ID == dev && d.Name != "phone" {
			t.Fatalf("device name %q, want phone", d.Name)
		}
	}
}

// testBlockStatements: a signed statement replaces the stored one only
// when it holds over it (later, or a block at the same time), sets the
// enforced block list to match, survives a restart, keeps an unblock as a
// statement without enforcing it, and a signed block cannot be lifted by
// an unsigned unblock. An identity reset drops the account's statements
// (they verify under the replaced key only) and keeps its blocks.
func testBlockStatements(t *testing.T, open Opener) {
	s := open(t, nil)
	f := newFixture(t, s)
	alice, bob, carol := f.user(1, true), f.user(1, true), f.user(1, true)
	stmt := func(s string) []byte { return []byte(s) }
	if err := s.SetBlock(f.ctx, alice.ID, bob.ID, true, 100, stmt("block 100"), f.tick(), 0); err != nil {
		t.Fatalf("signed block: %v", err)
	}
	wantErr(t, "an older unblock", s.SetBlock(f.ctx, alice.ID, bob.ID, false, 99, stmt("unblock 99"), f.tick(), 0), store.ErrConflict)
	wantErr(t, "an unblock at the same time", s.SetBlock(f.ctx, alice.ID, bob.ID, false, 100, stmt("unblock 100"), f.tick(), 0), store.ErrConflict)
	wantErr(t, "the same block again", s.SetBlock(f.ctx, alice.ID, bob.ID, true, 100, stmt("block 100'"), f.tick(), 0), store.ErrConflict)
	wantErr(t, "an unknown account", s.SetBlock(f.ctx, alice.ID, protocol.NewUserID(), true, 1, stmt("x"), f.tick(), 0), store.ErrNotFound)
	_, err := s.Unblock(f.ctx, alice.ID, bob.ID)
	wantErr(t, "an unsigned unblock of a signed block", err, store.ErrConflict)
	if by, err := s.BlockedBy(f.ctx, bob.ID, []protocol.UserID{alice.ID}); err != nil || len(by) != 1 {
		t.Fatalf("the signed block is not enforced: %v, %v", by, err)
	}
	// Carol: an unsigned block, then a signed unblock lifts it.
	if err := s.Block(f.ctx, alice.ID, carol.ID, f.tick(), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBlock(f.ctx, alice.ID, carol.ID, false, 50, stmt("unblock carol"), f.tick(), 0); err != nil {
		t.Fatalf("signed unblock: %v", err)
	}
	s.Close()
	s = open(t, nil)
	f.s = s
	bl, err := s.Blocks(f.ctx, alice.ID)
	if err != nil || len(bl) != 2 {
		t.Fatalf("alice's list = %+v, %v; want bob's block and carol's unblock", bl, err)
	}
	if b := bl[0]; b.User != bob.ID || !b.Blocked || string(b.Statement) != "block 100" || b.Username != bob.Name {
		t.Fatalf("first entry %+v, want bob blocked with its statement", b)
	}
	if b := bl[1]; b.User != carol.ID || b.Blocked || string(b.Statement) != "unblock carol" || b.CreatedAt != 50 {
		t.Fatalf("second entry %+v, want carol's unblock statement", b)
	}
	if by, err := s.BlockedBy(f.ctx, carol.ID, []protocol.UserID{alice.ID}); err != nil || len(by) != 0 {
		t.Fatalf("an unblock statement is enforced as a block: %v, %v", by, err)
	}
	// A newer unblock of bob lifts the block.
	if err := s.SetBlock(f.ctx, alice.ID, bob.ID, false, 101, stmt("unblock 101"), f.tick(), 0); err != nil {
		t.Fatalf("newer unblock: %v", err)
	}
	if by, err := s.BlockedBy(f.ctx, bob.ID, []protocol.UserID{alice.ID}); err != nil || len(by) != 0 {
		t.Fatalf("after a signed unblock: %v, %v", by, err)
	}
	if err := s.SetBlock(f.ctx, alice.ID, bob.ID, true, 101, stmt("block 101"), f.tick(), 0); err != nil {
		t.Fatalf("a block at the unblock's time wins: %v", err)
	}

	// An identity reset drops the statements, not the enforced blocks.
	up := f.bundleUpload(alice, alice.Devs[0], newIdentity(), 0)
	up.Reset = true
	if err := s.PutBundle(f.ctx, up); err != nil {
		t.Fatalf("reset: %v", err)
	}
	bl, err = s.Blocks(f.ctx, alice.ID)
	if err != nil || len(bl) != 1 || bl[0].User != bob.ID || bl[0].Statement != nil {
		t.Fatalf("after a reset = %+v, %v; want bob's block without a statement", bl, err)
	}
}

// testBlockCap: an account holds at most max accounts on its block list,
// blocked or kept with a statement of either kind (protocol.md §16.2). One
// more is refused, block or statement, and stores nothing; what is held
// already (a block again, a newer statement, an unblock) never counts
// twice, so unblocking always works; a kept unblock statement still
// counts (a block/unblock loop over every account stops at the cap),
// and an unsigned unblock, which keeps nothing, frees its place.
func testBlockCap(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s := f.s
	alice, b1, b2, b3 := f.user(1, true), f.user(1, true), f.user(1, true), f.user(1, true)
	stmt := func(s string) []byte { return []byte(s) }
	const max = 2
	if err := s.Block(f.ctx, alice.ID, b1.ID, f.tick(), max); err != nil {
		t.Fatalf("a first block: %v", err)
	}
	if err := s.SetBlock(f.ctx, alice.ID, b2.ID, true, 100, stmt("block b2"), f.tick(), max); err != nil {
		t.Fatalf("a second, signed: %v", err)
	}
	wantErr(t, "a block past the cap", s.Block(f.ctx, alice.ID, b3.ID, f.tick(), max), store.ErrTooManyBlocks)
	wantErr(t, "a signed block past the cap", s.SetBlock(f.ctx, alice.ID, b3.ID, true, 100, stmt("block b3"), f.tick(), max), store.ErrTooManyBlocks)
	wantErr(t, "an unblock of an account not held, past the cap", s.SetBlock(f.ctx, alice.ID, b3.ID, false, 100, stmt("unblock b3"), f.tick(), max), store.ErrTooManyBlocks)
	wantHeld := func(what string, want ...*acct) {
		t.Helper()
		bl, err := s.Blocks(f.ctx, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got []protocol.UserID
		for _, b := range bl {
			got = append(got, b.User)
		}
		var ids []protocol.UserID
		for _, a := range want {
			ids = append(ids, a.ID)
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("%s: alice holds %v, want %v", what, got, ids)
		}
	}
	wantHeld("after the refusals", b1, b2)
	if by, err := s.BlockedBy(f.ctx, b3.ID, []protocol.UserID{alice.ID}); err != nil || len(by) != 0 {
		t.Fatalf("a refused block is enforced: %v, %v", by, err)
	}

	// What is held does not count twice.
	if err := s.Block(f.ctx, alice.ID, b1.ID, f.tick(), max); err != nil {
		t.Fatalf("the same block again at the cap: %v", err)
	}
	if err := s.SetBlock(f.ctx, alice.ID, b1.ID, true, 100, stmt("block b1"), f.tick(), max); err != nil {
		t.Fatalf("signing a held block at the cap: %v", err)
	}
	if err := s.SetBlock(f.ctx, alice.ID, b2.ID, false, 101, stmt("unblock b2"), f.tick(), max); err != nil {
		t.Fatalf("an unblock at the cap: %v", err)
	}
	if err := s.SetBlock(f.ctx, alice.ID, b2.ID, true, 102, stmt("block b2 again"), f.tick(), max); err != nil {
		t.Fatalf("blocking again after an unblock, at the cap: %v", err)
	}
	if err := s.SetBlock(f.ctx, alice.ID, b2.ID, false, 103, stmt("unblock b2 again"), f.tick(), max); err != nil {
		t.Fatalf("unblocking again at the cap: %v", err)
	}
	// b2's unblock statement is kept, and counts.
	wantErr(t, "a block past the cap, an unblock kept", s.Block(f.ctx, alice.ID, b3.ID, f.tick(), max), store.ErrTooManyBlocks)
	wantHeld("an unblock kept", b1, b2)

	// An unsigned block lifted without a statement frees its place.
	c1 := f.user(1, true)
	if err := s.Block(f.ctx, c1.ID, b1.ID, f.tick(), 1); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "c1 past its cap", s.Block(f.ctx, c1.ID, b2.ID, f.tick(), 1), store.ErrTooManyBlocks)
	if ok, err := s.Unblock(f.ctx, c1.ID, b1.ID); err != nil || !ok {
		t.Fatalf("unsigned unblock at the cap = %v, %v", ok, err)
	}
	if err := s.Block(f.ctx, c1.ID, b2.ID, f.tick(), 1); err != nil {
		t.Fatalf("a new block after an unsigned unblock: %v", err)
	}
	// No cap: max 0.
	if err := s.Block(f.ctx, alice.ID, b3.ID, f.tick(), 0); err != nil {
		t.Fatalf("without a cap: %v", err)
	}

	// A block/unblock loop over every account stops at the cap: each
	// unblock is kept.
	looper := f.user(1, true)
	var done int
	for i := range 6 {
		o := f.user(1, true)
		err := s.SetBlock(f.ctx, looper.ID, o.ID, true, 100, stmt("block"), f.tick(), 3)
		if errors.Is(err, store.ErrTooManyBlocks) {
			break
		}
		if err != nil {
			t.Fatalf("loop, block %d: %v", i, err)
		}
		if err := s.SetBlock(f.ctx, looper.ID, o.ID, false, 101, stmt("unblock"), f.tick(), 3); err != nil {
			t.Fatalf("loop, unblock %d: %v", i, err)
		}
		done++
	}
	if bl, err := s.Blocks(f.ctx, looper.ID); err != nil || done != 3 || len(bl) != 3 {
		t.Fatalf("a block/unblock loop over 6 accounts under a cap of 3: %d rounds, %d kept (%v)", done, len(bl), err)
	}
}

// testBlockCapRace: blocks of one account made at once, each of an
// account not held yet, are counted one after the other: the cap holds.
func testBlockCapRace(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	alice := f.user(1, true)
	const n, max = 8, 3
	others := make([]*acct, n)
	for i := range others {
		others[i] = f.user(1, true)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, o := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				errs[i] = f.s.Block(f.ctx, alice.ID, o.ID, f.now, max)
			} else {
				errs[i] = f.s.SetBlock(f.ctx, alice.ID, o.ID, true, 100, []byte("block"), f.now, max)
			}
		}()
	}
	wg.Wait()
	ok := accepted(t, errs, store.ErrTooManyBlocks, "concurrent block")
	bl, err := f.s.Blocks(f.ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok != max || len(bl) != max {
		t.Fatalf("%d of %d blocks accepted at once, %d held, under a cap of %d", ok, n, len(bl), max)
	}
}

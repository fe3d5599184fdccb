package storetest

import (
	"testing"

	"sandi.dev/internal/store"
)

// testMessageExpiry: DeleteExpiredMessages deletes exactly the messages
// whose expiry has come, in batches of its limit, whatever path the send
// took (a batch, a batch with a repeat, a message with a blob); Messages
// and Sync (from any cursor) no longer give them: their events go too,
// but for the newest event of all, which stays without its message (its
// id must not go back); and the blob of an expired message is then
// collected while that of a kept message is not.
func testMessageExpiry(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob := f.user(1, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	epoch := f.conv(conv).Epoch
	const minute = 60_000
	base := f.now

	kept := f.newBlob(alice, conv, 10, 1, f.now+minute)
	gone := f.newBlob(alice, conv, 10, 1, f.now+minute)
	for _, b := range []store.Blob{kept, gone} {
		if err := s.CreateBlob(ctx, b, store.BlobLimits{}); err != nil {
			t.Fatal(err)
		}
		f.completeBlob(b, f.now+minute)
	}
	// Four expiring messages (one in a batch of two, one with a blob),
	// one that never expires, one with a blob that expires later.
	m1, m2 := f.msg(conv, alice, 0, "exp-1", epoch), f.msg(conv, bob, 0, "exp-2", epoch)
	m1.ExpiresAt, m2.ExpiresAt = base+minute, base+minute
	first, err := s.Send(ctx, []store.Send{m1, m2})
	if err != nil || first[0].Err != nil || first[1].Err != nil {
		t.Fatalf("send batch: %v %+v", err, first)
	}
	m3 := f.msg(conv, alice, 0, "exp-3", epoch)
	m3.ExpiresAt, m3.Blobs = base+2*minute, []string{gone.ID}
	f.sendOne(m3)
	f.sendOne(f.msg(conv, alice, 0, "never", epoch))
	m5 := f.msg(conv, alice, 0, "exp-5", epoch)
	m5.ExpiresAt, m5.Blobs = base+3*minute, []string{kept.ID}
	f.sendOne(m5)
	m6 := f.msg(conv, bob, 0, "exp-6", epoch)
	m6.ExpiresAt = base + 2*minute
	// Twice in one batch: the second is a duplicate, and the batch takes
	// the path that plans each item (on PostgreSQL, not the one round trip).
	res, err := s.Send(ctx, []store.Send{m6, m6})
	if err != nil || res[0].Err != nil || res[1].Err != nil || !res[1].Duplicate {
		t.Fatalf("send a batch with a repeat: %v %+v", err, res)
	}
	newest, err := s.LastEventID(ctx)
	if err != nil || newest != res[0].EventID {
		t.Fatalf("the newest event is %d (%v), want m6's %d", newest, err, res[0].EventID)
	}

	clients := func() []string {
		var out []string
		for _, m := range f.allMessages(conv, 100) {
			out = append(out, m.ClientID)
		}
		return out
	}
	del := func(now int64, limit, want int) {
		t.Helper()
		n, err := s.DeleteExpiredMessages(ctx, now, limit)
		if err != nil || n != want {
			t.Fatalf("delete expired at +%d ms (limit %d): %d, %v; want %d", now-base, limit, n, err, want)
		}
	}
	before := len(f.sync(bob, 0, 0))
	del(base+minute-1, 100, 0)
	del(base+minute, 1, 1)
	del(base+minute, 100, 1)
	// A sync from just before them (a live connection's read, which a
	// store may answer from memory) gives neither.
	for _, e := range f.sync(bob, 0, first[0].EventID-1) {
		if e.Message != nil && (e.Message.ClientID == "exp-1" || e.Message.ClientID == "exp-2") {
			t.Fatalf("a sync after the deletion still gives the expired message %q", e.Message.ClientID)
		}
	}
	if got := clients(); len(got) != 4 || got[0] != "exp-3" {
		t.Fatalf("messages after the first minute: %v", got)
	}
	del(base+2*minute, 100, 2)
	if got := clients(); len(got) != 2 || got[0] != "never" || got[1] != "exp-5" {
		t.Fatalf("messages after two minutes: %v; want never, exp-5", got)
	}
	// exp-1, exp-2 and exp-3 went with their events; exp-6's event is
	// the newest of all and stays, empty.
	evs := f.sync(bob, 0, 0)
	if len(evs) != before-3 {
		t.Fatalf("sync gives %d events after the deletion, %d before; want 3 fewer", len(evs), before)
	}
	withMsg := 0
	for _, e := range evs {
		switch {
		case e.Kind == store.EventMessage && e.Message != nil:
			withMsg++
			if e.Message.ClientID != "never" && e.Message.ClientID != "exp-5" {
				t.Fatalf("sync still gives the expired message %q", e.Message.ClientID)
			}
		case e.Kind == store.EventMessage && e.ID != newest:
			t.Fatalf("sync gives event %d of an expired message (seq %d): not the newest (%d), so it should have gone", e.ID, e.Seq, newest)
		}
	}
	if withMsg != 2 {
		t.Fatalf("sync gives %d messages, want 2", withMsg)
	}
	if last, err := s.LastEventID(ctx); err != nil || last < newest {
		t.Fatalf("the newest event id went from %d to %d (%v)", newest, last, err)
	}
	// The blob of the expired message goes; the other stays.
	if n, err := s.ExpireBlobs(ctx, f.now, 100); err != nil || n != 1 {
		t.Fatalf("expire blobs: %d, %v; want 1", n, err)
	}
	if b, err := s.Blob(ctx, gone.ID); err != nil || !b.Deleted {
		t.Fatalf("blob of the expired message: %+v, %v; want a tombstone", b, err)
	}
	if b, err := s.Blob(ctx, kept.ID); err != nil || b.Deleted {
		t.Fatalf("blob of a kept message: %+v, %v", b, err)
	}
	del(base+3*minute, 100, 1)
	del(base+100*minute, 100, 0)
	if got := clients(); len(got) != 1 || got[0] != "never" {
		t.Fatalf("messages at the end: %v; want never", got)
	}
}

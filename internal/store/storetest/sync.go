package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// testSync: order, paging, addressing and message payloads of the stream.
func testSync(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob, carol := f.user(2, true), f.user(1, true), f.user(1, true)
	start := f.lastEvent()
	conv := f.conversation(alice, bob)
	lonely := f.conversation(carol)
	var sent []store.Send
	for i := range 7 {
		a := alice
		if i%2 == 1 {
			a = bob
		}
		m := f.msg(conv, a, 0, fmt.Sprintf("s%d", i), 1)
		f.sendOne(m)
		sent = append(sent, m)
	}
	f.sendOne(f.msg(lonely, carol, 0, "elsewhere", 1))

	all := f.sync(bob, 0, start)
	k := kinds(all)
	if len(all) != 9 || k[store.EventSession] != 1 || k[store.EventMembership] != 1 || k[store.EventMessage] != 7 {
		t.Fatalf("bob's stream: %v, want his session, the membership and 7 messages", k)
	}
	if !slices.IsSortedFunc(all, func(a, b store.Event) int { return int(a.ID - b.ID) }) {
		t.Fatalf("events not in id order")
	}
	for _, e := range all {
		if e.Conversation == nil || *e.Conversation != conv {
			t.Fatalf("bob got an event of another conversation: %+v", e)
		}
	}
	msgs := ofKind(all, store.EventMessage)
	for i, e := range msgs {
		m := e.Message
		if m == nil || e.Seq != uint64(i+1) || m.Seq != e.Seq || m.ClientID != sent[i].ClientID || m.Sender != sent[i].Sender ||
			m.SenderUser != sent[i].SenderUser || !bytes.Equal(m.Envelope, sent[i].Envelope) || m.Epoch != 1 || m.CreatedAt != sent[i].Now || m.Conversation != conv {
			t.Fatalf("message event %d = %+v (message %+v), want what was sent", i, e, m)
		}
	}
	// Alice's devices each see their own session event, not each other's.
	for i := range alice.Devs {
		if n := kinds(f.sync(alice, i, start))[store.EventSession]; n != 1 {
			t.Fatalf("alice's device %d sees %d session events, want its own one", i, n)
		}
	}
	if n := len(f.sync(carol, 0, start)); n != 3 {
		t.Fatalf("carol sees %d events, want the 3 of her own conversation", n)
	}

	// Paging: any page size gives the same stream.
	for _, page := range []int{1, 2, 4} {
		var got []store.Event
		cursor := start
		for {
			evs, err := s.Sync(ctx, bob.ID, bob.Devs[0], cursor, page)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) > page {
				t.Fatalf("page of %d events for limit %d", len(evs), page)
			}
			if len(evs) == 0 {
				break
			}
			got = append(got, evs...)
			cursor = evs[len(evs)-1].ID
		}
		if len(got) != len(all) {
			t.Fatalf("paging by %d gave %d events, want %d", page, len(got), len(all))
		}
		for i := range got {
			if got[i].ID != all[i].ID || got[i].Kind != all[i].Kind {
				t.Fatalf("paging by %d: event %d is %+v, want %+v", page, i, got[i], all[i])
			}
		}
	}
	last := f.lastEvent()
	if last < all[len(all)-1].ID {
		t.Fatalf("LastEventID %d is before an event bob saw (%d)", last, all[len(all)-1].ID)
	}
	if evs, err := s.Sync(ctx, bob.ID, bob.Devs[0], last, 100); err != nil || len(evs) != 0 {
		t.Fatalf("sync from the last event id: %+v, %v", evs, err)
	}
	if evs, err := s.Sync(ctx, bob.ID, bob.Devs[0], start, 0); err != nil || len(evs) != len(all) {
		t.Fatalf("sync with limit 0 gave %d events, %v; want the default page holding all %d", len(evs), err, len(all))
	}
}

// testSyncMembershipSpans: a member sees a conversation's events from the
// one that added it to the one that removed it, and again after being
// added back, never those in between.
func testSyncMembershipSpans(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	alice, bob, carol := f.user(1, true), f.user(2, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	epoch := uint64(1)
	send := func(cid string) {
		t.Helper()
		if r := f.sendOne(f.msg(conv, alice, 0, cid, epoch)); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	seen := func(a *acct, dev int) []string {
		var out []string
		for _, e := range ofKind(f.sync(a, dev, 0), store.EventMessage) {
			out = append(out, e.Message.ClientID)
		}
		return out
	}
	send("before-carol")
	f.change(conv, alice, bob, carol)
	epoch = f.rotate(conv, alice, alice, bob, carol)
	send("with-carol")
	if got := seen(carol, 0); !slices.Equal(got, []string{"with-carol"}) {
		t.Fatalf("carol sees %q, want only what was sent after she joined", got)
	}

	// Remove bob: both his devices get removed; later messages are not his.
	f.change(conv, alice, carol)
	epoch = f.rotate(conv, alice, alice, carol)
	send("without-bob")
	for i := range bob.Devs {
		evs := f.sync(bob, i, 0)
		if got := seen(bob, i); !slices.Equal(got, []string{"before-carol", "with-carol"}) {
			t.Fatalf("bob's device %d sees %q, want the messages up to his removal", i, got)
		}
		rm := ofKind(evs, store.EventRemoved)
		if len(rm) != 1 || *rm[0].Conversation != conv {
			t.Fatalf("bob's device %d: removed events %+v", i, rm)
		}
		if evs[len(evs)-1].Kind != store.EventRemoved {
			t.Fatalf("bob's device %d sees conversation events after his removal: %+v", i, evs[len(evs)-1])
		}
	}

	// Bob is added back: he sees from then on, not the gap.
	f.change(conv, alice, carol, bob)
	epoch = f.rotate(conv, alice, alice, carol, bob)
	send("bob-back")
	if got := seen(bob, 0); !slices.Equal(got, []string{"before-carol", "with-carol", "bob-back"}) {
		t.Fatalf("bob, added back, sees %q; want the messages of his two spans only", got)
	}
	if got := seen(alice, 0); len(got) != 4 {
		t.Fatalf("alice sees %q, want all 4 messages", got)
	}
}

// testSyncCommitOrder: event ids increase in commit order. Writers commit
// concurrently while a reader follows the stream from its cursor; at the
// end the reader must have seen every event. If ids could commit out of
// order, the reader would move its cursor past an id still to commit and
// skip it.
func testSyncCommitOrder(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	reader := f.user(1, true)
	writers := []*acct{f.user(1, true), f.user(1, true), f.user(1, true), f.user(1, true)}
	var convs []protocol.ConversationID
	for _, w := range writers {
		convs = append(convs, f.conversation(w, reader))
	}
	start := f.lastEvent()

	var done atomic.Bool
	seen := make(map[int64]bool)
	readErr := make(chan error, 1)
	go func() {
		cursor := start
		for {
			finished := done.Load()
			evs, err := s.Sync(ctx, reader.ID, reader.Devs[0], cursor, 37)
			if err != nil {
				readErr <- err
				return
			}
			for _, e := range evs {
				if e.ID <= cursor {
					readErr <- fmt.Errorf("event %d after cursor %d", e.ID, cursor)
					return
				}
				seen[e.ID] = true
				cursor = e.ID
			}
			if finished && len(evs) == 0 {
				readErr <- nil
				return
			}
			if len(evs) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, len(writers))
	for i, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range 25 {
				var batch []store.Send
				for j := range 3 {
					batch = append(batch, store.Send{Conversation: convs[i], Sender: w.Devs[0], SenderUser: w.ID,
						ClientID: fmt.Sprintf("%d-%d", b, j), Epoch: 1, Envelope: []byte{byte(b), byte(j)}, Now: 1})
				}
				if _, err := s.Send(ctx, batch); err != nil {
					errs <- err
					return
				}
				// Events of other kinds from other transactions interleave.
				if b%5 == 0 {
					if _, err := s.Claim(ctx, []protocol.DeviceID{reader.Devs[0]}, 100, 1); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	done.Store(true)
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	all := f.sync(reader, 0, start)
	if len(all) < len(writers)*25*3 {
		t.Fatalf("the stream holds %d events, want at least %d", len(all), len(writers)*25*3)
	}
	missed := 0
	for _, e := range all {
		if !seen[e.ID] {
			missed++
		}
	}
	if missed > 0 || len(seen) != len(all) {
		t.Fatalf("a reader following the stream missed %d of %d events (saw %d): event ids do not increase in commit order", missed, len(all), len(seen))
	}
}

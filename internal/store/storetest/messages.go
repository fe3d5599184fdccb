package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// allMessages pages through a conversation's messages.
func (f *fixture) allMessages(conv protocol.ConversationID, page int) []store.Message {
	f.t.Helper()
	var out []store.Message
	after := uint64(0)
	for {
		ms, err := f.s.Messages(f.ctx, conv, after, page)
		if err != nil {
			f.t.Fatalf("messages: %v", err)
		}
		if len(ms) == 0 {
			return out
		}
		if len(ms) > page {
			f.t.Fatalf("messages returned %d rows for limit %d", len(ms), page)
		}
		out = append(out, ms...)
		after = ms[len(ms)-1].Seq
	}
}

// checkGapFree checks that the messages are seq 1..n in order.
func checkGapFree(t *testing.T, ms []store.Message, n int) {
	t.Helper()
	if len(ms) != n {
		t.Fatalf("%d messages, want %d", len(ms), n)
	}
	for i, m := range ms {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d: seqs must be 1..%d without gaps or repeats", i, m.Seq, n)
		}
	}
}

// testSendGapFree: 8 concurrent senders × 200 messages through SendOne
// (group commit) get seqs 1..1600 with no gap and no repeat, and event ids
// in the same order.
func testSendGapFree(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob := f.user(1, true), f.user(1, true)
	conv := f.conversation(alice, bob)

	const senders, each = 8, 200
	type sent struct {
		m store.Send
		r store.SendResult
	}
	results := make([][]sent, senders)
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := alice
			if g%2 == 1 {
				a = bob
			}
			for i := range each {
				m := store.Send{Conversation: conv, Sender: a.Devs[0], SenderUser: a.ID, ClientID: fmt.Sprintf("g%d-%d", g, i),
					Epoch: 1, Envelope: []byte(fmt.Sprintf("body %d/%d", g, i)), Now: 1_700_000_000_000 + int64(i)}
				r, err := s.SendOne(ctx, m)
				if err != nil {
					errs <- fmt.Errorf("sender %d message %d: %w", g, i, err)
					return
				}
				results[g] = append(results[g], sent{m, r})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	bySeq := make(map[uint64]sent)
	for _, rs := range results {
		for _, x := range rs {
			if x.r.Duplicate {
				t.Fatalf("a first send reported Duplicate")
			}
			if prev, dup := bySeq[x.r.Seq]; dup {
				t.Fatalf("seq %d given to %q and %q", x.r.Seq, prev.m.ClientID, x.m.ClientID)
			}
			bySeq[x.r.Seq] = x
		}
	}
	const n = senders * each
	var lastEvent int64
	for seq := uint64(1); seq <= n; seq++ {
		x, ok := bySeq[seq]
		if !ok {
			t.Fatalf("no message got seq %d", seq)
		}
		if x.r.EventID <= lastEvent {
			t.Fatalf("seq %d has event id %d, not after seq %d's %d", seq, x.r.EventID, seq-1, lastEvent)
		}
		lastEvent = x.r.EventID
	}
	ms := f.allMessages(conv, 333)
	checkGapFree(t, ms, n)
	for _, m := range ms {
		x := bySeq[m.Seq]
		if m.ClientID != x.m.ClientID || !bytes.Equal(m.Envelope, x.m.Envelope) || m.Sender != x.m.Sender || m.SenderUser != x.m.SenderUser ||
			m.Epoch != 1 || m.CreatedAt != x.m.Now || m.Conversation != conv {
			t.Fatalf("message %d = %+v, want what was sent with %q", m.Seq, m, x.m.ClientID)
		}
	}
	if c := f.conv(conv); c.LastSeq != n || c.MessagesInEpoch != n {
		t.Fatalf("conversation counters: last seq %d, in epoch %d; want %d", c.LastSeq, c.MessagesInEpoch, n)
	}
}

// testSendConcurrentBatches: concurrent Send batches spanning two
// conversations (on PostgreSQL: concurrent transactions locking both) keep
// each conversation gap-free.
func testSendConcurrentBatches(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob := f.user(1, true), f.user(1, true)
	convs := []protocol.ConversationID{f.conversation(alice, bob), f.conversation(bob, alice)}
	const workers, batches, size = 4, 20, 6
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var batch []store.Send
				for i := range size {
					// Alternate the order of the conversations within a batch.
					conv := convs[(w+b+i)%2]
					batch = append(batch, store.Send{Conversation: conv, Sender: alice.Devs[0], SenderUser: alice.ID,
						ClientID: fmt.Sprintf("w%d-b%d-%d", w, b, i), Epoch: 1, Envelope: []byte{byte(w), byte(b), byte(i)}, Now: 1})
				}
				res, err := s.Send(ctx, batch)
				if err != nil {
					errs <- err
					return
				}
				for i, r := range res {
					if r.Err != nil || r.Seq == 0 {
						errs <- fmt.Errorf("item %d: %+v", i, r)
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
	total := 0
	for _, conv := range convs {
		ms := f.allMessages(conv, 1000)
		checkGapFree(t, ms, len(ms))
		total += len(ms)
	}
	if total != workers*batches*size {
		t.Fatalf("%d messages stored, want %d", total, workers*batches*size)
	}
}

// testSendChecks: refused items get their error and do not stop the
// batch; the accepted ones keep gap-free seqs.
func testSendChecks(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob, carol := f.user(1, true), f.user(2, true), f.user(1, true)
	conv := f.conversation(alice, bob)

	spoof := f.msg(conv, alice, 0, "spoof", 1)
	spoof.SenderUser = bob.ID // alice's device claiming to be bob
	batch := []store.Send{
		f.msg(conv, alice, 0, "a1", 1),
		f.msg(conv, carol, 0, "c1", 1), // not a member
		f.msg(conv, bob, 0, "b1", 1),
		f.msg(protocol.NewConversationID(), alice, 0, "x1", 1), // no such conversation
		spoof,
		f.msg(conv, bob, 1, "b2", 2), // not the current epoch
		f.msg(conv, alice, 0, "a2", 1),
	}
	res, err := s.Send(ctx, batch)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	want := []struct {
		seq uint64
		err error
	}{{1, nil}, {0, store.ErrNotMember}, {2, nil}, {0, store.ErrNotFound}, {0, store.ErrNotMember}, {0, store.ErrStaleEpoch}, {3, nil}}
	for i, w := range want {
		r := res[i]
		if w.err == nil && (r.Err != nil || r.Seq != w.seq || r.EventID == 0) {
			t.Fatalf("item %d (%s) = %+v, want seq %d", i, batch[i].ClientID, r, w.seq)
		}
		if w.err != nil && (!errors.Is(r.Err, w.err) || r.Seq != 0) {
			t.Fatalf("item %d (%s) = %+v, want error %v", i, batch[i].ClientID, r, w.err)
		}
	}
	var ee *store.EpochError
	if !errors.As(res[5].Err, &ee) || ee.Current != 1 {
		t.Fatalf("stale epoch error %v does not carry the current epoch 1", res[5].Err)
	}
	checkGapFree(t, f.allMessages(conv, 100), 3)

	_, err = s.SendOne(ctx, f.msg(conv, carol, 0, "c2", 1))
	wantErr(t, "SendOne by a non-member", err, store.ErrNotMember)
	// Alone in their batch (on PostgreSQL the one round trip, which has
	// no foreign key behind it to refuse them: the statement's own
	// checks must), a device claiming another account and a send to a
	// conversation that does not exist are refused and store nothing.
	spoof.ClientID = "spoof-alone"
	_, err = s.SendOne(ctx, spoof)
	wantErr(t, "SendOne claiming another account", err, store.ErrNotMember)
	_, err = s.SendOne(ctx, f.msg(protocol.NewConversationID(), alice, 0, "x2", 1))
	wantErr(t, "SendOne to no conversation", err, store.ErrNotFound)
	checkGapFree(t, f.allMessages(conv, 100), 3)
	if r, err := s.SendOne(ctx, f.msg(conv, alice, 0, "a-after", 1)); err != nil || r.Seq != 4 {
		t.Fatalf("a send after the refused ones: %+v, %v; want seq 4", r, err)
	}

	// A removed member may no longer send.
	f.change(conv, alice)
	f.rotate(conv, alice, alice)
	_, err = s.SendOne(ctx, f.msg(conv, bob, 0, "b3", 2))
	wantErr(t, "send by a removed member", err, store.ErrNotMember)
	if _, err := s.SendOne(ctx, f.msg(conv, alice, 0, "a3", 2)); err != nil {
		t.Fatalf("send by the remaining member: %v", err)
	}
	checkGapFree(t, f.allMessages(conv, 100), 5)
}

// testIdempotency: a retry returns the first result, also after a
// restart; the same client id with another body is refused.
func testIdempotency(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	ctx := f.ctx
	alice, bob := f.user(2, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	other := f.conversation(alice, bob)

	m1 := f.msg(conv, alice, 0, "m1", 1)
	first := f.sendOne(m1)
	if first.Duplicate || first.Seq != 1 || first.EventID == 0 || first.CreatedAt != m1.Now {
		t.Fatalf("first send = %+v", first)
	}
	f.sendOne(f.msg(conv, bob, 0, "between", 1))

	retry := m1
	retry.Now = f.tick() // a retry comes later; the first result stands
	check := func(what string) {
		t.Helper()
		r, err := f.s.SendOne(ctx, retry)
		if err != nil || !r.Duplicate || r.Seq != first.Seq || r.EventID != first.EventID || r.CreatedAt != first.CreatedAt {
			t.Fatalf("%s: %+v, %v; want the first result %+v marked Duplicate", what, r, err, first)
		}
		res, err := f.s.Send(ctx, []store.Send{retry})
		if err != nil || !res[0].Duplicate || res[0].Seq != first.Seq || res[0].EventID != first.EventID {
			t.Fatalf("%s through Send: %+v, %v", what, res, err)
		}
		changed := retry
		changed.Envelope = []byte("another body")
		_, err = f.s.SendOne(ctx, changed)
		wantErr(t, what+" with another body", err, store.ErrIdempotency)
		moved := retry
		moved.Conversation = other
		_, err = f.s.SendOne(ctx, moved)
		wantErr(t, what+" to another conversation", err, store.ErrIdempotency)
		ms := f.allMessages(conv, 100)
		checkGapFree(t, ms, 2)
		if !bytes.Equal(ms[0].Envelope, m1.Envelope) || ms[0].CreatedAt != m1.Now {
			t.Fatalf("%s: the stored message changed: %+v", what, ms[0])
		}
	}
	check("retry")

	// The client id is per sender device: another device may use it.
	r := f.sendOne(f.msg(conv, alice, 1, "m1", 1))
	if r.Duplicate || r.Seq != 3 {
		t.Fatalf("same client id from another device = %+v, want a new message with seq 3", r)
	}

	// Within one batch, a repeat is a duplicate of the item before it.
	m4 := f.msg(conv, bob, 0, "m4", 1)
	res, err := f.s.Send(ctx, []store.Send{m4, m4})
	if err != nil || res[0].Duplicate || !res[1].Duplicate || res[1].Seq != res[0].Seq || res[1].EventID != res[0].EventID {
		t.Fatalf("a repeat within one batch: %+v, %v", res, err)
	}
	m5 := f.msg(conv, bob, 0, "m5", 1)
	m5b := m5
	m5b.Envelope = []byte("different")
	res, err = f.s.Send(ctx, []store.Send{m5, m5b})
	if err != nil || res[0].Err != nil || !errors.Is(res[1].Err, store.ErrIdempotency) {
		t.Fatalf("a changed repeat within one batch: %+v, %v", res, err)
	}

	// After a restart the first result is still returned.
	if err := f.s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	f.s = open(t, nil)
	r, err = f.s.SendOne(ctx, retry)
	if err != nil || !r.Duplicate || r.Seq != first.Seq || r.EventID != first.EventID || r.CreatedAt != first.CreatedAt {
		t.Fatalf("retry after reopening: %+v, %v; want %+v", r, err, first)
	}
	_, err = f.s.SendOne(ctx, store.Send{Conversation: conv, Sender: m1.Sender, SenderUser: m1.SenderUser, ClientID: "m1", Epoch: 1, Envelope: []byte("x"), Now: f.tick()})
	wantErr(t, "changed retry after reopening", err, store.ErrIdempotency)
	if n := len(f.allMessages(conv, 100)); n != 5 {
		t.Fatalf("%d messages after the retries, want 5", n)
	}
	if r := f.sendOne(f.msg(conv, alice, 0, "after-restart", 1)); r.Seq != 6 {
		t.Fatalf("first new message after reopening has seq %d, want 6", r.Seq)
	}
}

// testRotationPolicy: the message-count and age policies mark the
// conversation rotation-required after the message that reaches them;
// later sends on the epoch are refused until the next epoch.
func testRotationPolicy(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob := f.user(1, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	since := f.lastEvent()

	policy := func(m store.Send) store.Send { m.RotateAfterMessages = 3; return m }
	for i := 1; i <= 3; i++ {
		r := f.sendOne(policy(f.msg(conv, alice, 0, fmt.Sprintf("p%d", i), 1)))
		c := f.conv(conv)
		if r.Seq != uint64(i) || c.RotationRequired != (i == 3) {
			t.Fatalf("message %d: seq %d, rotation required %v", i, r.Seq, c.RotationRequired)
		}
	}
	if c := f.conv(conv); c.RotationReason != "policy" || c.MessagesInEpoch != 3 {
		t.Fatalf("after the policy count: %+v", c)
	}
	_, err := s.SendOne(ctx, policy(f.msg(conv, bob, 0, "p4", 1)))
	var ee *store.EpochError
	if !errors.Is(err, store.ErrStaleEpoch) || !errors.As(err, &ee) || ee.Current != 1 {
		t.Fatalf("send while rotation is required: %v, want ErrStaleEpoch with Current 1", err)
	}
	rot := ofKind(f.sync(bob, 0, since), store.EventRotation)
	if len(rot) != 1 || rot[0].Reason != "policy" || rot[0].Epoch != 1 || *rot[0].Conversation != conv {
		t.Fatalf("rotation events: %+v, want one for policy at epoch 1", rot)
	}

	f.rotate(conv, bob, alice, bob)
	_, err = s.SendOne(ctx, f.msg(conv, bob, 0, "old-epoch", 1))
	if !errors.As(err, &ee) || !errors.Is(err, store.ErrStaleEpoch) || ee.Current != 2 {
		t.Fatalf("send on the old epoch: %v, want ErrStaleEpoch with Current 2", err)
	}
	if r := f.sendOne(f.msg(conv, bob, 0, "new-epoch", 2)); r.Seq != 4 {
		t.Fatalf("first message of epoch 2 has seq %d, want 4", r.Seq)
	}

	// Within one batch: the second message reaches the count, the rest
	// of the batch is refused, and nothing else is disturbed.
	f.rotate(conv, alice, alice, bob)
	var batch []store.Send
	for i := range 5 {
		m := f.msg(conv, alice, 0, fmt.Sprintf("q%d", i), 3)
		m.RotateAfterMessages = 2
		batch = append(batch, m)
	}
	res, err := s.Send(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if i < 2 && (r.Err != nil || r.Seq != uint64(5+i)) {
			t.Fatalf("batch item %d = %+v, want seq %d", i, r, 5+i)
		}
		if i >= 2 && !errors.Is(r.Err, store.ErrStaleEpoch) {
			t.Fatalf("batch item %d = %+v, want ErrStaleEpoch", i, r)
		}
	}

	// Age: an epoch older than the limit is marked after the message.
	f.rotate(conv, alice, alice, bob)
	started := f.conv(conv).EpochStartedAt
	m := f.msg(conv, alice, 0, "young", 4)
	m.RotateAfterMillis, m.Now = 1000, started+999
	f.sendOne(m)
	if f.conv(conv).RotationRequired {
		t.Fatalf("an epoch 999 ms old was marked with a 1000 ms limit")
	}
	m = f.msg(conv, alice, 0, "old", 4)
	m.RotateAfterMillis, m.Now = 1000, started+1000
	if r := f.sendOne(m); r.Err != nil {
		t.Fatalf("the message that reaches the age limit is refused: %v", r.Err)
	}
	if c := f.conv(conv); !c.RotationRequired || c.RotationReason != "policy" {
		t.Fatalf("an epoch 1000 ms old was not marked: %+v", c)
	}
	checkGapFree(t, f.allMessages(conv, 100), 8)
}

// testConcurrentRetries: a message and its retry arrive at once, in two
// transactions. One stores it; the other returns the same result as a
// duplicate, or ErrIdempotency when the retry names another conversation
// (then the two transactions lock different conversations and race on the
// insert itself). Seqs stay gap-free.
func testConcurrentRetries(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob := f.user(1, true), f.user(1, true)
	convs := []protocol.ConversationID{f.conversation(alice, bob), f.conversation(alice, bob)}
	const rounds = 40
	stored := map[protocol.ConversationID]uint64{}
	for round := range rounds {
		m := f.msg(convs[0], alice, 0, fmt.Sprintf("r%d", round), 1)
		other := m
		if round%2 == 1 {
			other.Conversation = convs[1]
		}
		batches := [][]store.Send{{m}, {other}}
		res := make([]store.SendResult, 2)
		errs := make([]error, 2)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range 2 {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				rs, err := s.Send(ctx, batches[i])
				errs[i] = err
				if err == nil {
					res[i] = rs[0]
				}
			}()
		}
		start.Done()
		done.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: send %d: %v", round, i, err)
			}
		}
		win := 0
		if res[0].Duplicate || res[0].Err != nil {
			win = 1
		}
		first, second := res[win], res[1-win]
		conv := batches[win][0].Conversation
		if first.Err != nil || first.Duplicate || first.Seq != stored[conv]+1 {
			t.Fatalf("round %d: no send stored the message as seq %d: %+v", round, stored[conv]+1, res)
		}
		stored[conv]++
		if round%2 == 0 && (!second.Duplicate || second.Seq != first.Seq || second.EventID != first.EventID) {
			t.Fatalf("round %d: the concurrent retry got %+v, want the first result %+v as a duplicate", round, second, first)
		}
		if round%2 == 1 && !errors.Is(second.Err, store.ErrIdempotency) {
			t.Fatalf("round %d: the concurrent retry to another conversation got %+v, want ErrIdempotency", round, second)
		}
	}
	for _, conv := range convs {
		checkGapFree(t, f.allMessages(conv, 1000), int(stored[conv]))
	}
	if stored[convs[0]]+stored[convs[1]] != rounds {
		t.Fatalf("%d messages stored, want %d", stored[convs[0]]+stored[convs[1]], rounds)
	}
}

// memberMessages pages through the messages a may read.
func (f *fixture) memberMessages(a *acct, conv protocol.ConversationID, page int) []string {
	f.t.Helper()
	var out []string
	after := uint64(0)
	for {
		ms, err := f.s.MemberMessages(f.ctx, a.ID, conv, after, page)
		if err != nil {
			f.t.Fatalf("member messages: %v", err)
		}
		if len(ms) == 0 {
			return out
		}
		if len(ms) > page {
			f.t.Fatalf("member messages returned %d rows for limit %d", len(ms), page)
		}
		for _, m := range ms {
			if m.Seq <= after || m.Conversation != conv {
				f.t.Fatalf("member messages after %d returned seq %d of %s", after, m.Seq, m.Conversation)
			}
			after = m.Seq
			out = append(out, m.ClientID)
		}
	}
}

// testMemberMessages: the history a member reads holds the messages sent
// within its spans of membership, the same messages as its sync, whatever
// the page size; a user removed and added back does not read the messages
// of the gap, and a user who never was a member reads nothing.
func testMemberMessages(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	alice, bob, carol, dave := f.user(1, true), f.user(1, true), f.user(1, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	epoch := uint64(1)
	send := func(cid string) {
		t.Helper()
		if r := f.sendOne(f.msg(conv, alice, 0, cid, epoch)); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	send("m1")
	f.change(conv, alice, bob, carol)
	epoch = f.rotate(conv, alice, alice, bob, carol)
	send("m2")
	f.change(conv, alice, carol)
	epoch = f.rotate(conv, alice, alice, carol)
	send("m3")
	send("m4")
	f.change(conv, alice, carol, bob)
	epoch = f.rotate(conv, alice, alice, carol, bob)
	send("m5")

	synced := func(a *acct) []string {
		var out []string
		for _, e := range f.sync(a, 0, 0) {
			if e.Kind == store.EventMessage && *e.Conversation == conv {
				out = append(out, e.Message.ClientID)
			}
		}
		return out
	}
	for _, c := range []struct {
		who  *acct
		want []string
	}{
		{alice, []string{"m1", "m2", "m3", "m4", "m5"}},
		{bob, []string{"m1", "m2", "m5"}},
		{carol, []string{"m2", "m3", "m4", "m5"}},
		{dave, nil},
	} {
		if got := synced(c.who); !slices.Equal(got, c.want) {
			t.Fatalf("%s syncs %q, want %q", c.who.Name, got, c.want)
		}
		for _, page := range []int{1, 2, 100} {
			if got := f.memberMessages(c.who, conv, page); !slices.Equal(got, c.want) {
				t.Fatalf("%s's history (pages of %d) is %q, want %q as its sync", c.who.Name, page, got, c.want)
			}
		}
	}
}

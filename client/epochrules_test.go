package client

import (
	"errors"
	"slices"
	"testing"
	"time"

	"sandi.dev/protocol"
)

// The order rules of §7.4 step 9 on a conversation whose device holds
// epochs 1 and 2 for record 0 and epoch 4 for record 2, and whose stream
// delivered record 1: each distribution is accepted or refused, a refusal
// raises a stale-epoch alarm, and the state survives a restart.
func TestEpochOrder(t *testing.T) {
	st := NewMemStorage()
	now := func() time.Time { return time.UnixMilli(1_780_000_000_000) }
	c, err := Open(Options{Storage: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	conv := protocol.NewConversationID()
	cs := c.newConv(conv)
	cs.hold(1, 0)
	cs.hold(2, 0)
	cs.hold(4, 2)
	dist := func(n, seq uint64, commit byte) *protocol.Distribution {
		return &protocol.Distribution{Conversation: conv, Epoch: n, ChainSeq: seq, Commitment: [protocol.HashSize]byte{commit}}
	}
	for _, tc := range []struct {
		d  *protocol.Distribution
		ok bool
	}{
		{dist(3, 0, 1), true},  // after the epochs of record 0, before those of record 2
		{dist(3, 1, 1), true},  // a record in between
		{dist(3, 2, 1), true},  // record 2, below its first held epoch: read only
		{dist(5, 2, 1), true},  // record 2, after it
		{dist(6, 3, 1), true},  // a newer record, after everything held
		{dist(5, 0, 1), false}, // record 0, above an epoch held for record 2
		{dist(2, 1, 1), false}, // record 1, not above every epoch of record 0
		{dist(4, 3, 1), false}, // record 3, not above the epochs of record 2
	} {
		err := c.checkOrder(cs, tc.d)
		if (err == nil) != tc.ok {
			t.Errorf("epoch %d for record %d: %v, want ok %v", tc.d.Epoch, tc.d.ChainSeq, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrServerMisbehaved) || !errors.Is(err, errStale) || !cs.refused(tc.d)) {
			t.Errorf("epoch %d for record %d: %v, not refused as stale", tc.d.Epoch, tc.d.ChainSeq, err)
		}
	}
	// The stream delivered record 1: an epoch for record 0 is refused,
	// however it is numbered; one for record 1 is not.
	cs.StreamSeq = 1
	if err := c.checkOrder(cs, dist(3, 0, 2)); !errors.Is(err, errStale) {
		t.Fatalf("epoch 3 for record 0 after record 1 was streamed: %v", err)
	}
	if err := c.checkOrder(cs, dist(3, 1, 2)); err != nil {
		t.Fatal(err)
	}
	// A refused distribution is recognised by its commitment: another
	// distribution of the same epoch is not.
	if !cs.refused(dist(5, 0, 1)) || cs.refused(dist(5, 0, 9)) {
		t.Fatal("refusals are not keyed by epoch and commitment")
	}
	as, err := c.alarms(conv)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 4 || slices.ContainsFunc(as, func(a Alarm) bool { return a.Kind != AlarmStaleEpoch || a.Conversation != conv }) {
		t.Fatalf("alarms %+v", as)
	}
	// The rules' state is kept with the conversation.
	if err := c.saveConv(cs); err != nil {
		t.Fatal(err)
	}
	c2, err := Open(Options{Storage: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	cs2, err := c2.conv(conv)
	if err != nil {
		t.Fatal(err)
	}
	if cs2.StreamSeq != 1 || cs2.Spans[0] != (epochSpan{1, 2}) || cs2.Spans[2] != (epochSpan{4, 4}) || len(cs2.Refused) != 4 || !cs2.refused(dist(5, 0, 1)) {
		t.Fatalf("after a restart: stream head %d, spans %v, refused %v", cs2.StreamSeq, cs2.Spans, cs2.Refused)
	}
}

// At most maxRefused refusals are kept, the newest.
func TestRefusedBound(t *testing.T) {
	cs := &convState{}
	for n := uint64(1); n <= maxRefused+10; n++ {
		cs.refuse(&protocol.Distribution{Epoch: n})
	}
	if len(cs.Refused) != maxRefused || cs.Refused[0].Epoch != 11 || cs.refused(&protocol.Distribution{Epoch: 10}) {
		t.Fatalf("%d refusals, first %d", len(cs.Refused), cs.Refused[0].Epoch)
	}
}

// coverage names the missing member devices and the recipients that are
// not member devices, in canonical order.
func TestCoverage(t *testing.T) {
	u1, u2 := protocol.UserID{1}, protocol.UserID{2}
	d1, d2, d3 := protocol.DeviceID{1}, protocol.DeviceID{2}, protocol.DeviceID{3}
	want := map[protocol.UserID][]protocol.DeviceID{u1: {d2, d1}, u2: {d3}}
	ref := func(u protocol.UserID, d protocol.DeviceID) protocol.DeviceRef {
		return protocol.DeviceRef{User: u, Device: d}
	}
	if m, x := coverage(want, []protocol.DeviceRef{ref(u1, d1), ref(u1, d2), ref(u2, d3)}); len(m)+len(x) != 0 {
		t.Fatalf("exact cover: missing %v, extra %v", m, x)
	}
	m, x := coverage(want, []protocol.DeviceRef{ref(u2, d1), ref(u1, d1), ref(u2, d2)})
	if !slices.Equal(m, []protocol.DeviceRef{ref(u1, d2), ref(u2, d3)}) || !slices.Equal(x, []protocol.DeviceRef{ref(u2, d1), ref(u2, d2)}) {
		t.Fatalf("missing %v, extra %v", m, x)
	}
}

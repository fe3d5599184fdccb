package sqlstore

import (
	"context"
	"errors"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/internal/testpg"
)

// TestPostgresSendPaths: on PostgreSQL a batch whose items are all
// accepted as they stand is written in one round trip; a batch with an
// item to refuse, a retry, or a message that makes the rotation policy
// require a new epoch takes the planned path, and gets the same answers
// as on SQLite (the conformance suite checks those answers).
func TestPostgresSendPaths(t *testing.T) {
	ctx := context.Background()
	s, senders := benchStore(t, testpg.URL(t), 2)
	t.Cleanup(func() { s.Close() })
	fast := func() int64 { return s.fastSends.Load() }

	a, b := senders[0], senders[1]
	before := fast()
	res, err := s.Send(ctx, []store.Send{a.send(1), b.send(2), a.send(3)})
	if err != nil || res[0].Seq != 1 || res[1].Seq != 1 || res[2].Seq != 2 ||
		res[1].EventID != res[0].EventID+1 || res[2].EventID != res[0].EventID+2 {
		t.Fatalf("batch: %+v %v", res, err)
	}
	if fast() != before+1 {
		t.Fatal("an ordinary batch did not take the one round trip")
	}

	// Each of these must not be written by the one round trip.
	notMember := a.send(4)
	notMember.Conversation = b.conv
	stale := a.send(5)
	stale.Epoch = 2
	rotate := a.send(6)
	rotate.RotateAfterMessages = 3 // the third message of the epoch
	for _, tc := range []struct {
		name string
		m    store.Send
		want error
	}{
		{"not a member", notMember, store.ErrNotMember},
		{"stale epoch", stale, store.ErrStaleEpoch},
		{"retry", a.send(1), nil},
		{"rotation", rotate, nil},
	} {
		before := fast()
		res, err := s.Send(ctx, []store.Send{tc.m})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !errors.Is(res[0].Err, tc.want) || (tc.want == nil && res[0].Seq == 0) {
			t.Fatalf("%s: %+v, want %v", tc.name, res[0], tc.want)
		}
		if fast() != before {
			t.Fatalf("%s: written by the one round trip", tc.name)
		}
		if tc.name == "retry" && (!res[0].Duplicate || res[0].Seq != 1) {
			t.Fatalf("retry: %+v, want seq 1 as a duplicate", res[0])
		}
	}
	c, err := s.Conversation(ctx, a.conv)
	if err != nil || c.LastSeq != 3 || !c.RotationRequired {
		t.Fatalf("after the rotation: %+v %v, want seq 3 and a rotation required", c, err)
	}
}

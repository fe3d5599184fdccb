package sqlstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/internal/testpg"
	"sandi.dev/protocol"
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
	// A message that expires takes it too, with its expiry.
	exp := b.send(10)
	exp.ExpiresAt = 60_010
	if res, err := s.Send(ctx, []store.Send{exp}); err != nil || res[0].Err != nil || fast() != before+2 {
		t.Fatalf("a send with an expiry: %+v %v, fast %d; want the one round trip", res, err, fast()-before)
	}
	if n, err := s.DeleteExpiredMessages(ctx, exp.ExpiresAt, 10); err != nil || n != 1 {
		t.Fatalf("delete expired: %d, %v; want the message sent by the one round trip", n, err)
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

// TestPostgresReadsOtherWriters: two stores on one PostgreSQL database,
// as two servers. Each remembers the token and membership answers it
// read; a write through one is seen by the other at the latest pgReadTTL
// after it committed (and by the writer itself at once), and a send
// through the other with a revoked device is refused whatever it
// remembers.
func TestPostgresReadsOtherWriters(t *testing.T) {
	defer func(d time.Duration) { pgReadTTL = d }(pgReadTTL)
	pgReadTTL = 300 * time.Millisecond
	ctx := context.Background()
	url := testpg.URL(t)
	a, senders := benchStore(t, url, 2)
	t.Cleanup(func() { a.Close() })
	b := openTestStore(t, url, nil)
	sd, other := senders[0], senders[1]
	tok := []byte("token0") // benchStore's token hashes

	// b remembers both answers.
	if _, err := b.DeviceByToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	ms, err := b.Members(ctx, sd.conv)
	if err != nil || len(ms) != 1 {
		t.Fatalf("members: %v %v", ms, err)
	}

	// a adds a member and deletes the token.
	c, err := a.Conversation(ctx, sd.conv)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ChangeMembership(ctx, store.MembershipChange{Conversation: sd.conv, PrevSeq: c.ChainSeq,
		Record: store.RecordRow{Seq: c.ChainSeq + 1, Encoded: []byte("record")}, Head: [32]byte{1},
		Members: []store.MemberRow{{User: sd.user, Role: protocol.RoleAdmin}, {User: other.user, Role: protocol.RoleMember}}, Now: 2}); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	if _, err := a.DeviceByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the writer still finds the deleted token: %v", err)
	}
	if ms, err := a.Members(ctx, sd.conv); err != nil || len(ms) != 2 {
		t.Fatalf("the writer's members: %v %v, want 2", ms, err)
	}

	// b, once the time bound has passed since the writes committed.
	time.Sleep(time.Until(committed.Add(pgReadTTL)))
	if _, err := b.DeviceByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%v after another server deleted the token: %v, want ErrNotFound", pgReadTTL, err)
	}
	if ms, err := b.Members(ctx, sd.conv); err != nil || len(ms) != 2 {
		t.Fatalf("%v after another server added a member: %v %v, want 2 members", pgReadTTL, ms, err)
	}

	// A device revoked through a is refused by b's send, whatever b
	// remembers of it.
	if _, err := b.DeviceByToken(ctx, []byte("token1")); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeDevice(ctx, other.user, other.dev, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SendOne(ctx, other.send(10)); !errors.Is(err, store.ErrNotMember) {
		t.Fatalf("a send from a revoked device through the other server: %v, want ErrNotMember", err)
	}
}

// TestPostgresReadsWhileWriting: readers of the remembered answers run
// while writes forget them (for the race detector), and once the writes
// have ended every reader sees the last one.
func TestPostgresReadsWhileWriting(t *testing.T) {
	ctx := context.Background()
	s, senders := benchStore(t, testpg.URL(t), 2)
	t.Cleanup(func() { s.Close() })
	sd := senders[0]
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if _, err := s.DeviceByToken(ctx, []byte("token0")); err != nil {
					errs <- err
					return
				}
				if _, err := s.Members(ctx, sd.conv); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 20 {
		if err := s.TouchToken(ctx, []byte("token0"), int64(100+i)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPassword(ctx, sd.user, "h"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if d, err := s.DeviceByToken(ctx, []byte("token0")); err != nil || d.TokenUsedAt != 119 {
		t.Fatalf("after the writes: %+v %v, want the last use 119", d, err)
	}
}

// TestPostgresSendPlans: the send path's statements are planned once per
// connection, not at every batch. PostgreSQL plans a prepared statement
// for its parameters' values at each of its first five executions, and
// after them too while such a plan looks cheaper than the generic one,
// which for the one round trip's statement (arrays whose lengths it then
// knows) is always: planning it took longer than running it. The send
// connections use the generic plan (plan_cache_mode), which
// pg_prepared_statements of the connection counts.
func TestPostgresSendPlans(t *testing.T) {
	ctx := context.Background()
	s, senders := benchStore(t, testpg.URL(t), 2)
	t.Cleanup(func() { s.Close() })
	a, b := senders[0], senders[1]
	if _, err := s.Send(ctx, []store.Send{a.send(1)}); err != nil {
		t.Fatal(err)
	}
	// Retries take the planned path (its look-up), after the one round
	// trip failed on the stored client id (pgx then prepares the latter's
	// statements again).
	for i := range 7 {
		if res, err := s.Send(ctx, []store.Send{a.send(1)}); err != nil || !res[0].Duplicate {
			t.Fatalf("retry %d: %+v %v", i, res, err)
		}
	}
	for i := range 12 {
		if _, err := s.Send(ctx, []store.Send{a.send(int64(i + 2)), b.send(int64(i + 2))}); err != nil {
			t.Fatal(err)
		}
	}
	db := s.sends
	if n := db.Stats().OpenConnections; n != 1 {
		t.Fatalf("%d send connections open, want the one the sends, one after the other, used", n)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	plans := map[string][2]int64{}
	rows, err := conn.QueryContext(ctx, `SELECT statement, custom_plans, generic_plans FROM pg_prepared_statements`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var q string
		var custom, generic int64
		if err := rows.Scan(&q, &custom, &generic); err != nil {
			t.Fatal(err)
		}
		plans[q] = [2]int64{custom, generic}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		name, q string
		runs    int64
	}{
		{"the one round trip", pgFastSendSeq, 12},
		{"the look-up", pgPrevious, 7},
		{"the membership check", pgMayPost, 7},
	} {
		if p := plans[want.q]; p != [2]int64{0, want.runs} {
			t.Errorf("%s: planned for its values %d times, generic plan used %d times; want %d runs on the generic plan", want.name, p[0], p[1], want.runs)
		}
	}
}

package sqlstore

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/internal/testpg"
)

// errForged is the answer of a failed check: the server's verification of
// a signature a member forged.
var errForged = errors.New("forged signature")

// checkResult is a send's Check whose answer the test gives.
type checkResult struct {
	once   sync.Once
	answer chan error
	called chan struct{}
	err    error
}

func newCheck() *checkResult {
	return &checkResult{answer: make(chan error, 1), called: make(chan struct{}, 1)}
}

func (c *checkResult) check() error {
	select {
	case c.called <- struct{}{}:
	default:
	}
	c.once.Do(func() { c.err = <-c.answer })
	return c.err
}

// TestSendCheck: an item whose check fails is not stored and is answered
// with the check's error, whatever else its batch holds; an item whose
// check passes is stored as without one. Both databases, through Send
// (a batch of several) and through the group commit.
func TestSendCheck(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := context.Background()
			url := filepath.Join(t.TempDir(), "check.db")
			if db == "postgres" {
				url = testpg.URL(t)
			}
			s, senders := benchStore(t, url, 2)
			t.Cleanup(func() { s.Close() })
			a, b := senders[0], senders[1]
			with := func(m store.Send, err error) store.Send {
				m.Check = func() error { return err }
				return m
			}
			res, err := s.Send(ctx, []store.Send{with(a.send(1), nil), with(b.send(2), errForged), a.send(3), with(b.send(4), nil)})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Err != nil || res[0].Seq != 1 || !errors.Is(res[1].Err, errForged) || res[1].Seq != 0 ||
				res[2].Err != nil || res[2].Seq != 2 || res[3].Err != nil || res[3].Seq != 1 {
				t.Fatalf("batch: %+v", res)
			}
			// Alone, through the group commit: first as a new message,
			// then as the retry of a stored one (a forged retry must not
			// get the stored message's answer).
			for _, m := range []store.Send{b.send(5), b.send(4)} {
				if r, err := s.SendOne(ctx, with(m, errForged)); !errors.Is(err, errForged) || r.Seq != 0 {
					t.Fatalf("forged %s: %+v %v", m.ClientID, r, err)
				}
			}
			if r, err := s.SendOne(ctx, with(b.send(4), nil)); err != nil || !r.Duplicate || r.Seq != 1 {
				t.Fatalf("retry: %+v %v", r, err)
			}
			// A send to refuse: the store's answer once the check passed,
			// the check's when it failed.
			stale := a.send(7)
			stale.Epoch = 2
			if _, err := s.SendOne(ctx, with(stale, nil)); !errors.Is(err, store.ErrStaleEpoch) {
				t.Fatalf("stale epoch: %v", err)
			}
			if _, err := s.SendOne(ctx, with(stale, errForged)); !errors.Is(err, errForged) {
				t.Fatalf("forged, stale epoch: %v", err)
			}
			if r, err := s.SendOne(ctx, with(b.send(6), nil)); err != nil || r.Seq != 2 {
				t.Fatalf("after the forged ones: %+v %v, want seq 2", r, err)
			}
			for _, sd := range []benchSender{a, b} {
				ms, err := s.Messages(ctx, sd.conv, 0, 100)
				if err != nil || len(ms) != 2 {
					t.Fatalf("stored: %+v %v, want 2 messages", ms, err)
				}
				for _, m := range ms {
					if m.ClientID == b.send(2).ClientID || m.ClientID == b.send(5).ClientID {
						t.Fatalf("a send whose check failed was stored: %+v", m)
					}
				}
			}
		})
	}
}

// TestPostgresSendCheckOverlaps: a send alone with its check still
// running is written meanwhile, and committed only once the check has
// passed. While the check waits, PostgreSQL has run the send's statements
// (another session sees the send's transaction open, holding the
// conversation's row lock) and another reader sees nothing of the message;
// a failed check rolls it all back: no message, no event, the
// conversation's counters as they were, and the next send takes the seq.
func TestPostgresSendCheckOverlaps(t *testing.T) {
	ctx := context.Background()
	s, senders := benchStore(t, testpg.URL(t), 1)
	t.Cleanup(func() { s.Close() })
	a := senders[0]
	events := func() (n int64) {
		if err := s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE kind = 'message'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// waitWritten waits until the send's transaction has run its
	// statements: another session holds the lock of a writer of messages
	// (taken by the insert, and held until the transaction ends).
	waitWritten := func() {
		t.Helper()
		for range 3000 {
			var n int
			if err := s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_locks
				WHERE relation = 'messages'::regclass AND mode = 'RowExclusiveLock' AND granted AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the send's statements did not run while its check waited")
	}
	for i, pass := range []bool{false, true, false, true} {
		c := newCheck()
		m := a.send(int64(10 + i))
		m.Check = c.check
		type answer struct {
			r   store.SendResult
			err error
		}
		done := make(chan answer, 1)
		go func() {
			r, err := s.SendOne(ctx, m)
			done <- answer{r, err}
		}()
		<-c.called
		func() {
			defer func() { // a failure still ends the send, or Close would wait for it
				if t.Failed() {
					c.answer <- errForged
				}
			}()
			waitWritten()
		}()
		if ms, err := s.Messages(ctx, a.conv, 0, 100); err != nil || len(ms) != i/2 {
			t.Fatalf("while the check waits: %d messages %v, want %d", len(ms), err, i/2)
		}
		if pass {
			c.answer <- nil
		} else {
			c.answer <- errForged
		}
		got := <-done
		wantSeq := uint64(i/2 + 1)
		switch {
		case pass && (got.err != nil || got.r.Seq != wantSeq):
			t.Fatalf("send %d: %+v %v, want seq %d", i, got.r, got.err, wantSeq)
		case !pass && (!errors.Is(got.err, errForged) || got.r.Seq != 0):
			t.Fatalf("send %d: %+v %v, want the check's error", i, got.r, got.err)
		}
		conv, err := s.Conversation(ctx, a.conv)
		if err != nil || conv.LastSeq != uint64((i+1)/2) || events() != int64((i+1)/2) {
			t.Fatalf("after send %d: last seq %d, %d events, %v; want %d", i, conv.LastSeq, events(), err, (i+1)/2)
		}
	}
	if n := s.checkedSends.Load(); n != 2 {
		t.Fatalf("%d sends written while their check ran, want 2", n)
	}
}

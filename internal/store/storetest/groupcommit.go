package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// followStream reads a device's stream from cursor until stop is closed
// and a read after it came back empty. It returns the ids it saw, in the
// order it saw them, or the first error (a read failing, or an id not
// above the cursor).
func followStream(f *fixture, a *acct, cursor int64, stop <-chan struct{}) <-chan func() ([]int64, error) {
	out := make(chan func() ([]int64, error), 1)
	go func() {
		var seen []int64
		for {
			var stopped bool
			select {
			case <-stop:
				stopped = true
			default:
			}
			evs, err := f.s.Sync(f.ctx, a.ID, a.Devs[0], cursor, 37)
			if err != nil {
				out <- func() ([]int64, error) { return nil, err }
				return
			}
			for _, e := range evs {
				if e.ID <= cursor {
					err := fmt.Errorf("event %d after cursor %d", e.ID, cursor)
					out <- func() ([]int64, error) { return nil, err }
					return
				}
				seen = append(seen, e.ID)
				cursor = e.ID
			}
			if len(evs) == 0 {
				if stopped {
					out <- func() ([]int64, error) { return seen, nil }
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	}()
	return out
}

// testSyncLateCommit: a transaction that has taken its event ids is held
// open (by the fault hook, after its events are written) while many
// goroutines send through the group commit and a reader follows the
// stream. The reader must never move its cursor past an event that
// commits later: at the end it has seen every event of the stream,
// the late transaction's included.
func testSyncLateCommit(t *testing.T, open Opener) {
	var hold atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f := newFixture(t, open(t, func(step string) error {
		if step == "events" && hold.Load() {
			once.Do(func() { close(held) })
			<-release
		}
		return nil
	}))
	reader := f.user(1, true)
	const senders, each = 8, 6
	var accts []*acct
	var convs []protocol.ConversationID
	for range senders {
		a := f.user(1, true)
		accts = append(accts, a)
		convs = append(convs, f.conversation(a, reader))
	}
	creator := f.user(1, true)
	start := f.lastEvent()

	// The late transaction: a conversation with the reader, whose events
	// are in the reader's stream.
	hold.Store(true)
	late := f.newConversation(creator, reader)
	lateErr := make(chan error, 1)
	go func() { lateErr <- f.s.CreateConversation(f.ctx, late) }()
	select {
	case <-held:
	case err := <-lateErr:
		t.Fatalf("the late transaction ended before its events step: %v", err)
	}
	hold.Store(false)

	stop := make(chan struct{})
	follow := followStream(f, reader, start, stop)
	var sent atomic.Int64
	halfSent := make(chan struct{})
	var halfOnce sync.Once
	errs := make(chan error, senders*each)
	var wg sync.WaitGroup
	for i, a := range accts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				m := store.Send{Conversation: convs[i], Sender: a.Devs[0], SenderUser: a.ID,
					ClientID: fmt.Sprintf("late-%d-%d", i, j), Epoch: 1, Envelope: []byte{byte(i), byte(j)}, Now: f.now}
				if _, err := f.s.SendOne(f.ctx, m); err != nil {
					errs <- err
					return
				}
				if sent.Add(1) == senders*each/2 {
					halfOnce.Do(func() { close(halfSent) })
				}
			}
		}()
	}
	// A store whose writers do not wait for each other commits sends
	// while the late transaction is open; one whose writers do (an event
	// counter held to commit) cannot, and the late transaction is let go
	// after a moment instead.
	select {
	case <-halfSent:
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-lateErr; err != nil {
		t.Fatalf("late transaction: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
	close(stop)
	seen, err := (<-follow)()
	if err != nil {
		t.Fatal(err)
	}

	all := f.sync(reader, 0, start)
	if len(all) < senders*each+1 {
		t.Fatalf("the stream holds %d events, want at least %d", len(all), senders*each+1)
	}
	saw := make(map[int64]bool, len(seen))
	for _, id := range seen {
		saw[id] = true
	}
	var lateSeen bool
	for _, e := range all {
		if !saw[e.ID] {
			t.Fatalf("the reader following the stream skipped event %d (%s): it moved past it before it committed", e.ID, e.Kind)
		}
		if e.Conversation != nil && *e.Conversation == late.ID {
			lateSeen = true
		}
	}
	if !lateSeen || len(seen) != len(all) {
		t.Fatalf("the reader saw %d events of %d (the late transaction's: %v)", len(seen), len(all), lateSeen)
	}
	for i := range convs {
		checkGapFree(t, f.allMessages(convs[i], 100), each)
	}
}

// testSendOneRetries: through the group commit, a message and its retries
// arrive at once from many goroutines (in one batch or in batches written
// side by side). Exactly one stores it; every other gets the first result
// as a duplicate, and a retry with another envelope ErrIdempotency.
func testSendOneRetries(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	alice, bob := f.user(1, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	const rounds, copies = 12, 12
	for round := range rounds {
		m := f.msg(conv, alice, 0, fmt.Sprintf("retry-%d", round), 1)
		sends := make([]store.Send, copies)
		for i := range sends {
			sends[i] = m
		}
		sends[copies-1].Envelope = []byte("another envelope")
		res := make([]store.SendResult, copies)
		errs := atOnce(copies, func(i int) error {
			var err error
			res[i], err = f.s.SendOne(f.ctx, sends[i])
			return err
		})
		stored := -1
		for i, err := range errs {
			if err == nil && !res[i].Duplicate {
				if stored >= 0 {
					t.Fatalf("round %d: stored twice: %+v and %+v", round, res[stored], res[i])
				}
				stored = i
			} else if err != nil && !errors.Is(err, store.ErrIdempotency) {
				t.Fatalf("round %d: send %d: %v", round, i, err)
			}
		}
		if stored < 0 || res[stored].Seq != uint64(round+1) {
			t.Fatalf("round %d: no send stored the message as seq %d: %+v %v", round, round+1, res, errs)
		}
		first := res[stored]
		for i, r := range res {
			same := string(sends[i].Envelope) == string(sends[stored].Envelope)
			switch {
			case i == stored:
			case same && (errs[i] != nil || !r.Duplicate || r.Seq != first.Seq || r.EventID != first.EventID || r.CreatedAt != first.CreatedAt):
				t.Fatalf("round %d: retry %d got %+v (%v), want the first result %+v as a duplicate", round, i, r, errs[i], first)
			case !same && !errors.Is(errs[i], store.ErrIdempotency):
				t.Fatalf("round %d: a retry with another envelope got %+v (%v), want ErrIdempotency", round, r, errs[i])
			}
		}
	}
	checkGapFree(t, f.allMessages(conv, 100), rounds)
}

package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"sandi.dev/internal/store"
	"sandi.dev/internal/testpg"
	"sandi.dev/protocol"
)

// TestPostgresLateTransaction: a transaction that has drawn its event ids
// is held open (by the fault hook, after CreateConversation's events).
// Sends to other conversations, through this store and through a second
// one on the same database (another node), commit meanwhile; on the event
// counter they would wait for it. A reader of the late conversation gets
// none of its later events while it is open (no cursor may pass the late
// ids), then all of them in id order, the late ones first.
func TestPostgresLateTransaction(t *testing.T) {
	ctx := context.Background()
	url := testpg.URL(t)
	var hold atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	var heldOnce, releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	a, senders := benchStoreWith(t, url, 6, Options{Fault: func(step string) error {
		if step == "events" && hold.Load() {
			heldOnce.Do(func() { close(held) })
			<-release
		}
		return nil
	}})
	t.Cleanup(func() { free(); a.Close() })
	b := openTestStore(t, url, nil)
	// The late transaction locks the rows of its members' users (the
	// reader's, the creator's), which the sends of those users wait for
	// (their messages reference them): the reader's new events come from
	// a partner, in a conversation of theirs.
	reader, creator, partner := senders[0], senders[1], senders[2]
	shared, err := benchConversation(a, partner, reader)
	if err != nil {
		t.Fatal(err)
	}
	partner.conv = shared
	senders[2] = partner
	start, err := a.LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	hold.Store(true)
	late := benchNewConversation(creator, reader)
	lateErr := make(chan error, 1)
	go func() { lateErr <- a.CreateConversation(ctx, late) }()
	select {
	case <-held:
	case err := <-lateErr:
		t.Fatalf("the late transaction ended before its events step: %v", err)
	}
	hold.Store(false)

	// Every sender but the members of the late conversation sends
	// through both stores while the late transaction is open.
	const each = 6
	var mu sync.Mutex
	var readerIDs []int64
	done := make(chan error, len(senders))
	for i, sd := range senders {
		if sd == creator || sd == reader {
			continue
		}
		go func() {
			for j := range each {
				s := []*Store{a, b}[j%2]
				res, err := s.SendOne(ctx, sd.send(int64(100*i+j)))
				if err != nil {
					done <- err
					return
				}
				if sd == partner {
					mu.Lock()
					readerIDs = append(readerIDs, res.EventID)
					mu.Unlock()
				}
			}
			done <- nil
		}()
	}
	timeout := time.After(10 * time.Second)
	for range len(senders) - 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("sends to other conversations did not commit while a transaction that drew event ids was open: the writers wait for each other")
		}
	}

	// The reader's new messages are committed, but above the late ids:
	// neither store may return them yet.
	for _, s := range []*Store{a, b} {
		evs, err := s.Sync(ctx, reader.user, reader.dev, start, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if slices.Contains(readerIDs, e.ID) {
				t.Fatalf("event %d was returned while a transaction with a smaller id was open: a cursor there skips it", e.ID)
			}
		}
		if h, err := s.head.fresh(ctx); err != nil || h >= slices.Min(readerIDs) {
			t.Fatalf("head %d (%v) while the late transaction is open, want below %d", h, err, slices.Min(readerIDs))
		}
	}

	free()
	if err := <-lateErr; err != nil {
		t.Fatal(err)
	}
	evs := syncAll(t, b, reader, start)
	var ids []int64
	lateAt, firstNew := -1, -1
	for i, e := range evs {
		ids = append(ids, e.ID)
		if e.Conversation != nil && *e.Conversation == late.ID && lateAt < 0 {
			lateAt = i
		}
		if slices.Contains(readerIDs, e.ID) && firstNew < 0 {
			firstNew = i
		}
	}
	if !slices.IsSorted(ids) || lateAt < 0 || firstNew < lateAt {
		t.Fatalf("after the commit the reader reads %v: the late conversation's events at %d, its new messages from %d", ids, lateAt, firstNew)
	}
	for _, id := range readerIDs {
		if !slices.Contains(ids, id) {
			t.Fatalf("event %d missing from the stream", id)
		}
	}
}

// syncAll reads u's whole stream after since.
func syncAll(t *testing.T, s *Store, u benchSender, since int64) []store.Event {
	t.Helper()
	var all []store.Event
	for {
		evs, err := s.Sync(context.Background(), u.user, u.dev, since, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return all
		}
		all = append(all, evs...)
		since = evs[len(evs)-1].ID
	}
}

// TestPostgresStreamNoSkip: two stores on one database (two nodes) write
// at once, messages and conversations whose transactions stay open for a
// random while after drawing their ids; readers follow one user's stream
// through either store, three with Sync, one with SyncWoken for the
// newest event a writer has committed (a wake-up's), one with SyncWoken
// for an event never drawn (a forged wake-up's). No reader's cursor ever
// passes an event that appears later: each reader ends up with exactly
// the whole stream.
func TestPostgresStreamNoSkip(t *testing.T) {
	ctx := context.Background()
	url := testpg.URL(t)
	var slow atomic.Bool
	fault := func(step string) error {
		if step == "events" && slow.Load() {
			time.Sleep(time.Duration(rand.IntN(6)) * time.Millisecond)
		}
		return nil
	}
	a, senders := benchStoreWith(t, url, 8, Options{Fault: fault})
	t.Cleanup(func() { a.Close() })
	b, err := Open(ctx, url, Options{Fault: fault})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	stores := []*Store{a, b}
	reader := senders[0]
	writers := senders[1:]
	convs := make([]protocol.ConversationID, len(writers))
	for i, w := range writers {
		if convs[i], err = benchConversation(a, w, reader); err != nil {
			t.Fatal(err)
		}
	}
	start, err := a.LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow.Store(true)

	var writing atomic.Bool
	writing.Store(true)
	var newest atomic.Int64 // the newest event id a writer has committed
	const followers = 5
	// A follower's last reads, after the writers stopped, are Sync's:
	// newest tracks sends only, and a hint below the conversations made
	// in the writers' last round is answered at once with the head
	// settled up to it (as a server's reader is woken again for those
	// events, by their own wake-ups). A cursor that passed an event
	// committed later still shows in the end as a missed event.
	read := func(f int, s *Store, cursor int64, stopping bool) ([]store.Event, error) {
		switch {
		case stopping:
		case f == 3:
			return s.SyncWoken(ctx, reader.user, reader.dev, cursor, 17, newest.Load())
		case f == 4:
			return s.SyncWoken(ctx, reader.user, reader.dev, cursor, 17, math.MaxInt64)
		}
		return s.Sync(ctx, reader.user, reader.dev, cursor, 17)
	}
	seen := make([][]int64, followers)
	ferr := make(chan error, followers)
	for f := range followers {
		go func() {
			cursor := start
			for k := 0; ; k++ {
				stopping := !writing.Load()
				evs, err := read(f, stores[(f+k)%2], cursor, stopping)
				if err != nil {
					ferr <- err
					return
				}
				for _, e := range evs {
					if e.ID <= cursor {
						ferr <- fmt.Errorf("event %d after cursor %d", e.ID, cursor)
						return
					}
					seen[f] = append(seen[f], e.ID)
					cursor = e.ID
				}
				if len(evs) == 0 && stopping {
					ferr <- nil
					return
				}
			}
		}()
	}
	const rounds = 30
	var wg sync.WaitGroup
	werr := make(chan error, len(writers))
	for i, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range rounds {
				s := stores[(i+j)%2]
				var err error
				if j%10 == 9 {
					_, err = benchConversation(s, w, reader)
				} else {
					var res store.SendResult
					res, err = s.SendOne(ctx, store.Send{Conversation: convs[i], Sender: w.dev, SenderUser: w.user,
						ClientID: fmt.Sprintf("n-%d-%d", i, j), Epoch: 1, Envelope: []byte{byte(i), byte(j)}, Now: int64(j)})
					for err == nil {
						old := newest.Load()
						if old >= res.EventID || newest.CompareAndSwap(old, res.EventID) {
							break
						}
					}
				}
				if err != nil {
					werr <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(werr)
	for err := range werr {
		t.Fatal(err)
	}
	writing.Store(false)
	for range followers {
		if err := <-ferr; err != nil {
			t.Fatal(err)
		}
	}
	var all []int64
	for _, e := range syncAll(t, a, reader, start) {
		all = append(all, e.ID)
	}
	if len(all) < len(writers)*rounds {
		t.Fatalf("the stream holds %d events, want at least %d", len(all), len(writers)*rounds)
	}
	for f := range followers {
		if !slices.Equal(seen[f], all) {
			missed := 0
			for _, id := range all {
				if !slices.Contains(seen[f], id) {
					missed++
				}
			}
			t.Fatalf("reader %d saw %d events of %d, missed %d: its cursor passed events that committed later", f, len(seen[f]), len(all), missed)
		}
	}
}

// TestPostgresStreamSwitch: a database made by the previous release takes
// its event ids from the counter, and so do the new stores opened on it.
// SwitchStream refuses while another program (an older node) is
// connected, then moves the database to the sequence: a new store that
// had not noticed takes its next ids from the sequence, after the
// counter's, and a write by the counter (an older node's) fails.
func TestPostgresStreamSwitch(t *testing.T) {
	ctx := context.Background()
	url := testpg.URL(t)
	s, senders := benchStore(t, url, 2)
	s.Close()
	// What the previous release leaves: no sequence, no trigger, the
	// counter at the last id.
	old, err := sql.Open("pgx", url+"&application_name=sandi-previous")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	for _, q := range []string{
		`DROP TRIGGER event_counter_retired ON event_counter`,
		`DROP SEQUENCE event_ids`,
		`DELETE FROM event_counter`,
		`INSERT INTO event_counter (id, last_id) SELECT 1, MAX(id) FROM events`,
	} {
		if _, err := old.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	a := openTestStore(t, url, nil)
	b := openTestStore(t, url, nil)
	if a.sequenced.Load() || b.sequenced.Load() {
		t.Fatal("a store on a database of the previous release took the sequence")
	}
	sd := senders[0]
	r1, err := a.SendOne(ctx, sd.send(1))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.SendOne(ctx, sd.send(2))
	if err != nil || r2.EventID != r1.EventID+1 {
		t.Fatalf("on the counter: %+v %v after event %d", r2, err, r1.EventID)
	}
	// Both read the stream up to the counter (their rounds read it, not
	// the sequence, which a database of the previous release lacks).
	for _, st := range []*Store{a, b} {
		var ids []int64
		for _, e := range syncAll(t, st, sd, r1.EventID-1) {
			ids = append(ids, e.ID)
		}
		if want := []int64{r1.EventID, r2.EventID}; !slices.Equal(ids, want) {
			t.Fatalf("the stream on the counter: %v, want %v", ids, want)
		}
	}

	if _, err := a.SwitchStream(ctx, false); !errors.Is(err, ErrOlderNodes) {
		t.Fatalf("switch with an older node connected: %v, want ErrOlderNodes", err)
	}
	if was, err := a.SwitchStream(ctx, true); err != nil || !was {
		t.Fatalf("forced switch: %v %v", was, err)
	}
	if was, err := a.SwitchStream(ctx, true); err != nil || was {
		t.Fatalf("second switch: %v %v, want nothing to do", was, err)
	}

	// b has not noticed: its send is refused by the database, and it
	// takes its ids from the sequence instead.
	r3, err := b.SendOne(ctx, sd.send(3))
	if err != nil || r3.EventID <= r2.EventID || !b.sequenced.Load() {
		t.Fatalf("b's send after the switch: %+v %v (event %d before; on the sequence: %v)", r3, err, r2.EventID, b.sequenced.Load())
	}
	r4, err := a.SendOne(ctx, sd.send(4))
	if err != nil || r4.EventID <= r3.EventID {
		t.Fatalf("a's send after the switch: %+v %v", r4, err)
	}
	// An older node writes with the counter: refused.
	_, err = old.ExecContext(ctx, `UPDATE event_counter SET last_id = last_id + 1 WHERE id = 1 RETURNING last_id`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeCounterRetired {
		t.Fatalf("a write with the retired counter: %v, want SQLSTATE %s", err, codeCounterRetired)
	}
	var got []int64
	for _, e := range syncAll(t, b, sd, r1.EventID-1) {
		got = append(got, e.ID)
	}
	if want := []int64{r1.EventID, r2.EventID, r3.EventID, r4.EventID}; !slices.Equal(got, want) {
		t.Fatalf("the stream across the switch: %v, want %v", got, want)
	}
}

// TestPostgresHeadStuck: a transaction with an id held open holds the
// settled head back, and the store reports how long (what /readyz and
// the metrics read); once it ends the head moves and OnHeadLate fires.
func TestPostgresHeadStuck(t *testing.T) {
	ctx := context.Background()
	url := testpg.URL(t)
	s, senders := benchStore(t, url, 1)
	t.Cleanup(func() { s.Close() })
	lateFired := make(chan struct{}, 1)
	s.OnHeadLate(func() {
		select {
		case lateFired <- struct{}{}:
		default:
		}
	})
	if _, _, waiting, ok := s.StreamHead(); !ok || waiting != 0 {
		t.Fatalf("an idle store waits %v (%v)", waiting, ok)
	}
	tx := holdXID(t, s)
	res, err := s.SendOne(ctx, senders[0].send(1))
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.head.fresh(ctx) // gives up after headMaxWait
	if err != nil || h >= res.EventID {
		t.Fatalf("head %d (%v) with an older transaction open, want below %d", h, err, res.EventID)
	}
	settled, drawn, waiting, _ := s.StreamHead()
	if settled >= res.EventID || drawn < res.EventID || waiting <= 0 {
		t.Fatalf("head %d, drawn %d, waiting %v: want the send's event %d drawn and waiting to settle", settled, drawn, waiting, res.EventID)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lateFired:
	case <-time.After(10 * time.Second):
		t.Fatal("the head did not move once the transaction ended")
	}
	if h, err := s.head.fresh(ctx); err != nil || h < res.EventID {
		t.Fatalf("head %d (%v) after the transaction ended, want %d at least", h, err, res.EventID)
	}
	if _, _, waiting, _ := s.StreamHead(); waiting != 0 {
		t.Fatalf("still waiting %v", waiting)
	}
}

// TestPostgresHeadWokenFor drives a head's rounds by hand (its loop is
// stopped) around transactions held open, and checks freshFor, the wait
// of a reader woken for a known event: with the head settled up to the
// event it answers without a round; it takes an observation made before
// its call when that observation covers the event (fresh would wait for
// a round of its own, which a transaction begun since holds back); and a
// target that was never drawn (a forged or stale wake-up) neither holds
// it past a round started after the call nor lets it answer above the
// settled head.
func TestPostgresHeadWokenFor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := testpg.URL(t)
	s, senders := benchStore(t, url, 1)
	t.Cleanup(func() { s.Close() })
	h := stoppedHead(s) // the test runs the rounds
	state := func() (settled, drawn int64, started, gaveUp uint64) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.settled, h.drawn, h.started, h.gaveUp
	}
	// waiting waits for n readers to be in freshFor (a round must start
	// after their call to count as theirs).
	waiting := func(n int) {
		for {
			h.mu.Lock()
			w := h.waiters
			h.mu.Unlock()
			if w >= n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	type answer struct {
		head int64
		err  error
	}
	wait := func(at int64) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			v, err := h.freshFor(ctx, at)
			ch <- answer{v, err}
		}()
		return ch
	}
	sd := senders[0]

	// (a) Settled up to the event: the answer, without a round.
	r1, err := s.SendOne(ctx, sd.send(1))
	if err != nil {
		t.Fatal(err)
	}
	h.round()
	if settled, _, _, _ := state(); settled < r1.EventID {
		t.Fatalf("settled %d after a round on a quiet database, want %d at least", settled, r1.EventID)
	}
	_, _, started, _ := state()
	if v, err := h.freshFor(ctx, r1.EventID); err != nil || v < r1.EventID {
		t.Fatalf("woken for %d: head %d (%v)", r1.EventID, v, err)
	}
	if _, _, n, _ := state(); n != started {
		t.Fatalf("a reader woken for an event below the settled head started %d rounds", n-started)
	}

	// (b) The event is observed (round A) but held back by tx1. The
	// reader is woken for it after tx2, begun since, drew ids: a round
	// of its own (B) observes them and stays pending while tx2 runs, but
	// B settles A once tx1 ends, and A covers the event.
	tx1 := holdXID(t, s)
	r2, err := s.SendOne(ctx, sd.send(2))
	if err != nil {
		t.Fatal(err)
	}
	h.round() // A
	if settled, drawn, _, _ := state(); settled >= r2.EventID || drawn < r2.EventID {
		t.Fatalf("with tx1 open: settled %d, drawn %d; want %d drawn, not settled", settled, drawn, r2.EventID)
	}
	tx2 := holdXID(t, s)
	var tx2IDs int64
	if err := tx2.QueryRowContext(ctx, pgDrawIDs).Scan(&tx2IDs); err != nil {
		t.Fatal(err)
	}
	woken := wait(r2.EventID)
	waiting(1)
	if err := tx1.Rollback(); err != nil {
		t.Fatal(err)
	}
	h.round() // B
	a := <-woken
	if a.err != nil || a.head < r2.EventID || a.head > tx2IDs {
		t.Fatalf("woken for %d with tx2 (ids from %d) open: head %d (%v); want the event, not tx2's ids", r2.EventID, tx2IDs+1, a.head, a.err)
	}

	// (c) Targets never drawn, tx2 still open. One below the head (a
	// stale one) is answered at once with the settled head; a huge one
	// falls back to the first round started after the call, which tx2
	// holds back: the reader gives up after maxWait with the settled
	// head, never above it.
	settled, _, _, gaveUp := state()
	if v, err := h.freshFor(ctx, 1); err != nil || v != settled {
		t.Fatalf("woken for event 1: head %d (%v), want %d", v, err, settled)
	}
	h.maxWait = 20 * time.Millisecond
	woken = wait(math.MaxInt64)
	waiting(1)
	h.round() // C, pending behind tx2
	a = <-woken
	if now, _, _, g := state(); a.err != nil || a.head != settled || now != settled || g != gaveUp+1 {
		t.Fatalf("woken for a forged event with tx2 open: head %d (%v), settled %d, gave up %d times; want %d after giving up once", a.head, a.err, now, g-gaveUp, settled)
	}
	// The store's own head likewise: a message committed above tx2's ids
	// is not returned while tx2 is open, whatever the target.
	r2b, err := s.SendOne(ctx, sd.send(20))
	if err != nil || r2b.EventID <= tx2IDs {
		t.Fatalf("send with tx2 open: %+v %v, want an id above %d", r2b, err, tx2IDs)
	}
	s.head.maxWait = 20 * time.Millisecond
	for _, at := range []int64{1, r2b.EventID, math.MaxInt64} {
		evs, err := s.SyncWoken(ctx, sd.user, sd.dev, r2.EventID, 100, at)
		if err != nil || len(evs) != 0 {
			t.Fatalf("SyncWoken for %d with tx2 open: %v %v, want nothing (event %d is above tx2's ids)", at, evs, err, r2b.EventID)
		}
	}
	s.head.maxWait = headMaxWait

	// Once tx2 ends, a huge target is settled by a round started after
	// the call, as fresh is, without waiting for maxWait.
	h.maxWait = time.Hour
	if err := tx2.Rollback(); err != nil {
		t.Fatal(err)
	}
	r3, err := s.SendOne(ctx, sd.send(3))
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, gaveUp = state()
	woken = wait(math.MaxInt64)
	waiting(1)
	h.round()
	a = <-woken
	if _, _, _, g := state(); a.err != nil || a.head < r3.EventID || g != gaveUp {
		t.Fatalf("woken for a forged event: head %d (%v), gave up %d times; want %d at least, at once", a.head, a.err, g-gaveUp, r3.EventID)
	}
	evs, err := s.SyncWoken(ctx, sd.user, sd.dev, r1.EventID, 100, r3.EventID)
	if err != nil || len(evs) != 3 || evs[0].ID != r2.EventID || evs[1].ID != r2b.EventID || evs[2].ID != r3.EventID {
		t.Fatalf("SyncWoken for %d: %v %v, want events %d, %d and %d", r3.EventID, evs, err, r2.EventID, r2b.EventID, r3.EventID)
	}
}

// TestPostgresHeadRoundInProgress: a reader woken for an event while a
// round is in progress asks for a round of its own only once that one
// has ended short of the event, at once then (not after maxWait), and
// not at all when the round in progress covers the event. The test
// drives the rounds (the head's loop is stopped) and reads the kicks the
// loop would take.
func TestPostgresHeadRoundInProgress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, senders := benchStore(t, testpg.URL(t), 1)
	t.Cleanup(func() { s.Close() })
	h := stoppedHead(s) // the test runs the rounds
	sd := senders[0]
	kicks := func() int { return len(h.kick) }
	wait := func(at int64) <-chan error { return wokenReader(ctx, h, at) }
	observe := func() (observation, bool, uint64) {
		o, seq, xmin, err := h.observe(ctx)
		if err != nil || !seq {
			t.Fatalf("observation: %v (on the sequence %v)", err, seq)
		}
		return o, seq, xmin
	}

	// (a) The round in progress read L before the event was drawn.
	h.begin()
	o, seq, xmin := observe()
	r1, err := s.SendOne(ctx, sd.send(1))
	if err != nil {
		t.Fatal(err)
	}
	done := wait(r1.EventID)
	if k := kicks(); k != 0 {
		t.Fatalf("a reader woken during a round asked for another at once (%d kicks)", k)
	}
	h.end(o, seq, xmin, nil)
	for deadline := time.Now().Add(5 * time.Second); kicks() == 0; {
		select {
		case err := <-done:
			t.Fatalf("the reader answered without a round covering its event: %v", err)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the round in progress ended short of the event, and the reader asked for no round")
		}
	}
	<-h.kick // the loop would take it
	h.round()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// (b) The round in progress read L after the event was drawn: it
	// covers it, and settling it is all the reader needs.
	r2, err := s.SendOne(ctx, sd.send(2))
	if err != nil {
		t.Fatal(err)
	}
	h.begin()
	done = wait(r2.EventID)
	o, seq, xmin = observe()
	h.end(o, seq, xmin, nil)
	for settled := false; !settled; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			settled = true
		case <-time.After(10 * time.Millisecond):
			h.check() // what the loop's poll does while a reader waits
		}
	}
	if k := kicks(); k != 0 {
		t.Fatalf("a reader whose event the round in progress covered asked for another round (%d kicks)", k)
	}
}

// stoppedHead is a head of s whose loop is stopped, for a test to run
// its rounds and checks by hand; its readers never give up.
func stoppedHead(s *Store) *pgHead {
	h := newPGHead(s)
	h.close()
	h.maxWait = time.Hour
	return h
}

// holdXID begins a transaction on s that has a transaction id, and holds
// it open (rolled back at the end of the test): it holds back every
// observation of the head taken after.
func holdXID(t *testing.T, s *Store) *sql.Tx {
	t.Helper()
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	if _, err := tx.ExecContext(context.Background(), `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	return tx
}

// wokenReader starts a reader of h woken for at (freshFor), and returns
// once it waits, with the channel of its answer: nil once the head
// covers at.
func wokenReader(ctx context.Context, h *pgHead, at int64) <-chan error {
	h.mu.Lock()
	before := h.waiters
	h.mu.Unlock()
	ch := make(chan error, 1)
	go func() {
		v, err := h.freshFor(ctx, at)
		if err == nil && v < at {
			err = fmt.Errorf("head %d, below %d", v, at)
		}
		ch <- err
	}()
	for {
		h.mu.Lock()
		w := h.waiters
		h.mu.Unlock()
		if w > before {
			return ch
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPostgresHeadNudgedByCommit: while a reader waits for a pending
// observation to settle, a batch of sends committed by the store asks
// the loop for a check at once (a transaction has ended, maybe the last
// one holding the observation back) instead of leaving it to the poll.
// The store's head has its loop stopped; the test reads the nudges it
// would take.
func TestPostgresHeadNudgedByCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, senders := benchStore(t, testpg.URL(t), 1)
	t.Cleanup(func() { s.Close() })
	// A head whose loop is stopped in the store's place: the test runs
	// the rounds and checks.
	h := stoppedHead(s)
	running := s.head
	s.head = h
	t.Cleanup(func() { s.head = running }) // before Close, which stops it
	sd := senders[0]
	hold := holdXID(t, s)
	r1, err := s.SendOne(ctx, sd.send(1))
	if err != nil {
		t.Fatal(err)
	}
	h.round() // its observation covers r1, held back by hold
	if settled, _, waiting, _ := s.StreamHead(); settled >= r1.EventID || waiting == 0 {
		t.Fatalf("head %d with a transaction open before %d, waiting %v", settled, r1.EventID, waiting)
	}
	done := wokenReader(ctx, h, r1.EventID)
	select {
	case <-h.nudge: // the reader's own, for an observation taken already
	default:
		t.Fatal("a reader covered by a pending observation asked for no check")
	}
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	if len(h.nudge) != 0 {
		t.Fatal("nudged without a commit of the store")
	}
	if _, err := s.SendOne(ctx, sd.send(2)); err != nil {
		t.Fatal(err)
	}
	if len(h.nudge) != 1 {
		t.Fatal("a batch committed while a reader waited for a pending observation, and no check was asked for")
	}
	<-h.nudge
	h.check()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPostgresHeadWait measures how long after a send's commit a
// live reader on another node has a settled head that covers it. Two
// stores on one database (two nodes); 8 writers send 1,000 messages a
// second in all, through the two in turn, and after each commit wake the
// reader of the other store, as a wake-up over NATS does; wake-ups that
// come while it reads merge, the newest event winning, as a socket's do.
// "fresh" reads as a wake-up without an event does (a round started after
// the wake-up must settle), "woken" as SyncWoken does (a head settled up
// to the event). Reported: the time from the end of SendOne to the end of
// the read whose head covers the send, at p50 and p99, and the rounds
// started per read.
//
//	go test -run '^$' -bench PostgresHeadWait -benchtime 5000x -count 3 ./internal/store/sqlstore/
func BenchmarkPostgresHeadWait(b *testing.B) {
	for _, woken := range []bool{false, true} {
		name := "fresh"
		if woken {
			name = "woken"
		}
		b.Run(name, func(b *testing.B) { benchHeadWait(b, woken) })
	}
}

// headReader is benchHeadWait's reader of one store.
type headReader struct {
	h    *pgHead
	wake chan struct{}

	mu      sync.Mutex
	at      int64               // the newest event named since the last read
	pending map[int64]time.Time // sends not yet covered: when SendOne returned
	lat     []time.Duration
	reads   int
	rounds  uint64
}

func (r *headReader) woken(id int64, at time.Time) {
	r.mu.Lock()
	r.at = max(r.at, id)
	r.pending[id] = at
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *headReader) run(woken bool, stop <-chan struct{}) error {
	ctx := context.Background()
	for {
		select {
		case <-r.wake:
		case <-stop:
			return nil
		}
		r.mu.Lock()
		at := r.at
		r.at = 0
		r.mu.Unlock()
		r.h.mu.Lock()
		started := r.h.started
		r.h.mu.Unlock()
		var head int64
		var err error
		if woken {
			head, err = r.h.freshFor(ctx, at)
		} else {
			head, err = r.h.fresh(ctx)
		}
		if err != nil {
			return err
		}
		now := time.Now()
		r.h.mu.Lock()
		rounds := r.h.started - started
		r.h.mu.Unlock()
		r.mu.Lock()
		r.reads++
		r.rounds += rounds
		for id, t := range r.pending {
			if id <= head {
				r.lat = append(r.lat, now.Sub(t))
				delete(r.pending, id)
			}
		}
		left := len(r.pending) > 0
		r.mu.Unlock()
		if left {
			// As a late read's events are announced again (OnHeadLate).
			select {
			case r.wake <- struct{}{}:
			default:
			}
		}
	}
}

func benchHeadWait(b *testing.B, woken bool) {
	ctx := context.Background()
	url := testpgURL(b)
	const writers, rate = 8, 1000
	a, senders := benchStore(b, url, writers)
	defer a.Close()
	c, err := Open(ctx, url, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	stores := []*Store{a, c}
	readers := make([]*headReader, 2)
	for i, s := range stores {
		readers[i] = &headReader{h: s.head, wake: make(chan struct{}, 1), pending: map[int64]time.Time{}}
	}
	stop := make(chan struct{})
	rerr := make(chan error, len(readers))
	for _, r := range readers {
		go func() { rerr <- r.run(woken, stop) }()
	}
	b.ResetTimer()
	interval := time.Second * writers / rate
	start := time.Now()
	var wg sync.WaitGroup
	werr := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; w+k*writers < b.N; k++ {
				time.Sleep(time.Until(start.Add(time.Duration(k)*interval + time.Duration(w)*interval/writers)))
				i := w + k*writers
				res, err := stores[i%2].SendOne(ctx, senders[w].send(int64(i)))
				if err != nil {
					werr <- err
					return
				}
				readers[1-i%2].woken(res.EventID, time.Now())
			}
		}()
	}
	wg.Wait()
	close(werr)
	for err := range werr {
		b.Fatal(err)
	}
	for _, r := range readers {
		for {
			r.mu.Lock()
			left := len(r.pending)
			r.mu.Unlock()
			if left == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	close(stop)
	for range readers {
		if err := <-rerr; err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	reads, rounds := 0, uint64(0)
	for _, r := range readers {
		lat = append(lat, r.lat...)
		reads += r.reads
		rounds += r.rounds
	}
	slices.Sort(lat)
	ms := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(ms(.5), "p50-ms")
	b.ReportMetric(ms(.99), "p99-ms")
	b.ReportMetric(float64(rounds)/float64(reads), "rounds/read")
	b.ReportMetric(0, "ns/op")
}

// TestPostgresObservationOrder attacks the order of a round's statements
// (L, then N, then the xmin): a writer whose transaction gets its id,
// draws its block of ids and stays open is slipped in before each
// statement in turn, and the observation must not settle over the
// writer's ids while it is open, by its own xmin or a check's. Reading N
// before L would: the writer's id is then N or above, and lowers no
// xmin until a newer transaction ends. Once the writer has ended, a
// check settles the observation.
func TestPostgresObservationOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, _ := benchStore(t, testpg.URL(t), 1)
	t.Cleanup(func() { s.Close() })
	check := func() uint64 {
		var xmin uint64
		if err := s.r.QueryRowContext(ctx, pgCheck).Scan(&xmin); err != nil {
			t.Fatal(err)
		}
		return xmin
	}
	for qi, stmts := range [][3]pgStatement{pgRound, pgRoundSequenced} {
		for slip := range stmts {
			conn, err := s.r.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var res []*pgconn.Result
			var w *sql.Tx
			var drawn int64
			for k, st := range stmts {
				if k == slip {
					if w, err = s.w.BeginTx(ctx, nil); err != nil {
						t.Fatal(err)
					}
					var base int64
					if err := w.QueryRowContext(ctx, pgDrawIDs).Scan(&base); err != nil {
						t.Fatal(err)
					}
					drawn = base + 1
				}
				err := conn.Raw(func(dc any) error {
					r, err := dc.(*stdlib.Conn).Conn().PgConn().Exec(ctx, st.sql).ReadAll()
					res = append(res, r...)
					return err
				})
				if err != nil {
					t.Fatalf("round %d, statement %d: %v", qi, k, err)
				}
			}
			conn.Close()
			o, seq, xmin, err := parseObservation(res)
			if err != nil || !seq {
				t.Fatalf("round %d: %+v, on the sequence %v: %v", qi, o, seq, err)
			}
			for _, m := range []uint64{xmin, check()} {
				if o.xid < m && o.last >= drawn {
					t.Errorf("round %d, writer slipped in before statement %d: observation L=%d X=%d settles under xmin %d over id %d of a transaction still open",
						qi, slip, o.last, o.xid, m, drawn)
				}
			}
			if err := w.Rollback(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for m := check(); o.xid >= m; m = check() {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: observation X=%d still unsettled (xmin %d) after the writer ended", qi, o.xid, m)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

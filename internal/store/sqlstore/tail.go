package sqlstore

import (
	"context"
	"fmt"
	"math"
	"sync"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// tail is the newest part of the event stream, kept in memory by a store
// with a memo so that live connections read it without SQLite. A live
// connection is woken after every commit that concerns its user and asks
// for the few events after its cursor; from the database, each such read
// starts a read transaction that finds the pages changed by the commit
// and reads them again, about 0.1 ms per wake-up, for every member online.
//
// The tail holds every event with from < id <= to, and all of them were
// written by Send after the last other write: messages and policy
// rotations, each for a whole conversation. Send appends its events once
// its transaction has committed (under wmu); any other write starts the
// tail over, empty, at the newest event (memo.invalidate), since its
// events (membership, sessions, identities, events for one device) are
// not kept here. So between from and to there is no event the tail does
// not hold, and none addressed to one device.
//
// A member's events are the conversation's events within the spans of
// its membership (members.joined_event_id to left_event_id), as Sync's
// statements have it. Spans are facts that later writes only complete (a
// left_event_id set, a span added after), so spans read at any moment
// after the tail was read decide its events rightly (see recentEvents).
type tail struct {
	mu    sync.RWMutex
	from  int64
	evs   []store.Event // ids from+1 … from+len(evs)
	bytes int           // envelope bytes held
}

// The tail keeps at most this many events and envelope bytes; a cursor
// behind them reads the database.
const (
	tailEvents = 4096
	tailBytes  = 16 << 20
)

// reset empties the tail at head, the newest committed event.
func (t *tail) reset(head int64) {
	t.mu.Lock()
	t.from, t.evs, t.bytes = head, nil, 0
	t.mu.Unlock()
}

// add appends the events of a committed send batch, in id order and
// consecutive. Events that do not follow the tail's newest start it over.
func (t *tail) add(evs []store.Event) {
	if len(evs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if evs[0].ID != t.from+int64(len(t.evs))+1 {
		t.from, t.evs, t.bytes = evs[0].ID-1, nil, 0
	}
	for _, e := range evs {
		t.evs = append(t.evs, e)
		t.bytes += envelopeSize(e)
	}
	drop := 0
	for len(t.evs)-drop > tailEvents || (t.bytes > tailBytes && drop < len(t.evs)) {
		t.bytes -= envelopeSize(t.evs[drop])
		drop++
	}
	// The dropped events stay in the array until append copies the rest
	// to a new one; the slice's elements are never changed once added,
	// so a reader may keep the slice it was given.
	t.evs = t.evs[drop:]
	t.from += int64(drop)
}

func envelopeSize(e store.Event) int {
	if e.Message == nil {
		return 0
	}
	return len(e.Message.Envelope)
}

// after returns the events after since, when the tail holds all of them:
// from <= since <= to. The slice is shared: callers must not change it.
func (t *tail) after(since int64) ([]store.Event, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if since < t.from || since > t.from+int64(len(t.evs)) {
		return nil, false
	}
	return t.evs[since-t.from:], true
}

// span is one membership of a user, in event ids: from joined to left
// (math.MaxInt64 while it lasts).
type span struct {
	joined, left int64
}

// spans are a user's memberships by conversation.
type spans map[protocol.ConversationID][]span

// covers reports whether event id of conv falls in one of the spans.
func (sp spans) covers(conv protocol.ConversationID, id int64) bool {
	for _, s := range sp[conv] {
		if id >= s.joined && id <= s.left {
			return true
		}
	}
	return false
}

// recentEvents is Sync from the tail: the user's events after since, or
// false when the tail does not hold them all. The tail is read first and
// the spans after, so the spans are never older than its events.
func (s *Store) recentEvents(ctx context.Context, user protocol.UserID, since int64, limit int) ([]store.Event, bool, error) {
	evs, ok := s.memo.tail.after(since)
	if !ok {
		return nil, false, nil
	}
	if len(evs) == 0 {
		return nil, true, nil
	}
	sp, err := s.userSpans(ctx, user)
	if err != nil {
		return nil, false, err
	}
	var out []store.Event
	for _, e := range evs {
		if sp.covers(*e.Conversation, e.ID) {
			out = append(out, e)
			if len(out) == limit {
				break
			}
		}
	}
	return out, true, nil
}

// userSpans returns the user's memberships, remembered until the next
// write other than a send.
func (s *Store) userSpans(ctx context.Context, user protocol.UserID) (spans, error) {
	m := s.memo
	if sp, ok := m.userSpans(user); ok {
		return sp, nil
	}
	gen := m.gen.Load()
	rows, err := s.query(ctx, `SELECT conversation_id, joined_event_id, left_event_id FROM members WHERE user_id = ?`, idArg(user))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: memberships: %w", err)
	}
	defer rows.Close()
	sp := spans{}
	for rows.Next() {
		var conv protocol.ConversationID
		var joined int64
		var left *int64
		if err := rows.Scan(scanID(&conv), &joined, &left); err != nil {
			return nil, fmt.Errorf("sqlstore: memberships: %w", err)
		}
		x := span{joined: joined, left: math.MaxInt64}
		if left != nil {
			x.left = *left
		}
		sp[conv] = append(sp[conv], x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: memberships: %w", err)
	}
	m.putUserSpans(user, gen, sp)
	return sp, nil
}

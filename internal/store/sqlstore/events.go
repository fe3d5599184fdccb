package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// newEvent is an event to append. It is device-addressed when device is
// set, conversation-wide otherwise (conv is then required).
type newEvent struct {
	kind   string
	device *protocol.DeviceID
	conv   *protocol.ConversationID
	user   *protocol.UserID
	seq    uint64
	epoch  uint64
	reason string
	at     int64
}

// emit appends evs to the sync stream and returns the id of the first.
// The others follow one by one, unless more than eventBlock events are
// drawn from the sequence at once: then each block's ids follow one by
// one and the blocks go up. Call it after every other lock the
// transaction takes (see the package comment): on the counter, its row
// lock is then held until commit, and no new lock may be taken after it
// that another transaction could hold while waiting for the counter; on
// the sequence, the order of a conversation's events is that of its
// row's lock.
func (t *wtx) emit(evs []newEvent) (int64, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	ids := make([]int64, len(evs))
	if !t.s.d.local && t.s.sequenced.Load() {
		for lo := 0; lo < len(evs); lo += eventBlock {
			var base int64
			if err := t.queryRow(pgDrawIDs).Scan(&base); err != nil {
				return 0, fmt.Errorf("draw event ids: %w", err)
			}
			for i := lo; i < min(lo+eventBlock, len(evs)); i++ {
				ids[i] = base + int64(i-lo) + 1
			}
		}
	} else {
		last, err := t.advanceCounter(len(evs))
		if err != nil {
			return 0, fmt.Errorf("advance event counter: %w", err)
		}
		for i := range ids {
			ids[i] = last - int64(len(evs)) + 1 + int64(i)
		}
		if m := t.s.memo; m != nil {
			t.afterCommit(func() { m.head.Store(last) })
		}
	}
	const cols = 9
	for lo := 0; lo < len(evs); lo += rowsPerStatement { // lo numbers the ids
		hi := min(lo+rowsPerStatement, len(evs))
		args := make([]any, 0, cols*(hi-lo))
		for i, e := range evs[lo:hi] {
			var dev, conv, user []byte
			if e.device != nil {
				dev = idArg(*e.device)
			}
			if e.conv != nil {
				conv = idArg(*e.conv)
			}
			if e.user != nil {
				user = idArg(*e.user)
			}
			args = append(args, ids[lo+i], e.kind, dev, conv, user, i64(e.seq), i64(e.epoch), e.reason, e.at)
		}
		if _, err := t.exec(`INSERT INTO events (id, kind, device_id, conversation_id, user_id, seq, epoch, reason, created_at) VALUES `+
			placeholders(hi-lo, cols), args...); err != nil {
			return 0, fmt.Errorf("insert events: %w", err)
		}
	}
	return ids[0], nil
}

// advanceCounter adds n to the event counter and returns its new value.
func (t *wtx) advanceCounter(n int) (int64, error) {
	var last int64
	if !t.s.d.local {
		// PostgreSQL: one round trip, which takes the row lock.
		err := t.queryRow(`UPDATE event_counter SET last_id = last_id + ? WHERE id = 1 RETURNING last_id`, n).Scan(&last)
		return last, err
	}
	// SQLite: RETURNING makes SQLite build a temporary table, which costs
	// more than the statement itself; and the writer is alone, so nothing
	// changes the counter between a read and a write. A store that owns
	// its file knows the counter (the memo's head): the UPDATE checks
	// that it still holds, and the counter is read only if it does not.
	if m := t.s.memo; m != nil {
		head := m.head.Load()
		r, err := t.exec(`UPDATE event_counter SET last_id = ? WHERE id = 1 AND last_id = ?`, head+int64(n), head)
		if err != nil {
			return 0, err
		}
		if k, err := r.RowsAffected(); err != nil {
			return 0, err
		} else if k == 1 {
			return head + int64(n), nil
		}
	}
	if err := t.queryRow(`SELECT last_id FROM event_counter WHERE id = 1`).Scan(&last); err != nil {
		return 0, err
	}
	last += int64(n)
	_, err := t.exec(`UPDATE event_counter SET last_id = ? WHERE id = 1`, last)
	return last, err
}

// LastEventID returns the newest committed event id. On SQLite it is the
// counter, advanced in the transaction that writes the events, so it
// never runs ahead of what a reader can see. On PostgreSQL it is the
// newest event stored, which may be above ids that a transaction still
// open will commit (Sync never goes past those; see pgHead): as a new
// device's first cursor it leaves out what was written before the device
// existed, as the counter did, and it is never below a cursor that a sync
// answer gave, on any node. Ids left unused (a failed transaction, the
// end of a block) are not events.
func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.queryRow(ctx, lastEventQuery(s.d)).Scan(&id); err != nil {
		return 0, fmt.Errorf("sqlstore: last event id: %w", err)
	}
	return id, nil
}

// lastEventQuery reads the newest committed event id (see LastEventID).
func lastEventQuery(d dialect) string {
	if d.local {
		return `SELECT last_id FROM event_counter WHERE id = 1`
	}
	return `SELECT COALESCE(MAX(id), 0) FROM events`
}

// streamLastQuery reads, in a transaction, the last event id handed out:
// the counter's, or on a PostgreSQL database switched to the sequence the
// sequence's (ids are drawn in blocks, so ids up to it may be unused).
func streamLastQuery(d dialect) string {
	if d.local {
		return `SELECT last_id FROM event_counter WHERE id = 1`
	}
	return `SELECT CASE WHEN sequenced THEN GREATEST(last_id, COALESCE(pg_sequence_last_value('event_ids'), 0)) ELSE last_id END
FROM event_counter WHERE id = 1`
}

// Sync returns the device's events after since: the events addressed to
// the device and the conversation-wide events of the spans of membership
// of its user, in id order. On PostgreSQL it returns none above the
// settled head (see pgHead), which it reads first.
//
// It has two plans for the same answer. Far behind the newest event, it
// unions the device's own events with each membership's events (each
// half limited on its own index) and sorts the union: the cost grows with
// the memberships. Near the newest event (a live connection woken by a
// commit), it walks the few events after since and checks each against
// the memberships: the cost grows with the events after since, whatever
// the number of conversations. Each plan is one statement, so each sees
// one snapshot. A store with a memo answers a cursor within the tail of
// the stream it keeps in memory without either (see tail).
func (s *Store) Sync(ctx context.Context, user protocol.UserID, device protocol.DeviceID, since int64, limit int) ([]store.Event, error) {
	if limit <= 0 {
		limit = 100
	}
	if s.head != nil {
		head, err := s.head.fresh(ctx)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: sync: %w", err)
		}
		return s.syncUpTo(ctx, head, user, device, since, limit)
	}
	var head int64
	if s.memo != nil {
		if evs, ok, err := s.recentEvents(ctx, user, since, limit); err != nil || ok {
			return evs, err
		}
		head = s.memo.head.Load()
	} else {
		var err error
		if head, err = s.LastEventID(ctx); err != nil {
			return nil, fmt.Errorf("sqlstore: sync: %w", err)
		}
	}
	return s.sync(ctx, s.nearHead(head, since), user, device, since, math.MaxInt64, limit)
}

// SyncWoken is Sync for a reader woken for a known event: at is the
// newest event id of the commit that woke it (a local commit, or a
// wake-up from another node). On PostgreSQL it waits only for a head
// settled up to at (pgHead.freshFor), not for a round started after the
// call; at is a hint, never trusted: one that was never drawn makes it
// wait as Sync does, and it returns no event above the settled head. At
// 0, and on SQLite, it is Sync.
func (s *Store) SyncWoken(ctx context.Context, user protocol.UserID, device protocol.DeviceID, since int64, limit int, at int64) ([]store.Event, error) {
	if s.head == nil || at <= 0 {
		return s.Sync(ctx, user, device, since, limit)
	}
	if limit <= 0 {
		limit = 100
	}
	head, err := s.head.freshFor(ctx, at)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: sync: %w", err)
	}
	return s.syncUpTo(ctx, head, user, device, since, limit)
}

// SyncSettled is Sync up to the head settled already, without waiting
// for a new one (PostgreSQL; elsewhere it is Sync). A reader continuing
// after a full page takes it: the wait of the read that returned that
// page covered every event committed before that read, and a commit
// since has woken the reader again for a read that waits.
func (s *Store) SyncSettled(ctx context.Context, user protocol.UserID, device protocol.DeviceID, since int64, limit int) ([]store.Event, error) {
	if s.head == nil || limit <= 0 {
		return s.Sync(ctx, user, device, since, limit)
	}
	head, _, _, _ := s.StreamHead()
	return s.syncUpTo(ctx, head, user, device, since, limit)
}

// syncUpTo reads the events after since up to a settled head.
func (s *Store) syncUpTo(ctx context.Context, head int64, user protocol.UserID, device protocol.DeviceID, since int64, limit int) ([]store.Event, error) {
	if since >= head {
		return nil, nil
	}
	return s.sync(ctx, s.nearHead(head, since), user, device, since, head, limit)
}

// nearHead reports whether since is close enough to head for Sync to walk
// the events one by one (see syncTailWindow).
func (s *Store) nearHead(head, since int64) bool {
	window := int64(syncTailWindow)
	if s.sequenced.Load() {
		window = syncTailBlocks * eventBlock
	}
	return head-since <= window
}

// syncTailWindow is how far behind the newest event Sync walks the events
// one by one instead of by membership. On the sequence, where every
// transaction takes a block of ids, the window is syncTailBlocks blocks:
// a live connection is woken after each commit, so it is a few
// transactions behind.
const (
	syncTailWindow = 256
	syncTailBlocks = 16
)

const syncCols = `e.id, e.kind, e.conversation_id, e.user_id, e.seq, e.epoch, e.reason, e.created_at,
       m.sender_device, m.sender_user, m.client_id, m.epoch, m.envelope, m.created_at`

const syncByMembership = `
SELECT ` + syncCols + `
FROM (
    SELECT id FROM (
        SELECT id FROM events WHERE device_id = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?
    ) addressed
    UNION ALL
    SELECT id FROM (
        SELECT ev.id FROM events ev
        JOIN members mb ON mb.conversation_id = ev.conversation_id
        WHERE mb.user_id = ? AND ev.device_id IS NULL AND ev.id > ? AND ev.id <= ?
          AND ev.id >= mb.joined_event_id
          AND (mb.left_event_id IS NULL OR ev.id <= mb.left_event_id)
        ORDER BY ev.id LIMIT ?
    ) shared
) ids
JOIN events e ON e.id = ids.id` + syncMessages + `
ORDER BY e.id
LIMIT ?`

// syncMessages joins each message event e to its message m.
const syncMessages = `
LEFT JOIN messages m ON e.kind = 'message' AND m.conversation_id = e.conversation_id AND m.seq = e.seq`

// syncVisible holds for an event e that the device (the first parameter)
// of the user (the second) may read: addressed to the device, or of a
// conversation while the user was a member. Both walks by event use it.
const syncVisible = `(e.device_id = ? OR (e.device_id IS NULL AND EXISTS (
    SELECT 1 FROM members mb
    WHERE mb.conversation_id = e.conversation_id AND mb.user_id = ?
      AND e.id >= mb.joined_event_id
      AND (mb.left_event_id IS NULL OR e.id <= mb.left_event_id))))`

const syncByEvent = `
SELECT ` + syncCols + `
FROM events e` + syncMessages + `
WHERE e.id > ? AND e.id <= ? AND ` + syncVisible + `
ORDER BY e.id
LIMIT ?`

// syncByEventPG is syncByEvent on PostgreSQL. The window of ids is read
// by a subquery that the planner cannot merge into the outer query (its
// OFFSET 0): a range scan of the primary key, in id order, whatever the
// statistics say. Merged, the OR of the filter let the planner read the
// window as a bitmap of two partial indexes, one of them
// events_conversation (conversation_id, id) scanned whole for its id
// range, a cost growing with the table; it did so whenever the
// statistics were older than the table's growth (a fresh database, the
// first minute after a restore), ten times the cost of the range scan
// on six thousand events (TestPostgresSyncNearHeadPages). It runs on
// the store's pool of generic plans (Store.walks), its placeholders
// numbered once here.
var syncByEventPG = postgresDialect.rebind(`
SELECT ` + syncCols + `
FROM (SELECT * FROM events WHERE id > ? AND id <= ? ORDER BY id OFFSET 0) e` + syncMessages + `
WHERE ` + syncVisible + `
ORDER BY e.id
LIMIT ?`)

// sync runs one of Sync's plans: byEvent walks the events after since,
// otherwise the memberships are unioned; none is above upTo.
func (s *Store) sync(ctx context.Context, byEvent bool, user protocol.UserID, device protocol.DeviceID, since, upTo int64, limit int) ([]store.Event, error) {
	var rows *sql.Rows
	var err error
	switch {
	case byEvent && s.walks != nil: // PostgreSQL
		rows, err = s.walks.QueryContext(ctx, syncByEventPG, since, upTo, idArg(device), idArg(user), limit)
	case byEvent:
		rows, err = s.query(ctx, syncByEvent, since, upTo, idArg(device), idArg(user), limit)
	default:
		rows, err = s.query(ctx, syncByMembership, idArg(device), since, upTo, limit, idArg(user), since, upTo, limit, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: sync: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var (
			e                 store.Event
			conv, usr         []byte
			mDev, mUser, mEnv []byte
			mClient           *string
			mEpoch, mAt       *int64
		)
		if err := rows.Scan(&e.ID, &e.Kind, &conv, &usr, &e.Seq, &e.Epoch, &e.Reason, &e.CreatedAt,
			&mDev, &mUser, &mClient, &mEpoch, &mEnv, &mAt); err != nil {
			return nil, fmt.Errorf("sqlstore: sync: %w", err)
		}
		if e.Conversation, err = toID[protocol.ConversationID](conv); err != nil {
			return nil, err
		}
		if e.User, err = toID[protocol.UserID](usr); err != nil {
			return nil, err
		}
		if e.Kind == store.EventMessage && mClient != nil {
			m := &store.Message{Conversation: *e.Conversation, Seq: e.Seq, ClientID: *mClient,
				Epoch: uint64(*mEpoch), Envelope: mEnv, CreatedAt: *mAt}
			if m.Sender, err = derefID[protocol.DeviceID](mDev); err != nil {
				return nil, err
			}
			if m.SenderUser, err = derefID[protocol.UserID](mUser); err != nil {
				return nil, err
			}
			e.Message = m
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: sync: %w", err)
	}
	return out, nil
}

func derefID[T ~[16]byte](b []byte) (T, error) {
	p, err := toID[T](b)
	if err != nil {
		return T{}, err
	}
	if p == nil {
		return T{}, fmt.Errorf("sqlstore: missing id")
	}
	return *p, nil
}

// Helpers to build events.

func devPtr(d protocol.DeviceID) *protocol.DeviceID              { return &d }
func convPtr(c protocol.ConversationID) *protocol.ConversationID { return &c }
func userPtr(u protocol.UserID) *protocol.UserID                 { return &u }

package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Send appends a batch of messages in one transaction. Every check is made
// before the insert it guards, so a refused item never makes a statement
// fail and the transaction stays usable for the others.
//
// Steps: (1) lock the batch's conversations in id order; (2) per item, in
// batch order: idempotency look-up by (sender device, client id), sender
// and membership check, epoch check, insert with the conversation's next
// seq (INSERT … ON CONFLICT DO NOTHING: on PostgreSQL a concurrent
// transaction may have inserted the same client id after the look-up; then
// nothing is inserted, no seq is used, and the row it committed is the
// answer); (3) write back the conversations' counters; (4) take event ids
// and write the events; (5) record each message's event id.
func (s *Store) Send(ctx context.Context, batch []store.Send) ([]store.SendResult, error) {
	var res []store.SendResult
	err := s.write(ctx, "send", func(t *wtx) error {
		var err error
		res, err = t.send(batch)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

type msgKey struct {
	dev protocol.DeviceID
	cid string
}

func (t *wtx) send(batch []store.Send) ([]store.SendResult, error) {
	res := make([]store.SendResult, len(batch))

	// (1) Lock the conversations.
	ids := make([]protocol.ConversationID, 0, len(batch))
	for _, m := range batch {
		ids = append(ids, m.Conversation)
	}
	slices.SortFunc(ids, func(a, b protocol.ConversationID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	convs := make(map[protocol.ConversationID]*convState, len(ids))
	changed := make(map[protocol.ConversationID]bool)
	for _, id := range ids {
		c, err := t.lockConversation(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		convs[id] = &c
	}

	// (2) Check and insert, item by item.
	type senderKey struct {
		dev  protocol.DeviceID
		user protocol.UserID
		conv protocol.ConversationID
	}
	allowed := make(map[senderKey]bool)
	inserted := make(map[msgKey]int) // items inserted by this batch, by key
	dupOf := make(map[int]int)       // item -> earlier item of this batch it repeats
	var evs []newEvent
	evItem := make([]int, 0, len(batch)) // evs[k] is item evItem[k]'s message event, or -1
	for i, m := range batch {
		key := msgKey{m.Sender, m.ClientID}
		if j, ok := inserted[key]; ok {
			if batch[j].Conversation == m.Conversation && bytes.Equal(batch[j].Envelope, m.Envelope) {
				dupOf[i] = j
			} else {
				res[i].Err = store.ErrIdempotency
			}
			continue
		}
		if found, err := t.previous(m, &res[i]); err != nil {
			return nil, err
		} else if found {
			continue
		}
		c := convs[m.Conversation]
		if c == nil {
			res[i].Err = store.ErrNotFound
			continue
		}
		sk := senderKey{m.Sender, m.SenderUser, m.Conversation}
		ok, seen := allowed[sk]
		if !seen {
			var err error
			if ok, err = t.mayPost(m); err != nil {
				return nil, err
			}
			allowed[sk] = ok
		}
		if !ok {
			res[i].Err = store.ErrNotMember
			continue
		}
		if m.Epoch != c.epoch || c.required {
			res[i].Err = &store.EpochError{Err: store.ErrStaleEpoch, Current: c.epoch}
			continue
		}
		seq := c.lastSeq + 1
		r, err := t.exec(`INSERT INTO messages (conversation_id, seq, sender_device, sender_user, client_id, epoch, envelope, created_at, event_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT DO NOTHING`,
			idArg(m.Conversation), i64(seq), idArg(m.Sender), idArg(m.SenderUser), m.ClientID, i64(m.Epoch), m.Envelope, m.Now)
		if err != nil {
			return nil, err
		}
		if n, err := r.RowsAffected(); err != nil {
			return nil, err
		} else if n == 0 {
			// Another transaction committed this client id meanwhile.
			if found, err := t.previous(m, &res[i]); err != nil {
				return nil, err
			} else if !found {
				return nil, fmt.Errorf("message %s/%q neither inserted nor found", m.Sender, m.ClientID)
			}
			continue
		}
		inserted[key] = i
		c.lastSeq = seq
		c.inEpoch++
		changed[m.Conversation] = true
		res[i].Seq = seq
		res[i].CreatedAt = m.Now
		evs = append(evs, newEvent{kind: store.EventMessage, conv: convPtr(m.Conversation), seq: seq, epoch: m.Epoch, at: m.Now})
		evItem = append(evItem, i)
		if (m.RotateAfterMessages > 0 && c.inEpoch >= int64(m.RotateAfterMessages)) ||
			(m.RotateAfterMillis > 0 && m.Now-c.startedAt >= m.RotateAfterMillis) {
			c.required, c.reason = true, "policy"
			evs = append(evs, newEvent{kind: store.EventRotation, conv: convPtr(m.Conversation), epoch: c.epoch, reason: "policy", at: m.Now})
			evItem = append(evItem, -1)
		}
	}

	// (3) Write back the counters of the conversations written to.
	for _, id := range ids {
		if !changed[id] {
			continue
		}
		c := convs[id]
		if _, err := t.exec(`UPDATE conversations SET last_seq = ?, messages_in_epoch = ?, rotation_required = ?, rotation_reason = ? WHERE id = ?`,
			i64(c.lastSeq), c.inEpoch, c.required, c.reason, idArg(id)); err != nil {
			return nil, err
		}
	}

	// (4) Events, then (5) each message's event id.
	first, err := t.emit(evs)
	if err != nil {
		return nil, err
	}
	for k, i := range evItem {
		if i < 0 {
			continue
		}
		res[i].EventID = first + int64(k)
		if _, err := t.exec(`UPDATE messages SET event_id = ? WHERE conversation_id = ? AND seq = ?`,
			res[i].EventID, idArg(batch[i].Conversation), i64(res[i].Seq)); err != nil {
			return nil, err
		}
	}
	for i, j := range dupOf {
		res[i] = res[j]
		res[i].Duplicate = true
	}
	return res, nil
}

// previous looks up an earlier message with m's sender and client id. If
// there is one, it fills r: the first result with Duplicate set when m
// repeats it, ErrIdempotency when m differs.
func (t *wtx) previous(m store.Send, r *store.SendResult) (bool, error) {
	var conv protocol.ConversationID
	var env []byte
	err := t.queryRow(`SELECT conversation_id, seq, envelope, created_at, event_id FROM messages WHERE sender_device = ? AND client_id = ?`,
		idArg(m.Sender), m.ClientID).Scan(scanID(&conv), &r.Seq, &env, &r.CreatedAt, &r.EventID)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if conv != m.Conversation || !bytes.Equal(env, m.Envelope) {
		*r = store.SendResult{Err: store.ErrIdempotency}
		return true, nil
	}
	r.Duplicate = true
	return true, nil
}

// mayPost reports whether m's sender device is an active device of
// m.SenderUser and that user a current member of the conversation. The
// conversation row is locked, and membership changes lock it too, so the
// answer holds until commit.
func (t *wtx) mayPost(m store.Send) (bool, error) {
	var one int
	err := t.queryRow(`SELECT 1 FROM devices d JOIN members mb ON mb.user_id = d.user_id
		WHERE d.id = ? AND d.user_id = ? AND d.revoked = FALSE AND mb.conversation_id = ? AND mb.left_event_id IS NULL`,
		idArg(m.Sender), idArg(m.SenderUser), idArg(m.Conversation)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Messages pages a conversation's messages with seq > after.
func (s *Store) Messages(ctx context.Context, conv protocol.ConversationID, after uint64, limit int) ([]store.Message, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT conversation_id, seq, sender_device, sender_user, client_id, epoch, envelope, created_at
		FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?`, idArg(conv), i64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: messages: %w", err)
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		var m store.Message
		if err := rows.Scan(scanID(&m.Conversation), &m.Seq, scanID(&m.Sender), scanID(&m.SenderUser), &m.ClientID, &m.Epoch, &m.Envelope, &m.CreatedAt); err != nil {
			return nil, fmt.Errorf("sqlstore: messages: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: messages: %w", err)
	}
	return out, nil
}

// SendOne appends one message through the batcher (group commit).
func (s *Store) SendOne(ctx context.Context, m store.Send) (store.SendResult, error) {
	return s.batch.send(ctx, m)
}

// ErrClosed is returned by SendOne after Close.
var ErrClosed = errors.New("sqlstore: store closed")

// batcher is the group commit of SendOne. One goroutine takes the first
// waiting request, then every request already waiting (up to max), and
// writes them with one Send: one transaction and one disk sync for all.
// While that transaction commits, new callers wait on the unbuffered
// channel and form the next batch. Under no load a batch is one message
// and adds no delay; under load batches grow by themselves.
type batcher struct {
	s    *Store
	max  int
	reqs chan *sendReq
	quit chan struct{}
	done sync.WaitGroup
}

type sendReq struct {
	ctx   context.Context
	m     store.Send
	reply chan sendReply // buffered: the batcher never blocks on it
}

type sendReply struct {
	res store.SendResult
	err error
}

// batchTimeout bounds one batch transaction. It runs on its own context,
// not a caller's: one caller giving up must not abort the others' writes.
const batchTimeout = 30 * time.Second

func newBatcher(s *Store, max int) *batcher {
	b := &batcher{s: s, max: max, reqs: make(chan *sendReq), quit: make(chan struct{})}
	b.done.Add(1)
	go b.loop()
	return b
}

func (b *batcher) close() {
	close(b.quit)
	b.done.Wait()
}

func (b *batcher) send(ctx context.Context, m store.Send) (store.SendResult, error) {
	r := &sendReq{ctx: ctx, m: m, reply: make(chan sendReply, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return store.SendResult{}, ctx.Err()
	case <-b.quit:
		return store.SendResult{}, ErrClosed
	}
	select {
	case rep := <-r.reply:
		return rep.res, rep.err
	case <-ctx.Done():
		return store.SendResult{}, ctx.Err()
	}
}

func (b *batcher) loop() {
	defer b.done.Done()
	for {
		var reqs []*sendReq
		select {
		case r := <-b.reqs:
			reqs = append(reqs, r)
		case <-b.quit:
			return
		}
	gather:
		for len(reqs) < b.max {
			select {
			case r := <-b.reqs:
				reqs = append(reqs, r)
			default:
				break gather
			}
		}
		b.run(reqs)
	}
}

func (b *batcher) run(reqs []*sendReq) {
	live := reqs[:0]
	for _, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.reply <- sendReply{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	batch := make([]store.Send, len(live))
	for i, r := range live {
		batch[i] = r.m
	}
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	res, err := b.s.Send(ctx, batch)
	cancel()
	for i, r := range live {
		if err != nil {
			r.reply <- sendReply{err: err}
			continue
		}
		r.reply <- sendReply{res: res[i], err: res[i].Err}
	}
}

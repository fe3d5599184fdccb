package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Send appends a batch of messages in one transaction. Every check is made
// before the insert it guards, so a refused item never makes a statement
// fail and the transaction stays usable for the others.
//
// The statements are per batch, not per message, so that a batch of a
// few hundred costs little more than one message: (1) lock the batch's
// conversations in id order (with a memo, their counters come from it);
// (2) check senders and membership, once per sender and conversation
// (again from the memo when it has them); (3) decide each item in batch
// order, assigning each accepted message its conversation's next seq;
// (4) take event ids and write the events; (5) insert the accepted
// messages, with their event ids, in one statement, and the references
// of those that share blobs; (6) write back the conversations' counters.
// A batch of text messages reads and writes no blob row.
//
// A retried client message id is the exception, so the batch is first
// written without looking the ids up: the insert skips a row whose
// (sender device, client id) is already stored, and if it skips any, the
// transaction is run again with the look-up, which then answers those
// items with the stored message (or ErrIdempotency). On PostgreSQL the
// insert can wait for another node's transaction inserting the same id
// while holding the event counter; a deadlock that follows is detected by
// the server and the batch retried.
//
// PostgreSQL takes the same decisions (planSend) in fewer round trips:
// see sendPostgres.
//
// An item with a Check is written only once its check has passed: a
// batch of one such send on PostgreSQL sends its statements while the
// check runs and commits or rolls back after it (sendPostgresChecked);
// any other batch waits for its items' checks first and writes those
// that passed.
func (s *Store) Send(ctx context.Context, batch []store.Send) ([]store.SendResult, error) {
	if !s.d.local && len(batch) == 1 && batch[0].Check != nil && len(batch[0].Blobs) == 0 {
		return s.sendPostgresChecked(ctx, batch[0])
	}
	var res []store.SendResult
	pass := make([]int, 0, len(batch))
	for i, m := range batch {
		var err error
		if m.Check != nil {
			err = m.Check()
		}
		if err == nil {
			pass = append(pass, i)
			continue
		}
		if res == nil {
			res = make([]store.SendResult, len(batch))
		}
		res[i].Err = err
	}
	if res == nil { // every check passed
		return s.send(ctx, batch)
	}
	if len(pass) == 0 {
		return res, nil
	}
	sub := make([]store.Send, len(pass))
	for j, i := range pass {
		sub[j] = batch[i]
	}
	r, err := s.send(ctx, sub)
	if err != nil {
		return nil, err
	}
	for j, i := range pass {
		res[i] = r[j]
	}
	return res, nil
}

// send is Send of items whose checks have passed.
func (s *Store) send(ctx context.Context, batch []store.Send) ([]store.SendResult, error) {
	if !s.d.local {
		return s.sendPostgres(ctx, batch, false, false)
	}
	return s.sendTx(ctx, batch)
}

// sendTx is Send by the statements of wtx.send, in one write transaction.
func (s *Store) sendTx(ctx context.Context, batch []store.Send) ([]store.SendResult, error) {
	var res []store.SendResult
	lookup := false
	err := s.writeTx(ctx, "send", false, func(t *wtx) error {
		var err error
		res, err = t.send(batch, lookup)
		if errors.Is(err, errLookUp) {
			lookup = true
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// errLookUp asks for the batch to run again from the start, with its
// client message ids looked up: one of them is already stored (by an
// earlier transaction, when the batch ran without the look-up, or by a
// concurrent one after it, on PostgreSQL), or an item would be refused
// and may be the retry of a stored message, which gets its first answer.
var errLookUp = errors.New("the batch's client message ids must be looked up")

type msgKey struct {
	dev protocol.DeviceID
	cid string
}

// prevMsg is a stored message as the idempotency check needs it.
type prevMsg struct {
	conv     protocol.ConversationID
	envelope []byte
	res      store.SendResult
}

func (t *wtx) send(batch []store.Send, lookup bool) ([]store.SendResult, error) {
	if len(batch) == 0 {
		return []store.SendResult{}, nil
	}
	memo := t.s.memo

	// (1) Lock the conversations.
	ids := batchConversations(batch)
	convs := make(map[protocol.ConversationID]*convState, len(ids))
	var toLock []protocol.ConversationID
	for _, id := range ids {
		if memo != nil {
			if c, ok := memo.convs[id]; ok {
				convs[id] = &c
				continue
			}
		}
		toLock = append(toLock, id)
	}
	if err := t.lockConversations(toLock, convs); err != nil {
		return nil, err
	}

	// Earlier messages with the batch's client ids, on the second run.
	prev := map[msgKey]prevMsg{}
	if lookup {
		var err error
		if prev, err = t.previous(batch); err != nil {
			return nil, err
		}
	}

	// (2) Who may post where.
	allowed, err := t.mayPost(batch)
	if err != nil {
		return nil, err
	}
	// The blobs the batch shares, if any.
	blobs, err := t.sendBlobs(batch)
	if err != nil {
		return nil, err
	}

	// (3) Decide, item by item.
	p, err := planSend(batch, ids, convs, allowed, blobs, prev, lookup)
	if err != nil {
		return nil, err
	}
	if memo != nil {
		// Keep the conversations' counters and the membership answers
		// once they are committed.
		t.afterCommit(func() {
			for _, c := range convs {
				memo.putConv(*c)
			}
			for k, v := range allowed {
				memo.putPoster(k, v)
			}
		})
	}
	if len(p.ok) == 0 {
		return p.res, nil
	}

	// (4) Events.
	first, err := t.emit(p.evs)
	if err != nil {
		return nil, err
	}
	p.numberEvents(first)
	if memo != nil {
		recent := p.recent(batch, first)
		t.afterCommit(func() { memo.tail.add(recent) })
	}

	// (5) Insert. Nothing can conflict on (conversation, seq): the
	// conversations are locked (SQLite: written by this connection only).
	// A skipped row is a client id stored before: run again with the
	// look-up.
	const cols = 10
	for lo := 0; lo < len(p.ok); lo += rowsPerStatement { // lo numbers the ids
		hi := min(lo+rowsPerStatement, len(p.ok))
		args := make([]any, 0, cols*(hi-lo))
		for _, a := range p.ok[lo:hi] {
			m := batch[a.item]
			args = append(args, idArg(m.Conversation), i64(a.seq), idArg(m.Sender), idArg(m.SenderUser), m.ClientID, i64(m.Epoch), m.Envelope, m.Now, p.res[a.item].EventID, expiresArg(m.ExpiresAt))
		}
		r, err := t.exec(`INSERT INTO messages (conversation_id, seq, sender_device, sender_user, client_id, epoch, envelope, created_at, event_id, expires_at)
			VALUES `+placeholders(hi-lo, cols)+` ON CONFLICT DO NOTHING`, args...)
		if err != nil {
			return nil, err
		}
		if n, err := r.RowsAffected(); err != nil {
			return nil, err
		} else if n != int64(hi-lo) {
			return nil, errLookUp
		}
	}

	if blobs != nil {
		var refs []blobRef
		for _, a := range p.ok {
			for _, id := range batch[a.item].Blobs {
				refs = append(refs, blobRef{id, batch[a.item].Conversation, a.seq})
			}
		}
		if err := t.referenceBlobs(refs); err != nil {
			return nil, err
		}
	}

	// (6) The counters of the conversations written to.
	if err := t.writeCounters(p.counters); err != nil {
		return nil, err
	}
	return p.res, nil
}

// batchConversations returns the distinct conversations of a batch in id
// order: the order in which every writer locks them.
func batchConversations(batch []store.Send) []protocol.ConversationID {
	ids := make([]protocol.ConversationID, 0, len(batch))
	for _, m := range batch {
		ids = append(ids, m.Conversation)
	}
	slices.SortFunc(ids, func(a, b protocol.ConversationID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(ids)
}

// sendPlan is what a send batch decided, before any of it is written.
type sendPlan struct {
	res []store.SendResult
	// ok are the accepted items, in batch order, with their seqs.
	ok []accepted
	// evs are the events to append: the accepted messages' in batch order
	// (so each conversation's are in seq order), then the rotations. All
	// commit together, so readers see them as one step whatever their
	// order within it.
	evs []newEvent
	// counters are the conversations written to, in id order.
	counters []*convState
	// dupOf maps an item to the accepted item of this batch it repeats.
	dupOf map[int]int
}

type accepted struct {
	item int
	seq  uint64
}

// planSend decides each item of a batch in batch order, given the locked
// conversations (convs, updated in place), who may post where and, on the
// run with look-up, the messages stored before with the batch's client
// ids. It returns errLookUp when the batch must run again with the
// look-up.
func planSend(batch []store.Send, ids []protocol.ConversationID, convs map[protocol.ConversationID]*convState,
	allowed map[senderKey]bool, blobs map[string]sendBlob, prev map[msgKey]prevMsg, lookup bool) (*sendPlan, error) {
	p := &sendPlan{res: make([]store.SendResult, len(batch)), dupOf: make(map[int]int)}
	res := p.res
	inBatch := make(map[msgKey]int) // accepted items by key
	var rotations []newEvent
	for i, m := range batch {
		key := msgKey{m.Sender, m.ClientID}
		if j, seen := inBatch[key]; seen {
			if batch[j].Conversation == m.Conversation && bytes.Equal(batch[j].Envelope, m.Envelope) {
				p.dupOf[i] = j
			} else {
				res[i].Err = store.ErrIdempotency
			}
			continue
		}
		if pm, seen := prev[key]; seen {
			if pm.conv == m.Conversation && bytes.Equal(pm.envelope, m.Envelope) {
				res[i] = pm.res
			} else {
				res[i].Err = store.ErrIdempotency
			}
			continue
		}
		c := convs[m.Conversation]
		switch {
		case c == nil:
			res[i].Err = store.ErrNotFound
		case !allowed[senderKey{m.Sender, m.SenderUser, m.Conversation}]:
			res[i].Err = store.ErrNotMember
		case m.Epoch != c.epoch || c.required:
			res[i].Err = &store.EpochError{Err: store.ErrStaleEpoch, Current: c.epoch}
		case len(m.Blobs) > 0 && !blobsOK(&batch[i], blobs):
			res[i].Err = store.ErrBadBlob
		}
		if res[i].Err != nil {
			if !lookup {
				// A retry of a stored message gets the first answer
				// even when it would be refused now.
				return nil, errLookUp
			}
			continue
		}
		c.lastSeq++
		c.inEpoch++
		inBatch[key] = i
		p.ok = append(p.ok, accepted{i, c.lastSeq})
		res[i].Seq, res[i].CreatedAt = c.lastSeq, m.Now
		if (m.RotateAfterMessages > 0 && c.inEpoch >= int64(m.RotateAfterMessages)) ||
			(m.RotateAfterMillis > 0 && m.Now-c.startedAt >= m.RotateAfterMillis) {
			c.required, c.reason = true, "policy"
			rotations = append(rotations, newEvent{kind: store.EventRotation, conv: convPtr(m.Conversation), epoch: c.epoch, reason: "policy", at: m.Now})
		}
	}
	if len(p.ok) == 0 {
		return p, nil
	}
	p.evs = make([]newEvent, 0, len(p.ok)+len(rotations))
	written := make(map[protocol.ConversationID]bool)
	for _, a := range p.ok {
		m := batch[a.item]
		p.evs = append(p.evs, newEvent{kind: store.EventMessage, conv: convPtr(m.Conversation), seq: a.seq, epoch: m.Epoch, at: m.Now})
		written[m.Conversation] = true
	}
	p.evs = append(p.evs, rotations...)
	for _, id := range ids {
		if written[id] {
			p.counters = append(p.counters, convs[id])
		}
	}
	return p, nil
}

// numberEvents gives the accepted messages their event ids, the first
// of the plan's events being first, and copies them to the repeats.
func (p *sendPlan) numberEvents(first int64) {
	for k, a := range p.ok {
		p.res[a.item].EventID = first + int64(k)
	}
	for i, j := range p.dupOf {
		p.res[i] = p.res[j]
		p.res[i].Duplicate = true
	}
}

// recent returns the plan's events as the tail of the stream keeps them.
func (p *sendPlan) recent(batch []store.Send, first int64) []store.Event {
	recent := make([]store.Event, len(p.evs))
	for i, e := range p.evs {
		recent[i] = store.Event{ID: first + int64(i), Kind: e.kind, Conversation: e.conv, Seq: e.seq,
			Epoch: e.epoch, Reason: e.reason, CreatedAt: e.at}
		if i < len(p.ok) {
			m := batch[p.ok[i].item]
			recent[i].Message = &store.Message{Conversation: m.Conversation, Seq: p.ok[i].seq, Sender: m.Sender,
				SenderUser: m.SenderUser, ClientID: m.ClientID, Epoch: m.Epoch, Envelope: bytes.Clone(m.Envelope), CreatedAt: m.Now}
		}
	}
	return recent
}

// previous looks up the stored messages with the batch's (sender device,
// client id) pairs; their results are returned with Duplicate set.
func (t *wtx) previous(batch []store.Send) (map[msgKey]prevMsg, error) {
	out := make(map[msgKey]prevMsg)
	for part := range slices.Chunk(batch, rowsPerStatement) {
		args := make([]any, 0, 2*len(part))
		for _, m := range part {
			args = append(args, idArg(m.Sender), m.ClientID)
		}
		values := tuples("("+t.s.d.bytesParam+", ?)", len(part))
		rows, err := t.query(`SELECT sender_device, client_id, conversation_id, seq, envelope, created_at, event_id FROM messages
			WHERE (sender_device, client_id) IN (VALUES `+values+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k msgKey
			p := prevMsg{res: store.SendResult{Duplicate: true}}
			if err := rows.Scan(scanID(&k.dev), &k.cid, scanID(&p.conv), &p.res.Seq, &p.envelope, &p.res.CreatedAt, &p.res.EventID); err != nil {
				rows.Close()
				return nil, err
			}
			out[k] = p
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type senderKey struct {
	dev  protocol.DeviceID
	user protocol.UserID
	conv protocol.ConversationID
}

// mayPost reports, for each distinct (sender device, user, conversation)
// of the batch, whether the device is an active device of the user and the
// user a current member of the conversation. The conversation rows are
// locked, and membership changes lock them too, so the answers hold until
// commit. The answers the memo lacks are read with one statement.
func (t *wtx) mayPost(batch []store.Send) (map[senderKey]bool, error) {
	out := make(map[senderKey]bool)
	var ask []senderKey
	for _, m := range batch {
		k := senderKey{m.Sender, m.SenderUser, m.Conversation}
		if _, done := out[k]; done {
			continue
		}
		if memo := t.s.memo; memo != nil {
			if v, ok := memo.posters[k]; ok {
				out[k] = v
				continue
			}
		}
		out[k] = false
		ask = append(ask, k)
	}
	b := t.s.d.bytesParam
	triple := "(" + b + ", " + b + ", " + b + ")"
	for part := range slices.Chunk(ask, rowsPerStatement) {
		args := make([]any, 0, 3*len(part))
		for _, k := range part {
			args = append(args, idArg(k.dev), idArg(k.user), idArg(k.conv))
		}
		rows, err := t.query(`SELECT d.id, d.user_id, mb.conversation_id FROM devices d JOIN members mb ON mb.user_id = d.user_id
			WHERE d.revoked = FALSE AND mb.left_event_id IS NULL
			  AND (d.id, d.user_id, mb.conversation_id) IN (VALUES `+tuples(triple, len(part))+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k senderKey
			if err := rows.Scan(scanID(&k.dev), scanID(&k.user), scanID(&k.conv)); err != nil {
				rows.Close()
				return nil, err
			}
			out[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lockConversations reads and locks the conversation rows of ids (sorted,
// distinct) into convs, rowsPerStatement at a time; a conversation that
// does not exist is left out.
func (t *wtx) lockConversations(ids []protocol.ConversationID, convs map[protocol.ConversationID]*convState) error {
	for part := range slices.Chunk(ids, rowsPerStatement) {
		args := make([]any, 0, len(part))
		for _, id := range part {
			args = append(args, idArg(id))
		}
		// PostgreSQL locks the rows as the sorted scan returns them: in
		// id order, as every writer does.
		rows, err := t.query(`SELECT `+convStateCols+` FROM conversations WHERE id IN `+
			placeholders(1, len(part))+` ORDER BY id`+t.lockSuffix(), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			c, err := scanConvState(rows)
			if err != nil {
				rows.Close()
				return err
			}
			convs[c.id] = &c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// rowUpdatesUpTo is the most conversations whose counters a SQLite
// batch writes with one UPDATE each rather than one UPDATE … FROM.
const rowUpdatesUpTo = 8

// writeCounters writes back the message counters and rotation state of
// the given conversations, rowsPerStatement at a time.
func (t *wtx) writeCounters(cs []*convState) error {
	if len(cs) == 1 || (t.s.d.local && len(cs) <= rowUpdatesUpTo) {
		// An UPDATE … FROM a VALUES list builds a temporary table
		// first: for one conversation (any dialect, one round trip
		// either way) or a few on SQLite (no round trips), a prepared
		// UPDATE each costs less.
		for _, c := range cs {
			if _, err := t.exec(`UPDATE conversations SET last_seq = ?, messages_in_epoch = ?, rotation_required = ?, rotation_reason = ? WHERE id = ?`,
				i64(c.lastSeq), c.inEpoch, c.required, c.reason, idArg(c.id)); err != nil {
				return err
			}
		}
		return nil
	}
	// Typed so that PostgreSQL knows the VALUES columns' types (see
	// dialect.bytesParam for why the id is not cast on SQLite).
	row := "(" + t.s.d.bytesParam + ", CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BOOLEAN), CAST(? AS TEXT))"
	for part := range slices.Chunk(cs, rowsPerStatement) {
		args := make([]any, 0, 5*len(part))
		for _, c := range part {
			args = append(args, idArg(c.id), i64(c.lastSeq), c.inEpoch, c.required, c.reason)
		}
		if _, err := t.exec(`WITH v (id, last_seq, in_epoch, required, reason) AS (VALUES `+tuples(row, len(part))+`)
			UPDATE conversations SET last_seq = v.last_seq, messages_in_epoch = v.in_epoch,
				rotation_required = v.required, rotation_reason = v.reason
			FROM v WHERE conversations.id = v.id`, args...); err != nil {
			return err
		}
	}
	return nil
}

// Messages pages a conversation's messages with seq > after.
func (s *Store) Messages(ctx context.Context, conv protocol.ConversationID, after uint64, limit int) ([]store.Message, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.messages(s.query(ctx, `SELECT conversation_id, seq, sender_device, sender_user, client_id, epoch, envelope, created_at
		FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?`, idArg(conv), i64(after), limit))
}

// MemberMessages pages the messages user may read. A message's event id
// (messages.event_id, the id of its event in the sync stream) is checked
// against user's spans of membership exactly as Sync checks events, so
// history and sync show the same messages.
func (s *Store) MemberMessages(ctx context.Context, user protocol.UserID, conv protocol.ConversationID, after uint64, limit int) ([]store.Message, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.messages(s.query(ctx, memberMessages, idArg(conv), i64(after), idArg(user), limit))
}

const memberMessages = `
SELECT m.conversation_id, m.seq, m.sender_device, m.sender_user, m.client_id, m.epoch, m.envelope, m.created_at
FROM messages m
WHERE m.conversation_id = ? AND m.seq > ? AND EXISTS (
    SELECT 1 FROM members mb
    WHERE mb.conversation_id = m.conversation_id AND mb.user_id = ?
      AND m.event_id >= mb.joined_event_id
      AND (mb.left_event_id IS NULL OR m.event_id <= mb.left_event_id))
ORDER BY m.seq
LIMIT ?`

// messages reads the rows of a query that selects messages.
func (s *Store) messages(rows *sql.Rows, err error) ([]store.Message, error) {
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
// and adds no delay; under load batches grow by themselves. One batch is
// written at a time on PostgreSQL too: every batch holds the event
// counter's row lock until its commit has ended, so batches written side
// by side would commit one after the other anyway, only smaller.
type batcher struct {
	s    *Store
	max  int
	reqs chan *sendReq
	quit chan struct{}
	done sync.WaitGroup

	lingered atomic.Int64 // batches that waited for more, for tests
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

// A batch that found at least lingerAfter requests waiting waits for more
// before it is written: under load, more messages share the
// transaction's fixed costs (above all the disk sync) for a fraction of
// its duration. It waits at most batchLinger when it found lingerFull or
// more, in proportion when fewer, and stops as soon as no request has
// come for lingerGap. Sends that arrive in a steady stream (64 senders,
// each sending again as soon as it is answered) fill larger batches;
// sends that queued behind a slow commit while no more are coming (a
// thousand a second from many clients) wait lingerGap at most. A
// request alone (a quiet server) is written at once.
var (
	lingerAfter = 2
	lingerFull  = 8
	batchLinger = 1 * time.Millisecond
	lingerGap   = 250 * time.Microsecond
)

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
		if len(reqs) >= lingerAfter {
			// Under load: give the requests on their way a moment to
			// join this transaction rather than wait for the next, the
			// longer the more were already waiting.
			b.lingered.Add(1)
			linger := time.NewTimer(batchLinger * time.Duration(min(len(reqs), lingerFull)) / time.Duration(lingerFull))
			gap := time.NewTimer(lingerGap)
		wait:
			for len(reqs) < b.max {
				select {
				case r := <-b.reqs:
					reqs = append(reqs, r)
					gap.Reset(lingerGap)
				case <-gap.C:
					break wait
				case <-linger.C:
					break wait
				case <-b.quit: // write what came, then stop
					break wait
				}
			}
			linger.Stop()
			gap.Stop()
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
	if err == nil && b.s.head != nil {
		b.s.head.committed()
	}
	for i, r := range live {
		if err != nil {
			r.reply <- sendReply{err: err}
			continue
		}
		r.reply <- sendReply{res: res[i], err: res[i].Err}
	}
}

// expiresArg is a message's expiry as its column holds it: NULL for never.
func expiresArg(at int64) any {
	if at == 0 {
		return nil
	}
	return at
}

// deleteEvents deletes the events that match cond (a condition on
// events with its arguments), but for the newest event of all: on
// PostgreSQL its id is the head that a page without events names
// (LastEventID, MAX(id)), which must never go back below a cursor a
// device holds, or the device would take the server for rolled back.
func (t *wtx) deleteEvents(cond string, args ...any) error {
	_, err := t.exec(`DELETE FROM events WHERE `+cond+` AND id < (SELECT MAX(id) FROM events)`, args...)
	return err
}

// DeleteExpiredMessages implements store.Store. When it deletes a message
// it forgets the memo (the tail holds envelopes), as every write but
// Send's does; a pass that finds none due (the collector's usual one)
// keeps it.
func (s *Store) DeleteExpiredMessages(ctx context.Context, now int64, limit int) (int, error) {
	var n int
	err := s.writeTx(ctx, "delete expired messages", false, func(t *wtx) error {
		rows, err := t.query(`DELETE FROM messages WHERE (conversation_id, seq) IN (
			SELECT conversation_id, seq FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?)
			RETURNING event_id`, now, limit)
		if err != nil {
			return err
		}
		events, err := collect(rows, func(r scanner) (any, error) {
			var id int64
			err := r.Scan(&id)
			return id, err
		})
		if err != nil {
			return err
		}
		// Their events go too: the server forgets that the messages were
		// there.
		for part := range slices.Chunk(events, idsPerStatement) {
			if err := t.deleteEvents(`id IN `+placeholders(1, len(part)), part...); err != nil {
				return err
			}
		}
		if n = len(events); n > 0 {
			t.afterCommit(func() {
				if s.memo != nil {
					s.memo.invalidate()
				}
				s.pgr.invalidate()
			})
		}
		return nil
	})
	return n, err
}

package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// The send batch on PostgreSQL is two round trips, whatever its size:
//
//  1. BEGIN, lock the batch's conversations (in id order), read who may
//     post where and, on the run with the look-up, the messages stored
//     before with the batch's client ids: one pipeline (pgx.Batch).
//  2. After the same decisions as on SQLite (planSend), one statement
//     advances the event counter, inserts the events and the messages
//     and writes the conversations' counters, and COMMIT follows it in
//     the same pipeline.
//
// The event counter's row lock is taken in the second round trip only,
// so it is held for the time of one statement and the commit, not for
// the decisions: the next batch's first round trip (and its lock waits)
// overlaps this batch's commit (see batcher, several batches in flight).
//
// A message whose (sender device, client id) is already stored makes the
// insert fail with a unique violation (it waits for a concurrent
// transaction inserting the same pair to end first): the transaction is
// rolled back and the batch runs again with the look-up, exactly as
// errLookUp does on SQLite.

const pgLockConversations = `SELECT ` + convStateCols + ` FROM conversations WHERE id = ANY($1::bytea[]) ORDER BY id FOR UPDATE`

const pgMayPost = `SELECT d.id, d.user_id, mb.conversation_id
FROM unnest($1::bytea[], $2::bytea[], $3::bytea[]) AS k (dev, usr, conv)
JOIN devices d ON d.id = k.dev AND d.user_id = k.usr
JOIN members mb ON mb.user_id = k.usr AND mb.conversation_id = k.conv
WHERE d.revoked = FALSE AND mb.left_event_id IS NULL`

const pgPrevious = `SELECT m.sender_device, m.client_id, m.conversation_id, m.seq, m.envelope, m.created_at, m.event_id
FROM unnest($1::bytea[], $2::text[]) AS k (dev, cid)
JOIN messages m ON m.sender_device = k.dev AND m.client_id = k.cid`

// pgWriteBatch writes a planned batch: $1 events, of which the first are
// the messages' in the same order. It returns the id before the first.
const pgWriteBatch = `WITH c AS (
    UPDATE event_counter SET last_id = last_id + $1 WHERE id = 1 RETURNING last_id - $1 AS base
), ev AS (
    INSERT INTO events (id, kind, conversation_id, seq, epoch, reason, created_at)
    SELECT c.base + e.ord, e.kind, e.conv, e.seq, e.epoch, e.reason, e.at
    FROM c, unnest($2::text[], $3::bytea[], $4::int8[], $5::int8[], $6::text[], $7::int8[])
        WITH ORDINALITY AS e (kind, conv, seq, epoch, reason, at, ord)
), msg AS (
    INSERT INTO messages (conversation_id, seq, sender_device, sender_user, client_id, epoch, envelope, created_at, event_id)
    SELECT e.conv, e.seq, m.dev, m.usr, m.cid, e.epoch, m.env, e.at, c.base + m.ord
    FROM c, unnest($8::bytea[], $9::bytea[], $10::text[], $11::bytea[]) WITH ORDINALITY AS m (dev, usr, cid, env, ord)
    JOIN unnest($3::bytea[], $4::int8[], $5::int8[], $7::int8[]) WITH ORDINALITY AS e (conv, seq, epoch, at, ord) ON e.ord = m.ord
), conv AS (
    UPDATE conversations SET last_seq = v.last_seq, messages_in_epoch = v.in_epoch,
        rotation_required = v.required, rotation_reason = v.reason
    FROM unnest($12::bytea[], $13::int8[], $14::int8[], $15::bool[], $16::text[]) AS v (id, last_seq, in_epoch, required, reason)
    WHERE conversations.id = v.id
)
SELECT base FROM c`

// sendPostgres is Send on PostgreSQL.
func (s *Store) sendPostgres(ctx context.Context, batch []store.Send) ([]store.SendResult, error) {
	if len(batch) == 0 {
		return []store.SendResult{}, nil
	}
	const attempts = 5
	lookup := false
	var err error
	for range attempts {
		var res []store.SendResult
		res, err = s.sendPostgresOnce(ctx, batch, lookup)
		if err == nil {
			return res, nil
		}
		if errors.Is(err, errLookUp) {
			lookup = true
		}
		if !s.d.retryable(err) || ctx.Err() != nil {
			break
		}
	}
	if full(err) {
		return nil, fmt.Errorf("sqlstore: send: %w: %w", store.ErrFull, err)
	}
	return nil, fmt.Errorf("sqlstore: send: %w", err)
}

// sendPostgresOnce runs the batch's transaction once, on a connection of
// the pool driven through pgx directly (database/sql has no pipelines).
func (s *Store) sendPostgresOnce(ctx context.Context, batch []store.Send, lookup bool) ([]store.SendResult, error) {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var res []store.SendResult
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		var err error
		res, err = pgSendTx(ctx, pc, batch, lookup)
		if err == nil {
			return nil
		}
		if pc.PgConn().TxStatus() != 'I' {
			// Leave the connection idle, or have the pool drop it.
			if _, rerr := pc.Exec(ctx, "ROLLBACK"); rerr != nil || pc.PgConn().TxStatus() != 'I' {
				return errors.Join(err, driver.ErrBadConn)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func pgSendTx(ctx context.Context, pc *pgx.Conn, batch []store.Send, lookup bool) ([]store.SendResult, error) {
	ids := batchConversations(batch)
	var askDev, askUser, askConv [][]byte
	seen := make(map[senderKey]bool)
	for _, m := range batch {
		k := senderKey{m.Sender, m.SenderUser, m.Conversation}
		if !seen[k] {
			seen[k] = true
			askDev, askUser, askConv = append(askDev, idArg(k.dev)), append(askUser, idArg(k.user)), append(askConv, idArg(k.conv))
		}
	}
	idArgs := make([][]byte, len(ids))
	for i, id := range ids {
		idArgs[i] = idArg(id)
	}

	// Round trip 1.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(pgLockConversations, idArgs)
	b.Queue(pgMayPost, askDev, askUser, askConv)
	if lookup {
		devs, cids := make([][]byte, len(batch)), make([]string, len(batch))
		for i, m := range batch {
			devs[i], cids[i] = idArg(m.Sender), m.ClientID
		}
		b.Queue(pgPrevious, devs, cids)
	}
	convs := make(map[protocol.ConversationID]*convState, len(ids))
	allowed := make(map[senderKey]bool, len(seen))
	for k := range seen {
		allowed[k] = false
	}
	prev := map[msgKey]prevMsg{}
	br := pc.SendBatch(ctx, b)
	err := func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, _ := br.Query()
		for rows.Next() {
			c, err := scanConvState(rows)
			if err != nil {
				rows.Close()
				return err
			}
			convs[c.id] = &c
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, _ = br.Query()
		for rows.Next() {
			var k senderKey
			if err := rows.Scan(scanID(&k.dev), scanID(&k.user), scanID(&k.conv)); err != nil {
				rows.Close()
				return err
			}
			allowed[k] = true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if !lookup {
			return nil
		}
		rows, _ = br.Query()
		for rows.Next() {
			var k msgKey
			p := prevMsg{res: store.SendResult{Duplicate: true}}
			if err := rows.Scan(scanID(&k.dev), &k.cid, scanID(&p.conv), &p.res.Seq, &p.envelope, &p.res.CreatedAt, &p.res.EventID); err != nil {
				rows.Close()
				return err
			}
			prev[k] = p
		}
		return rows.Err()
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}

	p, err := planSend(batch, ids, convs, allowed, prev, lookup)
	if err != nil {
		return nil, err
	}
	if len(p.ok) == 0 {
		// Nothing to write: end the transaction (it only read).
		_, err := pc.Exec(ctx, "COMMIT")
		return p.res, err
	}

	// Round trip 2.
	n := len(p.evs)
	kinds, convIDs, reasons := make([]string, n), make([][]byte, n), make([]string, n)
	seqs, epochs, ats := make([]int64, n), make([]int64, n), make([]int64, n)
	for i, e := range p.evs {
		kinds[i], convIDs[i], reasons[i] = e.kind, idArg(*e.conv), e.reason
		seqs[i], epochs[i], ats[i] = i64(e.seq), i64(e.epoch), e.at
	}
	k := len(p.ok)
	devs, users, cids, envs := make([][]byte, k), make([][]byte, k), make([]string, k), make([][]byte, k)
	for i, a := range p.ok {
		m := batch[a.item]
		devs[i], users[i], cids[i], envs[i] = idArg(m.Sender), idArg(m.SenderUser), m.ClientID, m.Envelope
	}
	c := len(p.counters)
	cIDs, cSeqs, cIn, cReq, cReason := make([][]byte, c), make([]int64, c), make([]int64, c), make([]bool, c), make([]string, c)
	for i, cs := range p.counters {
		cIDs[i], cSeqs[i], cIn[i], cReq[i], cReason[i] = idArg(cs.id), i64(cs.lastSeq), cs.inEpoch, cs.required, cs.reason
	}
	b = &pgx.Batch{}
	b.Queue(pgWriteBatch, int64(n), kinds, convIDs, seqs, epochs, reasons, ats, devs, users, cids, envs,
		cIDs, cSeqs, cIn, cReq, cReason)
	b.Queue("COMMIT")
	br = pc.SendBatch(ctx, b)
	var base int64
	err = br.QueryRow().Scan(&base)
	if err == nil {
		var tag pgconn.CommandTag
		tag, err = br.Exec()
		if err == nil && tag.String() != "COMMIT" {
			err = fmt.Errorf("commit answered %q", tag.String())
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "messages_sender_device_client_id_key" {
			return nil, errLookUp
		}
		return nil, err
	}
	p.numberEvents(base + 1)
	return p.res, nil
}

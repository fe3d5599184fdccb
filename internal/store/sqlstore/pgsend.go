package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// The send batch on PostgreSQL is one round trip, whatever its size, when
// every send of it is accepted as it stands (pgFastSend), and otherwise
// two:
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
// the decisions (another node's batch may be making its own meanwhile).
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
// the messages' in the same order ($17: their expiries, 0 for never). It
// returns the id before the first.
const pgWriteBatch = `WITH c AS (
    UPDATE event_counter SET last_id = last_id + $1 WHERE id = 1 RETURNING last_id - $1 AS base
), ev AS (
    INSERT INTO events (id, kind, conversation_id, seq, epoch, reason, created_at)
    SELECT c.base + e.ord, e.kind, e.conv, e.seq, e.epoch, e.reason, e.at
    FROM c, unnest($2::text[], $3::bytea[], $4::int8[], $5::int8[], $6::text[], $7::int8[])
        WITH ORDINALITY AS e (kind, conv, seq, epoch, reason, at, ord)
), msg AS (
    INSERT INTO messages (conversation_id, seq, sender_device, sender_user, client_id, epoch, envelope, created_at, event_id, expires_at)
    SELECT e.conv, e.seq, m.dev, m.usr, m.cid, e.epoch, m.env, e.at, c.base + m.ord, NULLIF(m.exp, 0)
    FROM c, unnest($8::bytea[], $9::bytea[], $10::text[], $11::bytea[], $17::int8[]) WITH ORDINALITY AS m (dev, usr, cid, env, exp, ord)
    JOIN unnest($3::bytea[], $4::int8[], $5::int8[], $7::int8[]) WITH ORDINALITY AS e (conv, seq, epoch, at, ord) ON e.ord = m.ord
), conv AS (
    UPDATE conversations SET last_seq = v.last_seq, messages_in_epoch = v.in_epoch,
        rotation_required = v.required, rotation_reason = v.reason
    FROM unnest($12::bytea[], $13::int8[], $14::int8[], $15::bool[], $16::text[]) AS v (id, last_seq, in_epoch, required, reason)
    WHERE conversations.id = v.id
)
SELECT base FROM c`

// The statements on a database switched to the sequence draw one block
// of ids instead of advancing the counter (see pgstream.go): at most
// eventBlock events, which the batch size guarantees (maxPGBatch).
var (
	pgWriteBatchSeq = strings.Replace(pgWriteBatch, `
    UPDATE event_counter SET last_id = last_id + $1 WHERE id = 1 RETURNING last_id - $1 AS base
`, "\n    "+pgDrawIDs+" WHERE $1::int8 > 0\n", 1)
	pgFastSendSeq = strings.Replace(pgFastSend, `
    UPDATE event_counter SET last_id = last_id + cardinality($1::bytea[])
    WHERE id = 1 AND (SELECT ok FROM ok) RETURNING last_id - cardinality($1::bytea[]) AS base
`, "\n    "+pgDrawIDs+" WHERE (SELECT ok FROM ok)\n", 1)
)

func init() {
	if pgWriteBatchSeq == pgWriteBatch || pgFastSendSeq == pgFastSend || eventBlockText != strconv.Itoa(eventBlock) {
		panic("sqlstore: the send statements on the sequence were not built")
	}
}

// sendConns caps the send path's pool (Store.sends): the group commit
// writes one batch at a time, and a direct Send waits for a connection.
// genericConnLife bounds how long a generic plan made on a connection of
// the send or the walk pool is used (openPostgres).
const (
	sendConns       = 2
	genericConnLife = 15 * time.Minute
)

// maxPGBatch caps a send batch on PostgreSQL: with a rotation event per
// message at most, its events fit one block of ids.
const maxPGBatch = eventBlock / 2

// pgFastSend is the one round trip of a batch in which every item is
// accepted as it stands (see sendPostgres): it locks the conversations
// again (the pipeline's first statement already holds them, so this
// statement's snapshot, taken after, sees every membership change that
// committed before), checks every item as planSend would accept it, and
// writes the batch only if all are. It returns one row per item (its
// place in the batch, its seq and the id before the batch's first event),
// or none when any item needs planSend's decision.
const pgFastSend = `WITH i AS (
    SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::text[], $5::int8[], $6::bytea[], $7::int8[], $8::int8[], $9::int8[], $10::int8[])
        WITH ORDINALITY AS i (conv, dev, usr, cid, epoch, env, at, rot_msgs, rot_millis, exp, ord)
), l AS (
    SELECT id, epoch, epoch_started_at, messages_in_epoch, last_seq, rotation_required
    FROM conversations WHERE id = ANY($1::bytea[]) ORDER BY id FOR UPDATE
), p AS (
    SELECT i.*, l.epoch AS conv_epoch, l.epoch_started_at, l.rotation_required,
        l.last_seq + row_number() OVER w AS seq, l.messages_in_epoch + row_number() OVER w AS in_epoch
    FROM i JOIN l ON l.id = i.conv
    WINDOW w AS (PARTITION BY i.conv ORDER BY i.ord)
), ok AS (
    SELECT count(*) = cardinality($1::bytea[]) AND coalesce(bool_and(
        p.epoch = p.conv_epoch AND NOT p.rotation_required
        AND (p.rot_msgs <= 0 OR p.in_epoch < p.rot_msgs)
        AND (p.rot_millis <= 0 OR p.at - p.epoch_started_at < p.rot_millis)
        AND EXISTS (SELECT 1 FROM devices d JOIN members mb ON mb.user_id = d.user_id
            WHERE d.id = p.dev AND d.user_id = p.usr AND d.revoked = FALSE
              AND mb.conversation_id = p.conv AND mb.left_event_id IS NULL)), FALSE) AS ok
    FROM p
), c AS (
    UPDATE event_counter SET last_id = last_id + cardinality($1::bytea[])
    WHERE id = 1 AND (SELECT ok FROM ok) RETURNING last_id - cardinality($1::bytea[]) AS base
), ev AS (
    INSERT INTO events (id, kind, conversation_id, seq, epoch, created_at)
    SELECT c.base + p.ord, 'message', p.conv, p.seq, p.epoch, p.at FROM c, p
), msg AS (
    INSERT INTO messages (conversation_id, seq, sender_device, sender_user, client_id, epoch, envelope, created_at, event_id, expires_at)
    SELECT p.conv, p.seq, p.dev, p.usr, p.cid, p.epoch, p.env, p.at, c.base + p.ord, NULLIF(p.exp, 0) FROM c, p
), conv AS (
    UPDATE conversations SET last_seq = x.seq, messages_in_epoch = x.in_epoch
    FROM (SELECT p.conv, max(p.seq) AS seq, max(p.in_epoch) AS in_epoch FROM p GROUP BY p.conv) x, c
    WHERE conversations.id = x.conv
)
SELECT p.ord, p.seq, c.base FROM c, p`

// sendPostgres is Send on PostgreSQL, of items whose checks have passed.
// planned: the one round trip was tried already (sendPostgresChecked);
// lookup: a client message id of the batch is known to be stored.
func (s *Store) sendPostgres(ctx context.Context, batch []store.Send, planned, lookup bool) ([]store.SendResult, error) {
	if len(batch) == 0 {
		return []store.SendResult{}, nil
	}
	if slices.ContainsFunc(batch, func(m store.Send) bool { return len(m.Blobs) > 0 }) {
		// Messages that share blobs (rare beside text) take the
		// statements of SQLite's path, which lock and reference the
		// blobs.
		return s.sendTx(ctx, batch)
	}
	const attempts = 5
	var err error
	if !planned && !lookup && fastSendable(batch) {
		var res []store.SendResult
		res, err = s.sendPostgresFast(ctx, batch)
		switch {
		case err == nil && res != nil:
			s.fastSends.Add(1)
			return res, nil
		case err == nil: // an item needs planSend
		case errors.Is(err, errLookUp), connLost(err) && ctx.Err() == nil:
			lookup = true
		case s.counterRetired(err):
		case !s.d.retryable(err) || ctx.Err() != nil:
			return nil, wrapErr("send", err)
		}
	}
	for range attempts {
		var res []store.SendResult
		res, err = s.sendPostgresOnce(ctx, batch, lookup)
		if err == nil {
			return res, nil
		}
		if errors.Is(err, errLookUp) {
			lookup = true
		}
		s.counterRetired(err)
		if connLost(err) && ctx.Err() == nil {
			// The batch may have committed before the answer was lost:
			// it runs again with the look-up, which answers what was
			// stored, on a new connection (the pool drops the dead one).
			lookup = true
			if s.Ping(ctx) != nil {
				break // the database is down: 503, not five more failures
			}
			continue
		}
		if !s.d.retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, wrapErr("send", err)
}

// fastSendable reports whether a batch may take the one round trip: no
// client message id appears twice in it (planSend answers the repeats).
func fastSendable(batch []store.Send) bool {
	seen := make(map[msgKey]bool, len(batch))
	for _, m := range batch {
		k := msgKey{m.Sender, m.ClientID}
		if seen[k] {
			return false
		}
		seen[k] = true
	}
	return true
}

// sendPostgresFast writes the batch in one round trip and one implicit
// transaction, if every item is accepted as it stands; it returns nil
// results, having written nothing, when an item needs planSend's
// decision, and errLookUp when a client message id is already stored.
func (s *Store) sendPostgresFast(ctx context.Context, batch []store.Send) ([]store.SendResult, error) {
	n := len(batch)
	lockArgs, fastArgs := pgFastArgs(batch)
	conn, err := s.sends.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var res []store.SendResult
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		b := &pgx.Batch{}
		// No BEGIN: the pipeline is one implicit transaction, committed
		// at its end (or rolled back on an error).
		b.Queue(pgLockConversations, lockArgs...)
		b.Queue(s.pgFastSendQuery(), fastArgs...)
		br := pc.SendBatch(ctx, b)
		err := func() error {
			if _, err := br.Exec(); err != nil {
				return err
			}
			rows, _ := br.Query()
			for rows.Next() {
				var ord, seq, base int64
				if err := rows.Scan(&ord, &seq, &base); err != nil {
					rows.Close()
					return err
				}
				if res == nil {
					res = make([]store.SendResult, n)
				}
				if err := pgFastResult(res, batch, ord, seq, base); err != nil {
					rows.Close()
					return err
				}
			}
			return rows.Err()
		}()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err == nil && pc.PgConn().TxStatus() != 'I' {
			err = errors.Join(errors.New("send: a transaction is left open"), driver.ErrBadConn)
		}
		return err
	})
	if err != nil {
		return nil, pgFastErr(err)
	}
	if err := pgFastComplete(res); err != nil {
		return nil, err
	}
	return res, nil
}

// pgFastArgs are the arguments of pgLockConversations and pgFastSend for
// the batch.
func pgFastArgs(batch []store.Send) (lock, fast []any) {
	n := len(batch)
	convs, devs, users, envs := make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
	cids := make([]string, n)
	epochs, ats, rotMsgs, rotMillis, exps := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, m := range batch {
		convs[i], devs[i], users[i], envs[i], cids[i] = idArg(m.Conversation), idArg(m.Sender), idArg(m.SenderUser), m.Envelope, m.ClientID
		epochs[i], ats[i], rotMsgs[i], rotMillis[i], exps[i] = i64(m.Epoch), m.Now, int64(m.RotateAfterMessages), m.RotateAfterMillis, m.ExpiresAt
	}
	ids := batchConversations(batch)
	idArgs := make([][]byte, len(ids))
	for i, id := range ids {
		idArgs[i] = idArg(id)
	}
	return []any{idArgs}, []any{convs, devs, users, cids, epochs, envs, ats, rotMsgs, rotMillis, exps}
}

// pgFastSendQuery is pgFastSend for the store's event ids.
func (s *Store) pgFastSendQuery() string {
	if s.sequenced.Load() {
		return pgFastSendSeq
	}
	return pgFastSend
}

// pgFastResult records one row of pgFastSend's answer in res.
func pgFastResult(res []store.SendResult, batch []store.Send, ord, seq, base int64) error {
	if ord < 1 || ord > int64(len(batch)) {
		return fmt.Errorf("send: item %d of %d", ord, len(batch))
	}
	res[ord-1] = store.SendResult{Seq: uint64(seq), EventID: base + ord, CreatedAt: batch[ord-1].Now}
	return nil
}

// pgFastComplete checks that pgFastSend answered every item, if any.
func pgFastComplete(res []store.SendResult) error {
	for i := range res {
		if res[i].Seq == 0 {
			return fmt.Errorf("send: no answer for item %d", i)
		}
	}
	return nil
}

// pgFastErr is errLookUp for the unique violation of a client message
// id already stored, and err otherwise.
func pgFastErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "messages_sender_device_client_id_key" {
		return errLookUp
	}
	return err
}

// sendPostgresOnce runs the batch's transaction once, on a connection of
// the pool driven through pgx directly (database/sql has no pipelines).
func (s *Store) sendPostgresOnce(ctx context.Context, batch []store.Send, lookup bool) ([]store.SendResult, error) {
	conn, err := s.sends.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var res []store.SendResult
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		var err error
		res, err = pgSendTx(ctx, pc, batch, lookup, s.sequenced.Load())
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

func pgSendTx(ctx context.Context, pc *pgx.Conn, batch []store.Send, lookup, sequenced bool) ([]store.SendResult, error) {
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

	p, err := planSend(batch, ids, convs, allowed, nil, prev, lookup)
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
	devs, users, cids, envs, exps := make([][]byte, k), make([][]byte, k), make([]string, k), make([][]byte, k), make([]int64, k)
	for i, a := range p.ok {
		m := batch[a.item]
		devs[i], users[i], cids[i], envs[i], exps[i] = idArg(m.Sender), idArg(m.SenderUser), m.ClientID, m.Envelope, m.ExpiresAt
	}
	c := len(p.counters)
	cIDs, cSeqs, cIn, cReq, cReason := make([][]byte, c), make([]int64, c), make([]int64, c), make([]bool, c), make([]string, c)
	for i, cs := range p.counters {
		cIDs[i], cSeqs[i], cIn[i], cReq[i], cReason[i] = idArg(cs.id), i64(cs.lastSeq), cs.inEpoch, cs.required, cs.reason
	}
	if n > eventBlock {
		return nil, fmt.Errorf("send: %d events in one batch, at most %d", n, eventBlock)
	}
	write := pgWriteBatch
	if sequenced {
		write = pgWriteBatchSeq
	}
	b = &pgx.Batch{}
	b.Queue(write, int64(n), kinds, convIDs, seqs, epochs, reasons, ats, devs, users, cids, envs,
		cIDs, cSeqs, cIn, cReq, cReason, exps)
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

// pgSendKeys are the foreign keys of messages that PostgreSQL checks at
// every inserted message and that the send proves already: its statement
// locks the conversation's row and joins the sender's device to its
// account and to the conversation's members, and neither conversations
// nor accounts are ever deleted. Checking them again cost 10–15 % of the
// store's send rate (docs/performance.md, Fifteenth round). The key
// to the sender's device stays: revoked devices are deleted
// (PurgeDevices), and the key's lock is what keeps a purge from deleting
// a device whose send is committing.
var pgSendKeys = []string{"messages_conversation_id_fkey", "messages_sender_user_fkey"}

// dropSendKeys drops pgSendKeys where the database still has them (the
// first migration creates them; SQLite keeps them, where they cost
// little). Dropping a key needs the table's exclusive lock, so it is only
// asked when a key is there, and a node that cannot have the lock within
// half a second leaves the keys to the next open (while the ALTER waits
// for the lock, every send waits behind it, so the wait is short): they
// are correct, only slower. Previous releases' nodes need neither key.
func (s *Store) dropSendKeys(ctx context.Context) error {
	var n int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM pg_constraint
WHERE conrelid = 'messages'::regclass AND contype = 'f' AND conname = ANY($1)`, pgSendKeys).Scan(&n); err != nil {
		return fmt.Errorf("send keys: %w", err)
	}
	if n == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("send keys: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SET LOCAL lock_timeout = '500ms'`); err != nil {
		return fmt.Errorf("send keys: %w", err)
	}
	q := `ALTER TABLE messages DROP CONSTRAINT IF EXISTS ` + strings.Join(pgSendKeys, `, DROP CONSTRAINT IF EXISTS `)
	if _, err := tx.ExecContext(ctx, q); err != nil {
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "55P03" {
			return nil // lock_not_available: the next open drops them
		}
		return fmt.Errorf("send keys: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("send keys: %w", err)
	}
	return nil
}

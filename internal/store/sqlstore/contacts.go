package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Block implements store.Contacts.
func (s *Store) Block(ctx context.Context, user, blocked protocol.UserID, now int64, max int) error {
	return s.write(ctx, "block", func(t *wtx) error {
		if err := t.blockRoom(user, blocked, max); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, idArg(user), idArg(blocked), now)
		return err
	})
}

// blockRoom checks that user and other exist and that user may hold one
// more account on its block list, when it
// holds nothing about other yet: at most max accounts (max > 0), blocked
// or kept with a statement of either kind. An account user holds
// already does not count again. The accounts are counted as the blocks
// plus the kept unblock statements (a signed block is a block with its
// statement), two counts of an index each: counting the union of the
// two lists took 3.5 to 5 times as long at 10,000 (docs/performance.md).
// An account blocked without a statement over a kept unblock of its own,
// which only clients from before statements make, counts twice.
func (t *wtx) blockRoom(user, other protocol.UserID, max int) error {
	if err := t.lockUsers([]protocol.UserID{user, other}, false); err != nil {
		return err
	}
	if max <= 0 {
		return nil
	}
	// Two blocks of the account at once count one after the other.
	if err := t.accountRow(user, true); err != nil {
		return err
	}
	var held int
	if err := t.queryRow(`SELECT (SELECT COUNT(*) FROM blocks WHERE user_id = ? AND blocked_id = ?)
		+ (SELECT COUNT(*) FROM block_statements WHERE user_id = ? AND other_id = ?)`,
		idArg(user), idArg(other), idArg(user), idArg(other)).Scan(&held); err != nil {
		return err
	}
	if held > 0 {
		return nil
	}
	var n int
	if err := t.queryRow(`SELECT (SELECT COUNT(*) FROM blocks WHERE user_id = ?)
		+ (SELECT COUNT(*) FROM block_statements WHERE user_id = ? AND NOT blocked)`, idArg(user), idArg(user)).Scan(&n); err != nil {
		return err
	}
	if n >= max {
		return fmt.Errorf("%d accounts held on the block list: %w", n, store.ErrTooManyBlocks)
	}
	return nil
}

// Unblock implements store.Contacts.
func (s *Store) Unblock(ctx context.Context, user, blocked protocol.UserID) (bool, error) {
	var n int64
	err := s.write(ctx, "unblock", func(t *wtx) error {
		var signed int
		if err := t.queryRow(`SELECT COUNT(*) FROM block_statements WHERE user_id = ? AND other_id = ? AND blocked`, idArg(user), idArg(blocked)).Scan(&signed); err != nil {
			return err
		}
		if signed > 0 {
			return fmt.Errorf("a signed block: %w", store.ErrConflict)
		}
		res, err := t.exec(`DELETE FROM blocks WHERE user_id = ? AND blocked_id = ?`, idArg(user), idArg(blocked))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, err
}

// SetBlock implements store.Contacts.
func (s *Store) SetBlock(ctx context.Context, user, other protocol.UserID, blocked bool, at int64, statement []byte, now int64, max int) error {
	return s.write(ctx, "set block", func(t *wtx) error {
		var heldBlocked bool
		var heldAt int64
		if err := t.blockRoom(user, other, max); err != nil {
			return err
		}
		err := t.queryRow(`SELECT blocked, at FROM block_statements WHERE user_id = ? AND other_id = ?`, idArg(user), idArg(other)).Scan(&heldBlocked, &heldAt)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case at < heldAt || at == heldAt && (heldBlocked || !blocked):
			return fmt.Errorf("a block statement of time %d, held %d: %w", at, heldAt, store.ErrConflict)
		}
		if _, err := t.exec(`INSERT INTO block_statements (user_id, other_id, blocked, at, statement) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (user_id, other_id) DO UPDATE SET blocked = excluded.blocked, at = excluded.at, statement = excluded.statement`,
			idArg(user), idArg(other), blocked, at, statement); err != nil {
			return err
		}
		if blocked {
			_, err = t.exec(`INSERT INTO blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, idArg(user), idArg(other), now)
		} else {
			_, err = t.exec(`DELETE FROM blocks WHERE user_id = ? AND blocked_id = ?`, idArg(user), idArg(other))
		}
		return err
	})
}

// Blocks implements store.Contacts. A blocks row without a block
// statement (made without one, or by a node of the previous release) is
// listed without one.
func (s *Store) Blocks(ctx context.Context, user protocol.UserID) ([]store.Block, error) {
	rows, err := s.query(ctx, `SELECT b.blocked_id, u.username, b.created_at, TRUE, s.statement FROM blocks b
		JOIN users u ON u.id = b.blocked_id
		LEFT JOIN block_statements s ON s.user_id = b.user_id AND s.other_id = b.blocked_id AND s.blocked
		WHERE b.user_id = ?
		UNION ALL
		SELECT s.other_id, u.username, s.at, FALSE, s.statement FROM block_statements s
		JOIN users u ON u.id = s.other_id
		WHERE s.user_id = ? AND NOT s.blocked
		ORDER BY 4 DESC, 3, 1`, idArg(user), idArg(user))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Block
	for rows.Next() {
		var b store.Block
		if err := rows.Scan(scanID(&b.User), &b.Username, &b.CreatedAt, &b.Blocked, &b.Statement); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// BlockedBy implements store.Contacts.
func (s *Store) BlockedBy(ctx context.Context, author protocol.UserID, users []protocol.UserID) ([]protocol.UserID, error) {
	blockers := map[protocol.UserID]bool{}
	for part := range slices.Chunk(users, idsPerStatement) {
		args := []any{idArg(author)}
		for _, u := range part {
			args = append(args, idArg(u))
		}
		rows, err := s.query(ctx, `SELECT user_id FROM blocks WHERE blocked_id = ? AND user_id IN `+placeholders(1, len(part)), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var u protocol.UserID
			if err := rows.Scan(scanID(&u)); err != nil {
				rows.Close()
				return nil, err
			}
			blockers[u] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	var out []protocol.UserID
	for _, u := range users {
		if blockers[u] {
			out = append(out, u)
			delete(blockers, u)
		}
	}
	return out, nil
}

// NewContacts implements store.Contacts. The author's row is locked first,
// so two concurrent calls of one author count one after the other.
func (s *Store) NewContacts(ctx context.Context, author protocol.UserID, users []protocol.UserID, since, now int64, max int) (int, error) {
	var added int
	err := s.write(ctx, "new contacts", func(t *wtx) error {
		added = 0
		if err := t.lockUsers([]protocol.UserID{author}, true); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM new_contacts WHERE user_id = ? AND at < ?`, idArg(author), since); err != nil {
			return err
		}
		known := map[protocol.UserID]bool{author: true}
		// Of users only: the author's contacts and co-members may be many.
		for part := range slices.Chunk(users, idsPerStatement/2) {
			in := placeholders(1, len(part))
			args := []any{idArg(author)}
			for _, u := range part {
				args = append(args, idArg(u))
			}
			args = append(args, args...)
			rows, err := t.query(`SELECT contact_id FROM new_contacts WHERE user_id = ? AND contact_id IN `+in+`
				UNION SELECT m2.user_id FROM members m1
				JOIN members m2 ON m2.conversation_id = m1.conversation_id AND m2.left_event_id IS NULL
				WHERE m1.user_id = ? AND m1.left_event_id IS NULL AND m2.user_id IN `+in, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var u protocol.UserID
				if err := rows.Scan(scanID(&u)); err != nil {
					rows.Close()
					return err
				}
				known[u] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		var fresh []protocol.UserID
		for _, u := range users {
			if !known[u] {
				known[u] = true
				fresh = append(fresh, u)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		var held int
		if err := t.queryRow(`SELECT COUNT(*) FROM new_contacts WHERE user_id = ?`, idArg(author)).Scan(&held); err != nil {
			return err
		}
		if held+len(fresh) > max {
			return fmt.Errorf("%d first contacts held, %d more: %w", held, len(fresh), store.ErrTooManyContacts)
		}
		if err := t.lockUsers(fresh, false); err != nil {
			return err
		}
		for part := range slices.Chunk(fresh, idsPerStatement/3) {
			args := make([]any, 0, 3*len(part))
			for _, u := range part {
				args = append(args, idArg(author), idArg(u), now)
			}
			if _, err := t.exec(`INSERT INTO new_contacts (user_id, contact_id, at) VALUES `+placeholders(len(part), 3), args...); err != nil {
				return err
			}
		}
		added = len(fresh)
		return nil
	})
	return added, err
}

// SetDeviceName implements store.Contacts.
func (s *Store) SetDeviceName(ctx context.Context, user protocol.UserID, device protocol.DeviceID, name string, seq uint64, record []byte) error {
	if seq == 0 || seq > math.MaxInt64 { // the decoder refuses them (§12.5); name_seq is signed
		return fmt.Errorf("device name seq %d: %w", seq, store.ErrInvalid)
	}
	return s.write(ctx, "set device name", func(t *wtx) error {
		var held int64
		err := t.queryRow(`SELECT name_seq FROM devices WHERE id = ? AND user_id = ? AND revoked = FALSE`+t.lockSuffix(), idArg(device), idArg(user)).Scan(&held)
		if err != nil {
			return notFound(err, "device")
		}
		if seq <= uint64(held) {
			return fmt.Errorf("device name seq %d, held %d: %w", seq, held, store.ErrConflict)
		}
		_, err = t.exec(`UPDATE devices SET name = ?, name_seq = ?, name_record = ? WHERE id = ?`, name, int64(seq), record, idArg(device))
		return err
	})
}

// DeviceNames implements store.Contacts.
func (s *Store) DeviceNames(ctx context.Context, user protocol.UserID) (map[protocol.DeviceID][]byte, error) {
	rows, err := s.query(ctx, `SELECT id, name_record FROM devices WHERE user_id = ? AND revoked = FALSE AND name_record IS NOT NULL`, idArg(user))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[protocol.DeviceID][]byte{}
	for rows.Next() {
		var id protocol.DeviceID
		var rec []byte
		if err := rows.Scan(scanID(&id), &rec); err != nil {
			return nil, err
		}
		out[id] = rec
	}
	return out, rows.Err()
}

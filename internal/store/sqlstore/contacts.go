package sqlstore

import (
	"context"
	"fmt"
	"slices"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Block implements store.Contacts.
func (s *Store) Block(ctx context.Context, user, blocked protocol.UserID, now int64) error {
	return s.write(ctx, "block", func(t *wtx) error {
		if err := t.lockUsers([]protocol.UserID{user, blocked}, false); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, idArg(user), idArg(blocked), now)
		return err
	})
}

// Unblock implements store.Contacts.
func (s *Store) Unblock(ctx context.Context, user, blocked protocol.UserID) (bool, error) {
	var n int64
	err := s.write(ctx, "unblock", func(t *wtx) error {
		res, err := t.exec(`DELETE FROM blocks WHERE user_id = ? AND blocked_id = ?`, idArg(user), idArg(blocked))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, err
}

// Blocks implements store.Contacts.
func (s *Store) Blocks(ctx context.Context, user protocol.UserID) ([]store.Block, error) {
	rows, err := s.query(ctx, `SELECT b.blocked_id, u.username, b.created_at FROM blocks b JOIN users u ON u.id = b.blocked_id
		WHERE b.user_id = ? ORDER BY b.created_at, b.blocked_id`, idArg(user))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Block
	for rows.Next() {
		var b store.Block
		if err := rows.Scan(scanID(&b.User), &b.Username, &b.CreatedAt); err != nil {
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

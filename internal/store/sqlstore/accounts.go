package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// CreateUser writes the account, its first device and the device's token.
func (s *Store) CreateUser(ctx context.Context, u store.User, d store.Device, tokenHash []byte) error {
	if d.User != u.ID {
		return fmt.Errorf("sqlstore: create user: %w: device belongs to another user", store.ErrInvalid)
	}
	return s.write(ctx, "create user", func(t *wtx) error {
		var ident []byte
		if u.Identity != nil {
			ident = u.Identity[:]
		}
		// ON CONFLICT DO NOTHING covers the id and the username; no row
		// written means one of them is taken.
		res, err := t.exec(`INSERT INTO users (id, username, password_hash, identity_key, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			idArg(u.ID), u.Username, u.PasswordHash, ident, u.CreatedAt)
		if err != nil {
			return err
		}
		if err := oneRow(res, store.ErrConflict, "username or user id taken"); err != nil {
			return err
		}
		return t.addDevice(d, tokenHash)
	})
}

// AddDevice adds a device and its token to an existing account.
func (s *Store) AddDevice(ctx context.Context, d store.Device, tokenHash []byte, max int) error {
	return s.write(ctx, "add device", func(t *wtx) error {
		// With a cap, two logins at once count one after the other.
		if err := t.accountRow(d.User, max > 0); err != nil {
			return err
		}
		if max > 0 {
			var n int
			if err := t.queryRow(`SELECT COUNT(*) FROM devices WHERE user_id = ? AND revoked = FALSE`, idArg(d.User)).Scan(&n); err != nil {
				return err
			}
			if n >= max {
				return fmt.Errorf("%d devices, at most %d: %w", n, max, store.ErrTooManyDevices)
			}
		}
		if err := t.addDevice(d, tokenHash); err != nil {
			return err
		}
		// The account's other devices are told of the new login.
		others, err := deviceIDs(t.query(`SELECT id FROM devices WHERE user_id = ? AND revoked = FALSE AND id <> ? ORDER BY id`, idArg(d.User), idArg(d.ID)))
		if err != nil {
			return err
		}
		evs := make([]newEvent, len(others))
		for i := range others {
			evs[i] = newEvent{kind: store.EventSessionAdded, device: &others[i], user: &d.User, reason: d.ID.String(), at: d.CreatedAt}
		}
		_, err = t.emit(evs)
		return err
	})
}

// accountRow checks that user's account exists and, with lock, on
// PostgreSQL, locks its row (SQLite has one writer) so that the counts of
// one account's rows against a cap (devices, blocks) are taken one
// transaction after the other. FOR NO KEY UPDATE leaves alone the
// key-share locks of the rows that reference the account: its own sends,
// or another account's block of it, at the same time wait for nothing.
func (t *wtx) accountRow(user protocol.UserID, lock bool) error {
	q := `SELECT 1 FROM users WHERE id = ?`
	if lock && !t.s.d.local {
		q += ` FOR NO KEY UPDATE`
	}
	var one int
	return notFound(t.queryRow(q, idArg(user)).Scan(&one), "user")
}

// PurgeDevices implements store.Store. Every test is one index lookup:
// tokens_device, the primary keys of one_time_keys and
// device_list_entries, messages' (sender_device, client_id),
// session_keys_device, sessions_creator and blobs_device (00017), and
// the events go by events_device.
func (s *Store) PurgeDevices(ctx context.Context, user protocol.UserID) (int, error) {
	var n int
	err := s.write(ctx, "purge devices", func(t *wtx) error {
		// A revoked device's link request can never be answered (its
		// token is gone): it goes first, so that it keeps nothing.
		if _, err := t.exec(`DELETE FROM link_requests WHERE user_id = ? AND device_id IN (SELECT id FROM devices WHERE user_id = ? AND revoked = TRUE)`, idArg(user), idArg(user)); err != nil {
			return err
		}
		gone, err := deviceIDs(t.query(`DELETE FROM devices WHERE user_id = ? AND revoked = TRUE
			AND NOT EXISTS (SELECT 1 FROM tokens x WHERE x.device_id = devices.id)
			AND NOT EXISTS (SELECT 1 FROM one_time_keys x WHERE x.device_id = devices.id)
			AND NOT EXISTS (SELECT 1 FROM device_list_entries x WHERE x.user_id = devices.user_id AND x.device_id = devices.id)
			AND NOT EXISTS (SELECT 1 FROM messages x WHERE x.sender_device = devices.id)
			AND NOT EXISTS (SELECT 1 FROM session_keys x WHERE x.device_id = devices.id)
			AND NOT EXISTS (SELECT 1 FROM sessions x WHERE x.creator = devices.id)
			AND NOT EXISTS (SELECT 1 FROM blobs x WHERE x.device_id = devices.id)
			RETURNING id`, idArg(user)))
		if err != nil {
			return err
		}
		// The events addressed to a device that went can never be read
		// (only the device reads them): they go with it.
		n = len(gone)
		for part := range slices.Chunk(gone, idsPerStatement) {
			args := make([]any, len(part))
			for i, d := range part {
				args[i] = idArg(d)
			}
			if err := t.deleteEvents(`device_id IN `+placeholders(1, len(part)), args...); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// Logins lists an account's active devices with the use of their tokens.
func (s *Store) Logins(ctx context.Context, user protocol.UserID) ([]store.Login, error) {
	if _, err := s.User(ctx, user); err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT `+deviceCols+`, NOT `+listedSQL("d")+`, COALESCE(MAX(t.last_used), 0), COUNT(t.hash) FROM devices d LEFT JOIN tokens t ON t.device_id = d.id
		WHERE d.user_id = ? AND d.revoked = FALSE GROUP BY d.id, d.user_id, d.name, d.signed_prekey, d.last_resort, d.created_at, d.revoked ORDER BY d.created_at, d.id`, idArg(user))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: logins: %w", err)
	}
	out, err := collect(rows, func(r scanner) (store.Login, error) {
		var l store.Login
		d := &l.Device
		err := r.Scan(scanID(&d.ID), scanID(&d.User), &d.Name, &d.SignedPreKey, &d.LastResort, &d.CreatedAt, &d.Revoked, &d.Unlisted, &l.LastUsed, &l.Tokens)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: logins: %w", err)
	}
	return out, nil
}

// TouchToken records a token's use.
//
// It changes one token's last use and nothing else the memo holds, so it
// forgets that token's answer only: every device touches its token about
// once an hour, and forgetting the whole memo (the writer's state and the
// event tail included) each time would cost the send and live paths.
func (s *Store) TouchToken(ctx context.Context, tokenHash []byte, now int64) error {
	return s.writeTx(ctx, "touch token", false, func(t *wtx) error {
		res, err := t.exec(`UPDATE tokens SET last_used = ? WHERE hash = ?`, now, tokenHash)
		if err != nil {
			return err
		}
		if m := s.memo; m != nil {
			t.afterCommit(func() { m.forgetDevice(tokenHash) })
		}
		if r := s.pgr; r != nil {
			t.afterCommit(func() { r.forgetDevice(tokenHash) })
		}
		return oneRow(res, store.ErrNotFound, "token")
	})
}

// SetPassword replaces an account's password hash.
func (s *Store) SetPassword(ctx context.Context, user protocol.UserID, passwordHash string) error {
	return s.write(ctx, "set password", func(t *wtx) error {
		res, err := t.exec(`UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, idArg(user))
		if err != nil {
			return err
		}
		return oneRow(res, store.ErrNotFound, "user")
	})
}

func (t *wtx) addDevice(d store.Device, tokenHash []byte) error {
	if len(tokenHash) == 0 {
		return fmt.Errorf("%w: empty token hash", store.ErrInvalid)
	}
	res, err := t.exec(`INSERT INTO devices (id, user_id, name, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		idArg(d.ID), idArg(d.User), d.Name, d.CreatedAt)
	if err != nil {
		return err
	}
	if err := oneRow(res, store.ErrConflict, "device id taken"); err != nil {
		return err
	}
	res, err = t.exec(`INSERT INTO tokens (hash, device_id, last_used) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, tokenHash, idArg(d.ID), d.CreatedAt)
	if err != nil {
		return err
	}
	return oneRow(res, store.ErrConflict, "token taken")
}

// oneRow turns "no row written" into err.
func oneRow(res sql.Result, err error, what string) error {
	n, e := res.RowsAffected()
	if e != nil {
		return e
	}
	if n != 1 {
		return fmt.Errorf("%w: %s", err, what)
	}
	return nil
}

// notFound maps sql.ErrNoRows to store.ErrNotFound.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return err
}

const userCols = `id, username, password_hash, identity_key, created_at`

func scanUser(row *sql.Row) (store.User, error) {
	var u store.User
	var ident []byte
	if err := row.Scan(scanID(&u.ID), &u.Username, &u.PasswordHash, &ident, &u.CreatedAt); err != nil {
		return u, err
	}
	if ident != nil {
		// A key stored before keys of small order and non-canonical
		// encodings were refused (protocol.md §2.3) is not a key: the
		// account is served as having none (no one seals to it or verifies
		// with it) until an identity reset sets a valid one.
		if k, err := protocol.ParseIdentityKey(ident); err == nil {
			u.Identity = &k
		}
	}
	return u, nil
}

// UserByName returns the account with that canonical username.
func (s *Store) UserByName(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`, username))
	if err != nil {
		return u, fmt.Errorf("sqlstore: user by name: %w", notFound(err, "user"))
	}
	return u, nil
}

// User returns an account by id.
func (s *Store) User(ctx context.Context, id protocol.UserID) (store.User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, idArg(id)))
	if err != nil {
		return u, fmt.Errorf("sqlstore: user: %w", notFound(err, "user"))
	}
	return u, nil
}

const deviceCols = `d.id, d.user_id, d.name, d.signed_prekey, d.last_resort, d.created_at, d.revoked`

type scanner interface{ Scan(dest ...any) error }

// Devices lists an account's active devices, oldest first.
func (s *Store) Devices(ctx context.Context, user protocol.UserID) ([]store.Device, error) {
	if _, err := s.User(ctx, user); err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT `+deviceCols+`, NOT `+listedSQL("d")+` FROM devices d WHERE d.user_id = ? AND d.revoked = FALSE ORDER BY d.created_at, d.id`, idArg(user))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: devices: %w", err)
	}
	out, err := collect(rows, func(r scanner) (store.Device, error) {
		var d store.Device
		err := r.Scan(scanID(&d.ID), scanID(&d.User), &d.Name, &d.SignedPreKey, &d.LastResort, &d.CreatedAt, &d.Revoked, &d.Unlisted)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: devices: %w", err)
	}
	return out, nil
}

// DeviceByToken resolves a token hash to its active device.
// With a memo, the answer is remembered until the next write that may
// change it (a logout, a revocation, a bundle); the Device's byte slices
// are then shared between callers, who must not modify them.
func (s *Store) DeviceByToken(ctx context.Context, tokenHash []byte) (store.Device, error) {
	var gen uint64
	if m := s.memo; m != nil {
		if d, ok := m.device(tokenHash); ok {
			return d, nil
		}
		gen = m.gen.Load()
	}
	var at time.Time
	if r := s.pgr; r != nil {
		if d, ok := r.device(tokenHash); ok {
			return d, nil
		}
		gen, at = r.gen.Load(), time.Now()
	}
	var d store.Device
	err := s.queryRow(ctx, `SELECT `+deviceCols+`, t.last_used FROM tokens t JOIN devices d ON d.id = t.device_id WHERE t.hash = ? AND d.revoked = FALSE`, tokenHash).
		Scan(scanID(&d.ID), scanID(&d.User), &d.Name, &d.SignedPreKey, &d.LastResort, &d.CreatedAt, &d.Revoked, &d.TokenUsedAt)
	if err != nil {
		return d, fmt.Errorf("sqlstore: device by token: %w", notFound(err, "token"))
	}
	if m := s.memo; m != nil {
		m.putDevice(tokenHash, gen, d)
	}
	s.pgr.putDevice(tokenHash, gen, at, d)
	return d, nil
}

// DeleteToken deletes one token.
func (s *Store) DeleteToken(ctx context.Context, tokenHash []byte) error {
	return s.write(ctx, "delete token", func(t *wtx) error {
		res, err := t.exec(`DELETE FROM tokens WHERE hash = ?`, tokenHash)
		if err != nil {
			return err
		}
		return oneRow(res, store.ErrNotFound, "token")
	})
}

// PutBundle stores a device's bundle and sets or checks the account's
// identity key in the same transaction; see store.Store.
//
// Locks: the user row first (so two devices uploading different identities
// at once are serialized and the second sees the first's key), then the
// device rows, then the shared conversations in id order, then the counter.
func (s *Store) PutBundle(ctx context.Context, b store.BundleUpload) error {
	if len(b.SignedPreKey) == 0 || len(b.LastResort) == 0 {
		return fmt.Errorf("sqlstore: put bundle: %w: signed pre-key and last-resort key are required", store.ErrInvalid)
	}
	if b.Identity == (protocol.IdentityKey{}) {
		return fmt.Errorf("sqlstore: put bundle: %w: zero identity key", store.ErrInvalid)
	}
	return s.write(ctx, "put bundle", func(t *wtx) error {
		var cur []byte
		if err := t.queryRow(`SELECT identity_key FROM users WHERE id = ?`+t.lockSuffix(), idArg(b.User)).Scan(&cur); err != nil {
			return notFound(err, "user")
		}
		if err := t.step("user"); err != nil {
			return err
		}
		var oldSigned, oldLastResort []byte
		if err := t.queryRow(`SELECT signed_prekey, last_resort FROM devices WHERE id = ? AND user_id = ? AND revoked = FALSE`+t.lockSuffix(),
			idArg(b.Device), idArg(b.User)).Scan(&oldSigned, &oldLastResort); err != nil {
			return notFound(err, "device")
		}
		first := oldSigned == nil
		// A device that was dormant (protocol.md §5.3) was left out of the
		// epochs made meanwhile: with a new bundle it is back, as a new
		// device would be.
		woke := !first && dormant(oldSigned, oldLastResort, b.Now)
		if err := t.step("device"); err != nil {
			return err
		}

		changed := false // the account had another key, replaced by a reset
		switch {
		case cur == nil:
		case bytes.Equal(cur, b.Identity[:]):
		case !b.Reset:
			return store.ErrIdentityMismatch
		default:
			changed = true
		}
		if cur == nil || changed {
			if _, err := t.exec(`UPDATE users SET identity_key = ? WHERE id = ?`, b.Identity[:], idArg(b.User)); err != nil {
				return err
			}
		}
		if err := t.step("identity"); err != nil {
			return err
		}

		revoked := 0
		if b.Reset {
			var err error
			if revoked, err = t.revokeOthers(b.User, b.Device); err != nil {
				return err
			}
			// The account's device list was signed by the key a reset
			// replaces; the new key publishes a new one.
			if _, err := t.exec(`DELETE FROM device_list_entries WHERE user_id = ?`, idArg(b.User)); err != nil {
				return err
			}
			if _, err := t.exec(`DELETE FROM device_lists WHERE user_id = ?`, idArg(b.User)); err != nil {
				return err
			}
			if err := t.step("reset"); err != nil {
				return err
			}
		}

		q := `UPDATE devices SET signed_prekey = ?, last_resort = ? WHERE id = ?`
		if len(b.OneTime) > 0 {
			q = `UPDATE devices SET signed_prekey = ?, last_resort = ?, prekeys_low = FALSE WHERE id = ?`
		}
		if _, err := t.exec(q, b.SignedPreKey, b.LastResort, idArg(b.Device)); err != nil {
			return err
		}
		if err := t.step("bundle"); err != nil {
			return err
		}
		if changed {
			// So were the account's block statements (protocol.md §16.2);
			// the blocks stay enforced until the device signs them again.
			if _, err := t.exec(`DELETE FROM block_statements WHERE user_id = ?`, idArg(b.User)); err != nil {
				return err
			}
			// This device's one-time keys were signed by the key the reset
			// replaces: served, they would no longer verify.
			if _, err := t.exec(`DELETE FROM one_time_keys WHERE device_id = ?`, idArg(b.Device)); err != nil {
				return err
			}
			if _, err := t.exec(`UPDATE devices SET one_time_count = 0 WHERE id = ?`, idArg(b.Device)); err != nil {
				return err
			}
		}
		if _, err := t.addOneTime(b.Device, b.OneTime, true, b.MaxOneTime); err != nil {
			return err
		}
		if err := t.step("one_time_keys"); err != nil {
			return err
		}

		devicesChanged := first || revoked > 0 || woke
		var evs []newEvent
		if devicesChanged || changed {
			// A new identity key needs a new epoch in every shared
			// conversation, even when no device changed.
			reason := "device"
			if changed {
				reason = "identity"
			}
			rot, err := t.markSharedConversations(b.User, reason, b.Now)
			if err != nil {
				return err
			}
			evs = append(evs, rot...)
		}
		if devicesChanged || changed {
			recipients, err := t.contactDevices(b.User, b.Device)
			if err != nil {
				return err
			}
			for _, d := range recipients {
				if changed {
					evs = append(evs, newEvent{kind: store.EventIdentityChanged, device: devPtr(d), user: userPtr(b.User), at: b.Now})
				}
				if devicesChanged {
					evs = append(evs, newEvent{kind: store.EventDevice, device: devPtr(d), user: userPtr(b.User), at: b.Now})
				}
			}
		}
		if _, err := t.emit(evs); err != nil {
			return err
		}
		return t.step("events")
	})
}

// revokeOthers revokes every active device of user but keep, with their
// tokens and one-time keys, and returns how many it revoked.
func (t *wtx) revokeOthers(user protocol.UserID, keep protocol.DeviceID) (int, error) {
	res, err := t.exec(`UPDATE devices SET revoked = TRUE WHERE user_id = ? AND id <> ? AND revoked = FALSE`, idArg(user), idArg(keep))
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if _, err := t.exec(`DELETE FROM tokens WHERE device_id IN (SELECT id FROM devices WHERE user_id = ? AND id <> ?)`, idArg(user), idArg(keep)); err != nil {
		return 0, err
	}
	if _, err := t.exec(`DELETE FROM one_time_keys WHERE device_id IN (SELECT id FROM devices WHERE user_id = ? AND id <> ?)`, idArg(user), idArg(keep)); err != nil {
		return 0, err
	}
	if _, err := t.exec(`UPDATE devices SET one_time_count = 0 WHERE user_id = ? AND id <> ? AND one_time_count <> 0`, idArg(user), idArg(keep)); err != nil {
		return 0, err
	}
	return int(n), nil
}

// markSharedConversations marks every conversation user is a member of
// rotation-required for reason, locking them in id order, and returns an
// EventRotation for each whose state changed.
func (t *wtx) markSharedConversations(user protocol.UserID, reason string, now int64) ([]newEvent, error) {
	rows, err := t.query(`SELECT c.id, c.epoch, c.rotation_required, c.rotation_reason FROM conversations c
		WHERE c.id IN (SELECT conversation_id FROM members WHERE user_id = ? AND left_event_id IS NULL)
		ORDER BY c.id`+t.lockSuffix(), idArg(user))
	if err != nil {
		return nil, err
	}
	type conv struct {
		id       protocol.ConversationID
		epoch    uint64
		required bool
		reason   string
	}
	var convs []conv
	for rows.Next() {
		var c conv
		if err := rows.Scan(scanID(&c.id), &c.epoch, &c.required, &c.reason); err != nil {
			rows.Close()
			return nil, err
		}
		convs = append(convs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var evs []newEvent
	for _, c := range convs {
		if c.required && c.reason == reason {
			continue
		}
		if _, err := t.exec(`UPDATE conversations SET rotation_required = TRUE, rotation_reason = ? WHERE id = ?`, reason, idArg(c.id)); err != nil {
			return nil, err
		}
		evs = append(evs, newEvent{kind: store.EventRotation, conv: convPtr(c.id), epoch: c.epoch, reason: reason, at: now})
	}
	return evs, nil
}

// contactDevices lists, in id order, the active devices of every user that
// shares a current conversation with user, and of user itself, except
// skip.
func (t *wtx) contactDevices(user protocol.UserID, skip protocol.DeviceID) ([]protocol.DeviceID, error) {
	return deviceIDs(t.query(`SELECT d.id FROM devices d
		WHERE d.revoked = FALSE AND d.id <> ? AND (d.user_id = ? OR d.user_id IN (
			SELECT m2.user_id FROM members m1
			JOIN members m2 ON m2.conversation_id = m1.conversation_id AND m2.left_event_id IS NULL
			WHERE m1.user_id = ? AND m1.left_event_id IS NULL))
		ORDER BY d.id`, idArg(skip), idArg(user), idArg(user)))
}

// putOneTime writes one-time keys of a device. With replace, a key whose
// id exists replaces it; without, any existing id is ErrConflict.
func (t *wtx) putOneTime(dev protocol.DeviceID, keys []store.PreKeyRow, replace bool) error {
	for part := range slices.Chunk(keys, rowsPerStatement) {
		args := make([]any, 0, 3*len(part))
		for _, k := range part {
			if len(k.Encoded) == 0 {
				return fmt.Errorf("%w: empty one-time key %d", store.ErrInvalid, k.ID)
			}
			args = append(args, idArg(dev), int64(k.ID), k.Encoded)
		}
		q := `INSERT INTO one_time_keys (device_id, key_id, encoded) VALUES ` + placeholders(len(part), 3)
		if replace {
			q += ` ON CONFLICT (device_id, key_id) DO UPDATE SET encoded = excluded.encoded`
		} else {
			q += ` ON CONFLICT DO NOTHING`
		}
		res, err := t.exec(q, args...)
		if err != nil {
			return err
		}
		if !replace {
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n != int64(len(part)) {
				return fmt.Errorf("%w: one-time key id already present", store.ErrConflict)
			}
		}
	}
	return nil
}

// addOneTime stores one-time keys of a device whose row the transaction
// has locked, keeps its count (devices.one_time_count) and returns it.
// With max > 0 it refuses (ErrTooManyKeys) keys that would take the count
// past max; with replace, ids the device holds already are replaced and
// not counted again.
func (t *wtx) addOneTime(dev protocol.DeviceID, keys []store.PreKeyRow, replace bool, max int) (int, error) {
	var have int
	if err := t.queryRow(`SELECT one_time_count FROM devices WHERE id = ?`, idArg(dev)).Scan(&have); err != nil {
		return 0, notFound(err, "device")
	}
	if len(keys) == 0 {
		return have, nil
	}
	added := len(keys)
	if replace {
		// Ids held already: each an index lookup, at most one upload's worth.
		for part := range slices.Chunk(keys, rowsPerStatement) {
			args := []any{idArg(dev)}
			for _, k := range part {
				args = append(args, int64(k.ID))
			}
			var held int
			if err := t.queryRow(`SELECT COUNT(*) FROM one_time_keys WHERE device_id = ? AND key_id IN `+placeholders(1, len(part)), args...).Scan(&held); err != nil {
				return 0, err
			}
			added -= held
		}
	}
	if max > 0 && have+added > max {
		return 0, fmt.Errorf("%w: the device holds %d, the upload adds %d, at most %d", store.ErrTooManyKeys, have, added, max)
	}
	if err := t.putOneTime(dev, keys, replace); err != nil {
		return 0, err
	}
	if _, err := t.exec(`UPDATE devices SET one_time_count = ? WHERE id = ?`, have+added, idArg(dev)); err != nil {
		return 0, err
	}
	return have + added, nil
}

// AddOneTimeKeys adds one-time keys to an active device and returns its
// count. The device row is locked first: it is the mutex of its keys.
func (s *Store) AddOneTimeKeys(ctx context.Context, device protocol.DeviceID, keys []store.PreKeyRow, max int) (int, error) {
	var n int
	err := s.write(ctx, "add one-time keys", func(t *wtx) error {
		var one int
		if err := t.queryRow(`SELECT 1 FROM devices WHERE id = ? AND revoked = FALSE`+t.lockSuffix(), idArg(device)).Scan(&one); err != nil {
			return notFound(err, "device")
		}
		var err error
		if n, err = t.addOneTime(device, keys, false, max); err != nil {
			return err
		}
		if len(keys) > 0 {
			if _, err := t.exec(`UPDATE devices SET prekeys_low = FALSE WHERE id = ?`, idArg(device)); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// CountOneTimeKeys returns how many one-time keys a device has: its kept
// count, one row read.
func (s *Store) CountOneTimeKeys(ctx context.Context, device protocol.DeviceID) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT one_time_count FROM devices WHERE id = ?`, idArg(device)).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlstore: count one-time keys: %w", err)
	}
	return n, nil
}

// Contacts returns user and the users sharing a current conversation
// with it. It reads from the read pool: the writer is not held.
func (s *Store) Contacts(ctx context.Context, user protocol.UserID) ([]protocol.UserID, error) {
	rows, err := s.query(ctx, `SELECT DISTINCT m2.user_id FROM members m1
		JOIN members m2 ON m2.conversation_id = m1.conversation_id AND m2.left_event_id IS NULL
		WHERE m1.user_id = ? AND m1.left_event_id IS NULL`, idArg(user))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: contacts: %w", err)
	}
	defer rows.Close()
	out := []protocol.UserID{user}
	for rows.Next() {
		var u protocol.UserID
		if err := rows.Scan(scanID(&u)); err != nil {
			return nil, fmt.Errorf("sqlstore: contacts: %w", err)
		}
		if u != user {
			out = append(out, u)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: contacts: %w", err)
	}
	return out, nil
}

// Claim takes one one-time key of each device. Each device row is locked
// (in id order) before its key is taken, so claims of one device run one
// at a time on both databases: the smallest remaining key id is deleted
// with RETURNING, and no two claimers can get the same key.
func (s *Store) Claim(ctx context.Context, devices []protocol.DeviceID, lowWater int, now int64) ([]store.Claimed, error) {
	return s.ClaimBundles(ctx, devices, nil, lowWater, now)
}

// ClaimBundles is Claim with the devices of signedOnly served without a
// one-time key. The remaining count comes from devices.one_time_count,
// read with the locked row: nothing is counted.
func (s *Store) ClaimBundles(ctx context.Context, devices []protocol.DeviceID, signedOnly map[protocol.DeviceID]bool, lowWater int, now int64) ([]store.Claimed, error) {
	order := make([]int, len(devices))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return bytes.Compare(devices[a][:], devices[b][:]) })
	var out []store.Claimed
	err := s.write(ctx, "claim", func(t *wtx) error {
		out = make([]store.Claimed, len(devices))
		var evs []newEvent
		for _, i := range order {
			dev := devices[i]
			c := store.Claimed{Device: dev}
			var low bool
			if err := t.queryRow(`SELECT signed_prekey, last_resort, prekeys_low, one_time_count FROM devices WHERE id = ? AND revoked = FALSE AND signed_prekey IS NOT NULL AND `+
				listedSQL("devices")+t.lockSuffix(),
				idArg(dev)).Scan(&c.SignedPreKey, &c.LastResort, &low, &c.Remaining); err != nil {
				return notFound(err, "device "+dev.String())
			}
			if !signedOnly[dev] && c.Remaining > 0 {
				var k store.PreKeyRow
				var id int64
				err := t.queryRow(`DELETE FROM one_time_keys WHERE device_id = ? AND key_id = (SELECT MIN(key_id) FROM one_time_keys WHERE device_id = ?) RETURNING key_id, encoded`,
					idArg(dev), idArg(dev)).Scan(&id, &k.Encoded)
				switch {
				case err == nil:
					k.ID = uint32(id)
					c.OneTime = &k
					c.Remaining--
				case errors.Is(err, sql.ErrNoRows):
					c.Remaining = 0 // a count that drifted: the keys are the truth
				default:
					return err
				}
				if _, err := t.exec(`UPDATE devices SET one_time_count = ? WHERE id = ?`, c.Remaining, idArg(dev)); err != nil {
					return err
				}
			}
			if c.Remaining < lowWater && !low {
				if _, err := t.exec(`UPDATE devices SET prekeys_low = TRUE WHERE id = ?`, idArg(dev)); err != nil {
					return err
				}
				evs = append(evs, newEvent{kind: store.EventPreKeysLow, device: devPtr(dev), at: now})
			}
			out[i] = c
		}
		_, err := t.emit(evs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// dormant reports whether a device with these stored pre-keys is dormant
// at now (Unix ms) by the rule of protocol.md §5.3. Stored keys were
// verified when uploaded; bytes that are not a pre-key encoding never make
// a device dormant.
func dormant(signed, lastResort []byte, now int64) bool {
	_, sc, err := protocol.PreKeyCreated(signed)
	if err != nil {
		return false
	}
	_, lc, err := protocol.PreKeyCreated(lastResort)
	if err != nil {
		return false
	}
	return protocol.Dormant(sc, lc, now/1000)
}

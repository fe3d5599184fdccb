package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// listedSQL is the condition, on a devices row named alias, that its
// account's device list names it or that the account has no list: the
// devices sealers are served and new epochs must cover (protocol.md §12).
func listedSQL(alias string) string {
	return `(NOT EXISTS (SELECT 1 FROM device_lists l WHERE l.user_id = ` + alias + `.user_id) OR EXISTS (SELECT 1 FROM device_list_entries e WHERE e.user_id = ` +
		alias + `.user_id AND e.device_id = ` + alias + `.id))`
}

// DeviceList returns an account's latest device list.
func (s *Store) DeviceList(ctx context.Context, user protocol.UserID) (store.DeviceListRow, error) {
	var r store.DeviceListRow
	if err := s.queryRow(ctx, `SELECT seq, encoded FROM device_lists WHERE user_id = ?`, idArg(user)).Scan(&r.Seq, &r.Encoded); err != nil {
		return r, fmt.Errorf("sqlstore: device list: %w", notFound(err, "device list"))
	}
	return r, nil
}

// PutDeviceList stores a device list and revokes the devices it removes;
// see store.Store.
//
// Locks: the user row first, as PutBundle does, so that a list and a
// bundle (or an identity reset) of one account are serialized.
func (s *Store) PutDeviceList(ctx context.Context, u store.DeviceListUpdate) ([]protocol.DeviceID, error) {
	if len(u.Encoded) == 0 || u.Seq <= u.PrevSeq {
		return nil, fmt.Errorf("sqlstore: put device list: %w: empty list or seq %d not above %d", store.ErrInvalid, u.Seq, u.PrevSeq)
	}
	devices := protocol.SortDevices(u.Devices)
	var revoked []protocol.DeviceID
	err := s.write(ctx, "put device list", func(t *wtx) error {
		revoked = nil
		if err := t.checkAccountKey(u.User, u.Identity); err != nil {
			return err
		}
		var cur uint64
		err := t.queryRow(`SELECT seq FROM device_lists WHERE user_id = ?`, idArg(u.User)).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if cur != u.PrevSeq {
			return fmt.Errorf("%w: stored list %d, update made against %d", store.ErrStaleDeviceList, cur, u.PrevSeq)
		}
		owned, err := deviceIDs(t.query(`SELECT id FROM devices WHERE user_id = ?`, idArg(u.User)))
		if err != nil {
			return err
		}
		for _, d := range append(slices.Clone(devices), u.Revoke...) {
			if !slices.Contains(owned, d) {
				return fmt.Errorf("device %s of the list: %w", d, store.ErrNotFound)
			}
		}
		before, err := t.servedDevices(u.User)
		if err != nil {
			return err
		}
		prevListed, err := deviceIDs(t.query(`SELECT device_id FROM device_list_entries WHERE user_id = ?`, idArg(u.User)))
		if err != nil {
			return err
		}
		drop := slices.Clone(u.Revoke)
		for _, d := range prevListed {
			if !slices.Contains(devices, d) {
				drop = append(drop, d)
			}
		}
		for _, d := range protocol.SortDevices(drop) {
			ok, err := t.revoke(d)
			if err != nil {
				return err
			}
			if ok {
				revoked = append(revoked, d)
			}
		}
		if err := t.step("revoke"); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM device_list_entries WHERE user_id = ?`, idArg(u.User)); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM device_lists WHERE user_id = ?`, idArg(u.User)); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO device_lists (user_id, seq, encoded, updated_at) VALUES (?, ?, ?, ?)`,
			idArg(u.User), i64(u.Seq), u.Encoded, u.Now); err != nil {
			return err
		}
		for part := range slices.Chunk(devices, rowsPerStatement) {
			args := make([]any, 0, 2*len(part))
			for _, d := range part {
				args = append(args, idArg(u.User), idArg(d))
			}
			if _, err := t.exec(`INSERT INTO device_list_entries (user_id, device_id) VALUES `+placeholders(len(part), 2), args...); err != nil {
				return err
			}
		}
		if err := t.step("list"); err != nil {
			return err
		}
		return t.servedChanged(u.User, before, u.Now)
	})
	if err != nil {
		return nil, err
	}
	return revoked, nil
}

// RevokeDevice revokes one active device of user; see store.Store.
func (s *Store) RevokeDevice(ctx context.Context, user protocol.UserID, device protocol.DeviceID, now int64) error {
	return s.write(ctx, "revoke device", func(t *wtx) error {
		var one int
		if err := t.queryRow(`SELECT 1 FROM users WHERE id = ?`+t.lockSuffix(), idArg(user)).Scan(&one); err != nil {
			return notFound(err, "user")
		}
		var owner protocol.UserID
		if err := t.queryRow(`SELECT user_id FROM devices WHERE id = ? AND revoked = FALSE`, idArg(device)).Scan(scanID(&owner)); err != nil {
			return notFound(err, "device")
		}
		if owner != user {
			return fmt.Errorf("device: %w", store.ErrNotFound)
		}
		before, err := t.servedDevices(user)
		if err != nil {
			return err
		}
		if _, err := t.revoke(device); err != nil {
			return err
		}
		return t.servedChanged(user, before, now)
	})
}

// checkAccountKey locks the user row and checks that key is the account's
// identity key.
func (t *wtx) checkAccountKey(user protocol.UserID, key protocol.IdentityKey) error {
	var cur []byte
	if err := t.queryRow(`SELECT identity_key FROM users WHERE id = ?`+t.lockSuffix(), idArg(user)).Scan(&cur); err != nil {
		return notFound(err, "user")
	}
	if !bytes.Equal(cur, key[:]) {
		return store.ErrIdentityMismatch
	}
	return nil
}

// revoke marks a device revoked and deletes its tokens, bundle and
// one-time keys. It reports whether the device was active.
func (t *wtx) revoke(d protocol.DeviceID) (bool, error) {
	res, err := t.exec(`UPDATE devices SET revoked = TRUE, signed_prekey = NULL, last_resort = NULL, one_time_count = 0 WHERE id = ? AND revoked = FALSE`, idArg(d))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if _, err := t.exec(`DELETE FROM tokens WHERE device_id = ?`, idArg(d)); err != nil {
		return false, err
	}
	if _, err := t.exec(`DELETE FROM one_time_keys WHERE device_id = ?`, idArg(d)); err != nil {
		return false, err
	}
	return n == 1, nil
}

// servedDevices lists, in id order, the devices of user that sealers are
// served: active, with a bundle, and named by the account's list if any.
func (t *wtx) servedDevices(user protocol.UserID) ([]protocol.DeviceID, error) {
	return deviceIDs(t.query(`SELECT d.id FROM devices d WHERE d.user_id = ? AND d.revoked = FALSE AND d.signed_prekey IS NOT NULL AND `+
		listedSQL("d")+` ORDER BY d.id`, idArg(user)))
}

// servedChanged compares the devices of user served now with before and,
// if they differ, marks the account's shared conversations
// rotation-required (reason "device") and emits EventDevice to its
// contacts and its other devices.
func (t *wtx) servedChanged(user protocol.UserID, before []protocol.DeviceID, now int64) error {
	after, err := t.servedDevices(user)
	if err != nil {
		return err
	}
	if slices.Equal(before, after) {
		return nil
	}
	evs, err := t.markSharedConversations(user, "device", now)
	if err != nil {
		return err
	}
	recipients, err := t.contactDevices(user, protocol.DeviceID{})
	if err != nil {
		return err
	}
	for _, d := range recipients {
		evs = append(evs, newEvent{kind: store.EventDevice, device: devPtr(d), user: userPtr(user), at: now})
	}
	if _, err := t.emit(evs); err != nil {
		return err
	}
	return t.step("events")
}

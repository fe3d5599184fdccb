package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// PutLinkRequest implements store.Links.
func (s *Store) PutLinkRequest(ctx context.Context, r store.LinkRequest) error {
	return s.write(ctx, "put link request", func(t *wtx) error {
		var hasBundle, revoked bool
		var owner []byte
		err := t.queryRow(`SELECT user_id, signed_prekey IS NOT NULL, revoked FROM devices WHERE id = ?`, idArg(r.Device)).Scan(&owner, &hasBundle, &revoked)
		if err != nil {
			return notFound(err, "device")
		}
		if hasBundle || revoked || string(owner) != string(r.User[:]) {
			return store.ErrNotFound
		}
		_, err = t.exec(`DELETE FROM link_requests WHERE device_id = ?`, idArg(r.Device))
		if err != nil {
			return err
		}
		_, err = t.exec(`INSERT INTO link_requests (device_id, user_id, public_key, tag, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			idArg(r.Device), idArg(r.User), r.PublicKey, r.Tag, r.CreatedAt, r.ExpiresAt)
		return err
	})
}

// LinkRequests implements store.Links.
func (s *Store) LinkRequests(ctx context.Context, user protocol.UserID, now int64) ([]store.LinkRequest, error) {
	rows, err := s.query(ctx, `SELECT l.device_id, d.name, l.public_key, l.tag, l.created_at, l.expires_at FROM link_requests l JOIN devices d ON d.id = l.device_id
		WHERE l.user_id = ? AND l.sealed IS NULL AND l.expires_at > ? AND NOT d.revoked ORDER BY l.created_at DESC`, idArg(user), now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.LinkRequest
	for rows.Next() {
		r := store.LinkRequest{User: user}
		if err := rows.Scan(scanID(&r.Device), &r.Name, &r.PublicKey, &r.Tag, &r.CreatedAt, &r.ExpiresAt); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ApproveLink implements store.Links.
func (s *Store) ApproveLink(ctx context.Context, user protocol.UserID, device protocol.DeviceID, sealed []byte, now int64) error {
	return s.write(ctx, "approve link", func(t *wtx) error {
		var expires int64
		err := t.queryRow(`SELECT expires_at FROM link_requests WHERE device_id = ? AND user_id = ? AND sealed IS NULL`+t.lockSuffix(), idArg(device), idArg(user)).Scan(&expires)
		if err != nil {
			return notFound(err, "pending link request")
		}
		if expires <= now {
			return store.ErrLinkExpired
		}
		res, err := t.exec(`UPDATE link_requests SET sealed = ? WHERE device_id = ? AND user_id = ? AND sealed IS NULL AND expires_at > ?`, sealed, idArg(device), idArg(user), now)
		if err != nil {
			return err
		}
		return oneRow(res, store.ErrNotFound, "no pending link request")
	})
}

// LinkRequest implements store.Links.
func (s *Store) LinkRequest(ctx context.Context, device protocol.DeviceID) (store.LinkRequest, error) {
	r := store.LinkRequest{Device: device}
	err := s.queryRow(ctx, `SELECT user_id, public_key, tag, sealed, created_at, expires_at FROM link_requests WHERE device_id = ?`, idArg(device)).
		Scan(scanID(&r.User), &r.PublicKey, &r.Tag, &r.Sealed, &r.CreatedAt, &r.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return r, store.ErrNotFound
	}
	return r, err
}

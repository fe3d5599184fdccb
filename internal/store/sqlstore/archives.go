package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

const archiveCols = `id, user_id, kind, size, created_at`

func scanArchive(r scanner) (store.Archive, error) {
	var a store.Archive
	err := r.Scan(&a.ID, scanID(&a.User), &a.Kind, &a.Size, &a.CreatedAt)
	return a, err
}

// PutArchive implements store.Archives.
func (s *Store) PutArchive(ctx context.Context, a store.Archive, keep int) ([]string, error) {
	var dropped []string
	err := s.write(ctx, "put archive", func(t *wtx) error {
		dropped = nil
		var one int
		if err := t.queryRow(`SELECT 1 FROM users WHERE id = ?`, idArg(a.User)).Scan(&one); err != nil {
			return notFound(err, "account")
		}
		res, err := t.exec(`INSERT INTO archives (id, user_id, kind, size, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			a.ID, idArg(a.User), a.Kind, a.Size, a.CreatedAt)
		if err != nil {
			return err
		}
		if err := oneRow(res, store.ErrConflict, "archive id taken"); err != nil {
			return err
		}
		rows, err := t.query(`SELECT id FROM archives WHERE user_id = ? AND kind = ? ORDER BY created_at DESC, id DESC`, idArg(a.User), a.Kind)
		if err != nil {
			return err
		}
		ids, err := collect(rows, func(r scanner) (string, error) { var id string; return id, r.Scan(&id) })
		if err != nil {
			return err
		}
		kept := 1 // the new one
		for _, id := range ids {
			if id == a.ID {
				continue
			}
			if kept < keep {
				kept++
				continue
			}
			if _, err := t.exec(`DELETE FROM archives WHERE id = ?`, id); err != nil {
				return err
			}
			dropped = append(dropped, id)
		}
		return nil
	})
	return dropped, err
}

// Archive implements store.Archives.
func (s *Store) Archive(ctx context.Context, id string) (store.Archive, error) {
	a, err := scanArchive(s.queryRow(ctx, `SELECT `+archiveCols+` FROM archives WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, store.ErrNotFound
	}
	return a, err
}

// AccountArchives implements store.Archives.
func (s *Store) AccountArchives(ctx context.Context, user protocol.UserID) ([]store.Archive, error) {
	rows, err := s.query(ctx, `SELECT `+archiveCols+` FROM archives WHERE user_id = ? ORDER BY created_at, id`, idArg(user))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanArchive)
}

// DeleteArchive implements store.Archives.
func (s *Store) DeleteArchive(ctx context.Context, id string, user protocol.UserID) error {
	return s.write(ctx, "delete archive", func(t *wtx) error {
		res, err := t.exec(`DELETE FROM archives WHERE id = ? AND user_id = ?`, id, idArg(user))
		if err != nil {
			return err
		}
		return oneRow(res, store.ErrNotFound, "no such archive")
	})
}

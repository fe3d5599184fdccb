package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"

	"sandi.dev/internal/store"
)

// Incarnation returns the current incarnation, read when the store opened
// (a server's database gets a new one only from a restore, which runs with
// the server stopped) or set by NewIncarnation.
func (s *Store) Incarnation() store.Incarnation {
	s.incMu.Lock()
	defer s.incMu.Unlock()
	return s.inc
}

// Incarnations returns every incarnation, oldest first.
func (s *Store) Incarnations(ctx context.Context) ([]store.Incarnation, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, base, created_at FROM incarnations ORDER BY n`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: incarnations: %w", err)
	}
	out, err := collect(rows, func(r scanner) (store.Incarnation, error) {
		var in store.Incarnation
		err := r.Scan(scanID(&in.ID), &in.Base, &in.CreatedAt)
		return in, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: incarnations: %w", err)
	}
	return out, nil
}

// NewIncarnation begins a new incarnation whose base is the newest event id.
func (s *Store) NewIncarnation(ctx context.Context, now int64) (store.Incarnation, error) {
	var in store.Incarnation
	err := s.write(ctx, "new incarnation", func(t *wtx) error {
		var err error
		in, err = newIncarnation(t.ctx, t.tx, s.d, now)
		return err
	})
	if err != nil {
		return store.Incarnation{}, err
	}
	s.setIncarnation(in)
	return in, nil
}

func (s *Store) setIncarnation(in store.Incarnation) {
	s.incMu.Lock()
	s.inc = in
	s.incMu.Unlock()
}

// sqlTx is a write transaction (*sql.Tx).
type sqlTx interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// newIncarnation appends an incarnation in tx: the next n, a random id,
// the newest event as its base (events after it are the new
// incarnation's: a restored database's ids continue after every id its
// source handed out, see Copy).
func newIncarnation(ctx context.Context, tx sqlTx, d dialect, now int64) (store.Incarnation, error) {
	var n, base int64
	if err := tx.QueryRowContext(ctx, d.rebind(`SELECT COALESCE(MAX(n), 0) FROM incarnations`)).Scan(&n); err != nil {
		return store.Incarnation{}, fmt.Errorf("read the incarnations: %w", err)
	}
	if err := tx.QueryRowContext(ctx, lastEventQuery(d)).Scan(&base); err != nil {
		return store.Incarnation{}, fmt.Errorf("read the event counter: %w", err)
	}
	in := store.Incarnation{Base: base, CreatedAt: now}
	rand.Read(in.ID[:])
	if _, err := tx.ExecContext(ctx, d.rebind(`INSERT INTO incarnations (n, id, base, created_at) VALUES (?, ?, ?, ?)`),
		n+1, idArg(in.ID), in.Base, in.CreatedAt); err != nil {
		return store.Incarnation{}, fmt.Errorf("add an incarnation: %w", err)
	}
	return in, nil
}

// ensureIncarnation gives a database without an incarnation its first
// (base 0: the database's whole history) and reads the current one.
// Several servers opening one PostgreSQL database at once insert one row.
func (s *Store) ensureIncarnation(ctx context.Context, now int64) error {
	// Read first: a shared open of a running server's database (which
	// has its incarnation) must not wait for its writer.
	if all, err := s.Incarnations(ctx); err != nil {
		return err
	} else if len(all) > 0 {
		s.setIncarnation(all[len(all)-1])
		return nil
	}
	var id [16]byte
	rand.Read(id[:])
	if _, err := s.w.ExecContext(ctx, s.d.rebind(`INSERT INTO incarnations (n, id, base, created_at) VALUES (1, ?, 0, ?) ON CONFLICT DO NOTHING`),
		idArg(id), now); err != nil {
		return fmt.Errorf("sqlstore: first incarnation: %w", err)
	}
	all, err := s.Incarnations(ctx)
	if err != nil {
		return err
	}
	s.setIncarnation(all[len(all)-1])
	return nil
}

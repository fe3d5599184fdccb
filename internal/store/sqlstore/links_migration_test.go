package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"sandi.dev/internal/store"
	"sandi.dev/internal/store/migrations"
	"sandi.dev/protocol"
)

// testMigration runs a migration test on SQLite and PostgreSQL: it
// migrates a fresh database up to version before, lets setup write rows
// the old way through exec, opens a Store on it (which runs the newer
// migrations), hands it to check, and finally migrates back down to
// before.
func testMigration(t *testing.T, before int64, setup func(exec func(q string, args ...any)), check func(t *testing.T, s *Store)) {
	t.Helper()
	for name, db := range map[string]struct {
		driver, url string
		dialect     goose.Dialect
	}{
		"sqlite":   {"sqlite", filepath.Join(t.TempDir(), "old.db"), goose.DialectSQLite3},
		"postgres": {"pgx", testpgURL(t), goose.DialectPostgres},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			raw, err := sql.Open(db.driver, db.url)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			p, err := goose.NewProvider(db.dialect, raw, migrations.FS)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, before); err != nil {
				t.Fatal(err)
			}
			rebind := sqliteDialect.rebind
			if db.dialect == goose.DialectPostgres {
				rebind = postgresDialect.rebind
			}
			setup(func(q string, args ...any) {
				t.Helper()
				if _, err := raw.ExecContext(ctx, rebind(q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			})

			s, err := Open(ctx, db.url, Options{})
			if err != nil {
				t.Fatal(err)
			}
			check(t, s)
			s.Close()
			if _, err := p.DownTo(ctx, before); err != nil {
				t.Fatalf("down to %d: %v", before, err)
			}
		})
	}
}

// TestLinkExpiryMigration: link requests made before migration 00003 (no
// tag, no expiry) are neither listed nor approvable after it; an identity
// sealed before it is still handed to its device; and the migration goes
// down again.
func TestLinkExpiryMigration(t *testing.T) {
	ctx := context.Background()
	var user protocol.UserID
	var pending, approved protocol.DeviceID
	now := int64(1_800_000_000_000)
	testMigration(t, 2, func(exec func(q string, args ...any)) {
		user, pending, approved = protocol.NewUserID(), protocol.NewDeviceID(), protocol.NewDeviceID()
		exec(`INSERT INTO users (id, username, password_hash, created_at) VALUES (?, 'u', 'h', 1)`, user[:])
		for _, d := range []protocol.DeviceID{pending, approved} {
			exec(`INSERT INTO devices (id, user_id, name, created_at) VALUES (?, ?, 'd', 1)`, d[:], user[:])
		}
		exec(`INSERT INTO link_requests (device_id, user_id, public_key, created_at) VALUES (?, ?, ?, ?)`, pending[:], user[:], []byte("old key"), now)
		exec(`INSERT INTO link_requests (device_id, user_id, public_key, sealed, created_at) VALUES (?, ?, ?, ?, ?)`, approved[:], user[:], []byte("old key"), []byte("sealed"), now)
	}, func(t *testing.T, s *Store) {
		if rs, err := s.LinkRequests(ctx, user, now); err != nil || len(rs) != 0 {
			t.Errorf("a request from before the migration is listed: %+v, %v", rs, err)
		}
		if err := s.ApproveLink(ctx, user, pending, []byte("x"), now); !errors.Is(err, store.ErrLinkExpired) {
			t.Errorf("approving a request from before the migration: %v, want ErrLinkExpired", err)
		}
		if r, err := s.LinkRequest(ctx, approved); err != nil || string(r.Sealed) != "sealed" || r.Tag != nil || r.ExpiresAt != 0 {
			t.Errorf("the approved request after the migration: %+v, %v", r, err)
		}
	})
}

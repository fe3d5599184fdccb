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

// TestLinkExpiryMigration: link requests made before migration 00003 (no
// tag, no expiry) are neither listed nor approvable after it; an identity
// sealed before it is still handed to its device; and the migration goes
// down again.
func TestLinkExpiryMigration(t *testing.T) {
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
			if _, err := p.UpTo(ctx, 2); err != nil {
				t.Fatal(err)
			}
			rebind := sqliteDialect.rebind
			if db.dialect == goose.DialectPostgres {
				rebind = postgresDialect.rebind
			}
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := raw.ExecContext(ctx, rebind(q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			user, pending, approved := protocol.NewUserID(), protocol.NewDeviceID(), protocol.NewDeviceID()
			exec(`INSERT INTO users (id, username, password_hash, created_at) VALUES (?, 'u', 'h', 1)`, user[:])
			for _, d := range []protocol.DeviceID{pending, approved} {
				exec(`INSERT INTO devices (id, user_id, name, created_at) VALUES (?, ?, 'd', 1)`, d[:], user[:])
			}
			now := int64(1_800_000_000_000)
			exec(`INSERT INTO link_requests (device_id, user_id, public_key, created_at) VALUES (?, ?, ?, ?)`, pending[:], user[:], []byte("old key"), now)
			exec(`INSERT INTO link_requests (device_id, user_id, public_key, sealed, created_at) VALUES (?, ?, ?, ?, ?)`, approved[:], user[:], []byte("old key"), []byte("sealed"), now)

			s, err := Open(ctx, db.url, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if rs, err := s.LinkRequests(ctx, user, now); err != nil || len(rs) != 0 {
				t.Errorf("a request from before the migration is listed: %+v, %v", rs, err)
			}
			if err := s.ApproveLink(ctx, user, pending, []byte("x"), now); !errors.Is(err, store.ErrLinkExpired) {
				t.Errorf("approving a request from before the migration: %v, want ErrLinkExpired", err)
			}
			if r, err := s.LinkRequest(ctx, approved); err != nil || string(r.Sealed) != "sealed" || r.Tag != nil || r.ExpiresAt != 0 {
				t.Errorf("the approved request after the migration: %+v, %v", r, err)
			}
			s.Close()
			if _, err := p.DownTo(ctx, 2); err != nil {
				t.Fatalf("down to 2: %v", err)
			}
		})
	}
}

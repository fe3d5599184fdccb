package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"sandi.dev/internal/store/migrations"
	"sandi.dev/protocol"
)

// TestOneTimeCountMigration: migration 00005 sets each device's kept
// one-time key count from the keys stored before it, claims then follow
// that count, and the migration goes down again.
func TestOneTimeCountMigration(t *testing.T) {
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
			if _, err := p.UpTo(ctx, 4); err != nil {
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
			user, many, none := protocol.NewUserID(), protocol.NewDeviceID(), protocol.NewDeviceID()
			exec(`INSERT INTO users (id, username, password_hash, created_at) VALUES (?, 'u', 'h', 1)`, user[:])
			for _, d := range []protocol.DeviceID{many, none} {
				exec(`INSERT INTO devices (id, user_id, name, signed_prekey, last_resort, created_at) VALUES (?, ?, 'd', ?, ?, 1)`, d[:], user[:], []byte("spk"), []byte("lr"))
			}
			for i := range 7 {
				exec(`INSERT INTO one_time_keys (device_id, key_id, encoded) VALUES (?, ?, ?)`, many[:], i+1, []byte("key"))
			}

			s, err := Open(ctx, db.url, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for d, want := range map[protocol.DeviceID]int{many: 7, none: 0} {
				if n, err := s.CountOneTimeKeys(ctx, d); err != nil || n != want {
					t.Errorf("count after the migration: %d, %v; want %d", n, err, want)
				}
			}
			cs, err := s.Claim(ctx, []protocol.DeviceID{many, none}, 0, 1)
			if err != nil || cs[0].OneTime == nil || cs[0].Remaining != 6 || cs[1].OneTime != nil {
				t.Errorf("claim after the migration: %+v, %v", cs, err)
			}
			checkOneTimeCounts(t, s)
			s.Close()
			if _, err := p.DownTo(ctx, 4); err != nil {
				t.Fatalf("down to 4: %v", err)
			}
		})
	}
}

package sqlstore

import (
	"context"
	"testing"

	"sandi.dev/protocol"
)

// TestOneTimeCountMigration: migration 00005 sets each device's kept
// one-time key count from the keys stored before it, claims then follow
// that count, and the migration goes down again.
func TestOneTimeCountMigration(t *testing.T) {
	ctx := context.Background()
	var many, none protocol.DeviceID
	testMigration(t, 4, func(exec func(q string, args ...any)) {
		user := protocol.NewUserID()
		many, none = protocol.NewDeviceID(), protocol.NewDeviceID()
		exec(`INSERT INTO users (id, username, password_hash, created_at) VALUES (?, 'u', 'h', 1)`, user[:])
		for _, d := range []protocol.DeviceID{many, none} {
			exec(`INSERT INTO devices (id, user_id, name, signed_prekey, last_resort, created_at) VALUES (?, ?, 'd', ?, ?, 1)`, d[:], user[:], []byte("spk"), []byte("lr"))
		}
		for i := range 7 {
			exec(`INSERT INTO one_time_keys (device_id, key_id, encoded) VALUES (?, ?, ?)`, many[:], i+1, []byte("key"))
		}
	}, func(t *testing.T, s *Store) {
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
	})
}

package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/internal/testpg"
)

// TestPostgresConnectionLost: PostgreSQL ends the store's connections
// (pg_terminate_backend, as a restart or an administrator does) between
// two sends that come within a second of each other, so the pool hands
// out a dead connection without pinging it first. A send, with and
// without a signature check, is written anyway, once, on a new
// connection; another write fails with an error ConnLost reports (the
// server's 503), or succeeds.
func TestPostgresConnectionLost(t *testing.T) {
	ctx := context.Background()
	url := testpg.URL(t)
	s, senders := benchStore(t, url, 1)
	t.Cleanup(func() { s.Close() })
	sd := senders[0]
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	kill := func() {
		t.Helper()
		var n int
		if err := admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("the store holds no connection to end")
		}
	}
	n := 0
	send := func(checked bool) (store.SendResult, error) {
		n++
		m := sd.send(int64(n))
		m.ClientID = fmt.Sprintf("lost-%d", n)
		if checked {
			m.Check = func() error { return nil }
		}
		return s.SendOne(ctx, m)
	}
	for _, checked := range []bool{false, true} {
		if _, err := send(checked); err != nil {
			t.Fatal(err)
		}
		kill()
		res, err := send(checked)
		if err != nil {
			t.Fatalf("send (checked %v) after the connections ended: %v", checked, err)
		}
		var stored int
		if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE client_id = $1`, fmt.Sprintf("lost-%d", n)).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != 1 || res.Seq == 0 {
			t.Fatalf("send (checked %v) after the connections ended: stored %d times, seq %d", checked, stored, res.Seq)
		}
	}
	if _, err := send(false); err != nil {
		t.Fatal(err)
	}
	kill()
	err = s.PutBundle(ctx, store.BundleUpload{User: sd.user, Device: sd.dev, Identity: testIdentity(), SignedPreKey: []byte("spk2"), LastResort: []byte("lr2")})
	if err != nil && !s.ConnLost(err) {
		t.Fatalf("a write on a connection PostgreSQL ended: %v, want a lost connection (ConnLost)", err)
	}
}

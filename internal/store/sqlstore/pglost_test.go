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
	kill := func() { testpg.EndConnections(t, url) }
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
		stored := countRows(t, url, `SELECT count(*) FROM messages WHERE client_id = $1`, fmt.Sprintf("lost-%d", n))
		if stored != 1 || res.Seq == 0 {
			t.Fatalf("send (checked %v) after the connections ended: stored %d times, seq %d", checked, stored, res.Seq)
		}
	}
	if _, err := send(false); err != nil {
		t.Fatal(err)
	}
	kill()
	err := s.PutBundle(ctx, store.BundleUpload{User: sd.user, Device: sd.dev, Identity: testIdentity(), SignedPreKey: []byte("spk2"), LastResort: []byte("lr2")})
	if err != nil && !s.ConnLost(err) {
		t.Fatalf("a write on a connection PostgreSQL ended: %v, want a lost connection (ConnLost)", err)
	}
}

// countRows runs a count on a connection of its own (the store's may have
// been ended).
func countRows(t *testing.T, url, q string, args ...any) int {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/internal/store/storetest"
	"sandi.dev/internal/testpg"
)

func TestMain(m *testing.M) { testpg.Main(m) }

// postgresOpener opens a store on a fresh database of the test cluster.
var postgresOpener = storetest.PerTest(
	func(t *testing.T) string { return testpg.URL(t) },
	func(t *testing.T, url string, fault func(string) error) store.Store {
		return openTestStore(t, url, fault)
	})

// TestPostgres runs the conformance suite on PostgreSQL.
func TestPostgres(t *testing.T) {
	storetest.Run(t, postgresOpener)
}

func testpgURL(tb testing.TB) string { return testpg.URL(tb) }

// TestPostgresSchema checks the schema's own guarantees on PostgreSQL.
func TestPostgresSchema(t *testing.T) {
	testSchema(t, openTestStore(t, testpg.URL(t), nil))
}

// TestPostgresSendKeys: a store on PostgreSQL drops the foreign keys of
// messages that the send proves itself (pgSendKeys) and keeps the one to
// the sender's device; a database that has them (as every database made
// by an earlier release) loses them at the next open, unless another
// session holds the table then, in which case the open goes on and a
// later one drops them.
func TestPostgresSendKeys(t *testing.T) {
	ctx := context.Background()
	url := testpg.URL(t)
	openTestStore(t, url, nil)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys := func() []string {
		t.Helper()
		rows, err := db.QueryContext(ctx, `SELECT conname FROM pg_constraint WHERE conrelid = 'messages'::regclass AND contype = 'f' ORDER BY conname`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			out = append(out, k)
		}
		return out
	}
	kept := []string{"messages_sender_device_fkey"}
	all := []string{"messages_conversation_id_fkey", "messages_sender_device_fkey", "messages_sender_user_fkey"}
	if got := keys(); !slices.Equal(got, kept) {
		t.Fatalf("a fresh database's keys on messages: %v, want %v", got, kept)
	}
	if _, err := db.ExecContext(ctx, `ALTER TABLE messages
ADD CONSTRAINT messages_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES conversations (id),
ADD CONSTRAINT messages_sender_user_fkey FOREIGN KEY (sender_user) REFERENCES users (id)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `LOCK TABLE messages IN ACCESS SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	openTestStore(t, url, nil) // does not wait for the lock longer than half a second
	if got := keys(); !slices.Equal(got, all) {
		t.Fatalf("keys after an open that could not lock messages: %v, want %v", got, all)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	openTestStore(t, url, nil)
	if got := keys(); !slices.Equal(got, kept) {
		t.Fatalf("keys after the next open: %v, want %v", got, kept)
	}
}

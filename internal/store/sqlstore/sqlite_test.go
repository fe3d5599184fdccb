package sqlstore

import (
	"context"
	"path/filepath"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/internal/store/storetest"
)

// sqliteOpener opens a store on a SQLite file in t's temporary directory.
var sqliteOpener = storetest.PerTest(
	func(t *testing.T) string { return filepath.Join(t.TempDir(), "sandi.db") },
	func(t *testing.T, path string, fault func(string) error) store.Store {
		return openTestStore(t, path, fault)
	})

func openTestStore(t *testing.T, url string, fault func(string) error) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Fault: fault})
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSQLite runs the conformance suite on a real SQLite file.
func TestSQLite(t *testing.T) {
	storetest.Run(t, sqliteOpener)
}

// TestSQLiteSchema checks the schema's own guarantees on SQLite.
func TestSQLiteSchema(t *testing.T) {
	testSchema(t, openTestStore(t, filepath.Join(t.TempDir(), "schema.db"), nil))
}

// TestSQLitePragmas checks the durability settings of the writer
// connection and that the reader cannot write.
func TestSQLitePragmas(t *testing.T) {
	s := openTestStore(t, "file:"+filepath.Join(t.TempDir(), "p.db"), nil)
	ctx := context.Background()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL
		"foreign_keys": "1",
		"busy_timeout": "5000",
	} {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("writer PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	if _, err := s.r.ExecContext(ctx, "DELETE FROM users"); err == nil {
		t.Errorf("the read pool accepted a write")
	}
	if n := s.w.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer pool allows %d connections, want 1", n)
	}
}

package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"modernc.org/sqlite"

	"sandi.dev/internal/store"
	"sandi.dev/internal/store/storetest"
	"sandi.dev/protocol"
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
	t.Cleanup(func() { checkOneTimeCounts(t, s) }) // runs before the Close above
	return s
}

// checkOneTimeCounts fails t if a device's kept one-time key count differs
// from its keys: every scenario of the suite checks it when it ends. A
// store the test closed already is not checked.
func checkOneTimeCounts(t *testing.T, s *Store) {
	t.Helper()
	var n int
	err := s.r.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM devices d
		WHERE d.one_time_count <> (SELECT COUNT(*) FROM one_time_keys k WHERE k.device_id = d.id)`).Scan(&n)
	if err != nil {
		return // closed by the test, or a store of another schema
	}
	if n != 0 {
		t.Errorf("%d devices have a one-time key count that differs from their keys", n)
	}
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
		"temp_store":   "2", // MEMORY
	} {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("writer PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	// Commits sync with fdatasync where the system has it (see
	// useFdatasync).
	if runtime.GOOS == "linux" && !sqlite.FdatasyncEnabled() {
		t.Errorf("SQLite commits with fsync, want fdatasync")
	}
	if _, err := s.r.ExecContext(ctx, "DELETE FROM users"); err == nil {
		t.Errorf("the read pool accepted a write")
	}
	if n := s.w.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer pool allows %d connections, want 1", n)
	}
}

// TestSQLiteLock: a SQLite store has its database to itself. A second
// store on the same file is refused with ErrInUse (it would write behind
// the first one's memo) unless it is opened Shared, and the lock goes
// with Close.
func TestSQLiteLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock.db")
	ctx := context.Background()
	first, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if first.memo == nil {
		t.Fatal("the store that holds the lock keeps no memo")
	}
	if s, err := Open(ctx, path, Options{}); !errors.Is(err, ErrInUse) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second open: %v, want ErrInUse", err)
	}
	shared, err := Open(ctx, path, Options{Shared: true})
	if err != nil {
		t.Fatalf("shared open: %v", err)
	}
	if shared.memo != nil {
		t.Fatal("a shared store keeps a memo")
	}
	shared.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	again.Close()
}

// TestSQLiteCheckpointer: after writes, the store's checkpointer copies
// the WAL back into the database file by itself.
func TestSQLiteCheckpointer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.db")
	s := openTestStore(t, path, nil)
	ctx := context.Background()
	if s.ckpt == nil {
		t.Fatal("no checkpointer")
	}
	for i := range 20 {
		u := protocol.NewUserID()
		if err := s.CreateUser(ctx, store.User{ID: u, Username: fmt.Sprintf("ckpt%d", i), PasswordHash: "x", CreatedAt: 1},
			store.Device{ID: protocol.NewDeviceID(), User: u, Name: "d", CreatedAt: 1}, []byte(fmt.Sprintf("token-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.ckpt.runs.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint ran within 10 s of the writes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Every page is in the database file: its size is the database's
	// (the WAL holds the pages until they are copied).
	var pages, size int64
	if err := s.r.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != pages*size {
		t.Fatalf("the database file has %d bytes, the database %d pages of %d", st.Size(), pages, size)
	}
}

// TestSQLiteStaleHead checks that a send batch takes its event ids from
// the event counter even when the memo's copy of it is wrong (as if a
// commit's after-commit hooks had not run): the counter update sees that
// the copy is stale and reads the counter, so no two events share an id
// and no id is skipped.
func TestSQLiteStaleHead(t *testing.T) {
	ctx := context.Background()
	s := newSQLite(t, "head.db")
	w := fill(t, s)
	f := &filler{t: t, s: s, ctx: ctx, now: 1_800_000_000_000}
	for i, stale := range []int64{-3, +5, 0} {
		head, err := s.LastEventID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.memo.head.Store(head + stale)
		r := f.send(w.conv, w.alice, fmt.Sprintf("stale%d", i), 3, nil)
		if r.EventID != head+1 {
			t.Fatalf("memo head off by %d: send got event id %d, want %d", stale, r.EventID, head+1)
		}
		if got, err := s.LastEventID(ctx); err != nil || got != head+1 {
			t.Fatalf("memo head off by %d: counter %d (%v), want %d", stale, got, err, head+1)
		}
		if got := s.memo.head.Load(); got != head+1 {
			t.Fatalf("memo head off by %d: memo head %d after the send, want %d", stale, got, head+1)
		}
	}
}

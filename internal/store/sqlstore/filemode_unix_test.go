//go:build unix

package sqlstore

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// A database created in a directory that exists already, readable by
// others, is readable by its owner only, with the files beside it; so is
// a copy made with Copy (a backup).
func TestSQLiteFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022) // the usual umask, whatever the test runner's
	defer syscall.Umask(old)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	path := filepath.Join(dir, "sandi.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := store.User{ID: protocol.NewUserID(), Username: "alice", PasswordHash: "x", CreatedAt: 1}
	d := store.Device{ID: protocol.NewDeviceID(), User: u.ID, Name: "d", CreatedAt: 1}
	if err := s.CreateUser(ctx, u, d, []byte("token hash 0123456789abcdef01234")); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	dst, err := Open(ctx, backup, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, s, dst); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) < 3 {
			t.Fatalf("only %d files in %s", len(ents), dir)
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: mode %v, want 0600", e.Name(), fi.Mode().Perm())
			}
		}
	}
	check() // WAL and shared-memory files open
	dst.Close()
	s.Close()
	check()
}

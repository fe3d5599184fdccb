package testpg

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestURL checks that two calls give two distinct, usable, empty databases.
func TestURL(t *testing.T) {
	a, b := URL(t), URL(t)
	if a == b {
		t.Fatalf("two calls gave the same database %s", a)
	}
	for _, u := range []string{a, b} {
		db, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(context.Background(), "CREATE TABLE x (v INT)"); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		var fsync string
		if err := db.QueryRowContext(context.Background(), "SHOW fsync").Scan(&fsync); err != nil {
			t.Fatal(err)
		}
		if fsync != "on" && os.Getenv(EnvURL) == "" {
			t.Errorf("fsync = %s, want on", fsync)
		}
	}
}

// TestMissingBinaries checks the failure names the fix.
func TestMissingBinaries(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "15", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := binDir(root)
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y postgresql") {
		t.Fatalf("binDir on an empty tree = %v, want an error naming apt-get install -y postgresql", err)
	}
}

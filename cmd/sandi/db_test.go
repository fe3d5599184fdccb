package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/protocol"
)

// The command path of `sandi db copy` on SQLite files (the copy to
// PostgreSQL is tested end to end in client/migrate_test.go, whose package
// runs a PostgreSQL cluster).

// sourceDB makes a SQLite database with users accounts.
func sourceDB(t *testing.T, users int) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sandi.db")
	s, err := sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range users {
		u, d := protocol.NewUserID(), protocol.NewDeviceID()
		tok := make([]byte, 32)
		protocol.Random(tok)
		if err := s.CreateUser(ctx, store.User{ID: u, Username: "user" + string(rune('a'+i)), PasswordHash: "h", CreatedAt: 1},
			store.Device{ID: d, User: u, Name: "d", CreatedAt: 1}, tok); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func runDB(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = run(context.Background(), append([]string{"--home", os.DevNull}, args...), strings.NewReader(""), &o, &e)
	return o.String(), e.String(), err
}

func users(t *testing.T, path string) int {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for i := range 26 {
		if _, err := s.UserByName(context.Background(), "user"+string(rune('a'+i))); err == nil {
			n++
		}
	}
	return n
}

func TestDBCopy(t *testing.T) {
	src := sourceDB(t, 3)
	dir := t.TempDir()

	// Text output: every table in copy order, then the total.
	to := filepath.Join(dir, "copy.db")
	out, errOut, err := runDB("db", "copy", "--from", src, "--to", to)
	if err != nil {
		t.Fatalf("db copy: %v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	tables := sqlstore.CopyTables()
	if len(lines) != len(tables)+2 || !strings.HasPrefix(lines[0], "copied "+src+" to "+to) {
		t.Fatalf("db copy printed:\n%s", out)
	}
	for i, table := range tables {
		f := strings.Fields(lines[i+1])
		want := "0"
		switch table {
		case "users", "devices", "tokens":
			want = "3"
		case "event_counter", "incarnations":
			want = "1"
		}
		if len(f) != 2 || f[0] != table || f[1] != want {
			t.Errorf("line %q, want %s %s", lines[i+1], table, want)
		}
	}
	if f := strings.Fields(lines[len(lines)-1]); len(f) != 3 || f[0] != "total" || f[1] != "11" {
		t.Errorf("last line %q, want the total of 11 rows", lines[len(lines)-1])
	}
	if n := users(t, to); n != 3 {
		t.Fatalf("the copy has %d users, want 3", n)
	}

	// --json, as a global flag or the command's.
	for _, args := range [][]string{
		{"--json", "db", "copy", "--from", src, "--to", filepath.Join(dir, "j1.db")},
		{"db", "copy", "--json", "--from", src, "--to", filepath.Join(dir, "j2.db")},
	} {
		out, errOut, err := runDB(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut)
		}
		var res struct {
			From   string           `json:"from"`
			Tables map[string]int64 `json:"tables"`
			Total  int64            `json:"total"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || strings.Count(out, "\n") != 1 {
			t.Fatalf("%v printed %q: %v", args, out, err)
		}
		if res.From != src || res.Tables["users"] != 3 || res.Tables["event_counter"] != 1 || len(res.Tables) != len(tables) || res.Total != 11 {
			t.Fatalf("%v printed %+v", args, res)
		}
	}
}

func TestDBCopyRefuses(t *testing.T) {
	src := sourceDB(t, 2)
	dir := t.TempDir()

	// An existing target is refused and left alone.
	existing := sourceDB(t, 1)
	before, _ := os.ReadFile(existing)
	if _, _, err := runDB("db", "copy", "--from", src, "--to", existing); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("copy onto an existing file: %v", err)
	}
	if after, _ := os.ReadFile(existing); !bytes.Equal(before, after) {
		t.Fatal("the refused copy changed the existing file")
	}
	if n := users(t, existing); n != 1 {
		t.Fatalf("the existing target has %d users, want 1", n)
	}

	// A missing source is an error, and creates nothing.
	missing := filepath.Join(dir, "missing.db")
	to := filepath.Join(dir, "never.db")
	if _, _, err := runDB("db", "copy", "--from", missing, "--to", to); err == nil {
		t.Fatal("copy of a missing source succeeded")
	}
	for _, p := range []string{missing, to} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s exists after the failed copy: %v", p, err)
		}
	}

	// A copy that fails removes the target file it created.
	// Here, a source with a table this version does not know.
	odd := sourceDB(t, 1)
	db, err := sql.Open("sqlite", odd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE notes (id BIGINT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	failed := filepath.Join(dir, "failed.db")
	if _, _, err := runDB("db", "copy", "--from", odd, "--to", failed); err == nil || !strings.Contains(err.Error(), "does not know (notes)") {
		t.Fatalf("copy of a database with an unknown table: %v", err)
	}
	matches, _ := filepath.Glob(failed + "*")
	if len(matches) != 0 {
		t.Fatalf("the failed copy left %v", matches)
	}

	// Usage errors: exit status 2.
	for _, args := range [][]string{
		{"db"},
		{"db", "move"},
		{"db", "copy"},
		{"db", "copy", "--from", src},
		{"db", "copy", "--to", to},
		{"db", "copy", "--from", src, "--to", src},
		{"db", "copy", "--from", src, "--to", to, "extra"},
		{"db", "copy", "--bogus"},
	} {
		var ue usageError
		if _, _, err := runDB(args...); !errors.As(err, &ue) {
			t.Errorf("sandi %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
	if out, _, err := runDB("db", "help"); err != nil || !strings.Contains(out, "Stop the server first") {
		t.Fatalf("db help: %v\n%s", err, out)
	}
	if out, _, err := runDB("help"); err != nil || !strings.Contains(out, "db copy --from URL --to URL") {
		t.Fatalf("help does not list db copy: %v\n%s", err, out)
	}
}

func TestRedact(t *testing.T) {
	got := redact("postgres://sandi:s3cret@db.example:5432/sandi?sslmode=require")
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "db.example:5432/sandi") {
		t.Fatalf("redact = %q", got)
	}
	if got := redact("sandi-data/sandi.db"); got != "sandi-data/sandi.db" {
		t.Fatalf("redact of a path = %q", got)
	}
}

// TestDBCopyOnline is the online backup of docs/operations.md: `sandi db
// copy` from the SQLite file of a running server (here a store that keeps
// writing) to a new file gives a consistent snapshot, and the server
// carries on.
func TestDBCopyOnline(t *testing.T) {
	ctx := context.Background()
	src := sourceDB(t, 0)
	live, err := sqlstore.Open(ctx, src, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	stop, started := make(chan struct{}), make(chan struct{})
	done := make(chan int, 1)
	var stopOnce sync.Once
	written := 0
	stopWriter := func() int {
		stopOnce.Do(func() { close(stop); written = <-done })
		return written
	}
	defer stopWriter() // before live.Close, also when the test fails
	go func() {
		n := 0
		defer func() { done <- n }()
		defer func() {
			if n < 20 {
				close(started)
			}
		}()
		for {
			select {
			case <-stop:
				return
			default:
			}
			u, d := protocol.NewUserID(), protocol.NewDeviceID()
			tok := make([]byte, 32)
			protocol.Random(tok)
			if err := live.CreateUser(ctx, store.User{ID: u, Username: "live" + u.String(), PasswordHash: "h", CreatedAt: 1},
				store.Device{ID: d, User: u, Name: "d", CreatedAt: 1}, tok); err != nil {
				t.Errorf("write during the backup: %v", err)
				return
			}
			n++
			if n == 20 {
				close(started)
			}
		}
	}()
	// Let the writer get going, then back up twice while it writes.
	<-started
	dir := t.TempDir()
	var copied []int64
	for i, name := range []string{"b1.db", "b2.db"} {
		out, errOut, err := runDB("--json", "db", "copy", "--from", src, "--to", filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("backup %d: %v\n%s", i, err, errOut)
		}
		var res struct {
			Tables map[string]int64 `json:"tables"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		// Every account of the snapshot came with its device and token.
		if u := res.Tables["users"]; u != res.Tables["devices"] || u != res.Tables["tokens"] {
			t.Fatalf("backup %d is not a consistent snapshot: %v", i, res.Tables)
		}
		copied = append(copied, res.Tables["users"])
	}
	written = stopWriter()
	if copied[1] < copied[0] || copied[1] > int64(written) || written == 0 {
		t.Fatalf("backups hold %v users; the server wrote %d", copied, written)
	}
	// The backup is a working database of its own.
	b, err := sqlstore.Open(ctx, filepath.Join(dir, "b2.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func incarnationOf(t *testing.T, path string) store.Incarnation {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), path, sqlstore.Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.Incarnation()
}

// TestDBBackupRestore: db backup and db restore copy like db copy and give
// the copy a new incarnation (db copy keeps the source's), written 0600;
// db mark-restored gives an existing database a new one and refuses a
// database that a server has open.
func TestDBBackupRestore(t *testing.T) {
	src := sourceDB(t, 2)
	dir := t.TempDir()
	orig := incarnationOf(t, src)
	seen := map[[16]byte]bool{orig.ID: true}

	cp := filepath.Join(dir, "copy.db")
	if _, errOut, err := runDB("db", "copy", "--from", src, "--to", cp); err != nil {
		t.Fatalf("db copy: %v\n%s", err, errOut)
	}
	if got := incarnationOf(t, cp); got != orig {
		t.Fatalf("db copy: incarnation %+v, want the source's %+v", got, orig)
	}
	for _, verb := range []string{"backup", "restore"} {
		to := filepath.Join(dir, verb+".db")
		out, errOut, err := runDB("--json", "db", verb, "--from", src, "--to", to)
		if err != nil {
			t.Fatalf("db %s: %v\n%s", verb, err, errOut)
		}
		var res struct {
			Incarnation string           `json:"incarnation"`
			Tables      map[string]int64 `json:"tables"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Incarnation == "" || res.Tables["users"] != 2 || res.Tables["incarnations"] != 1 {
			t.Fatalf("db %s printed %q (%v)", verb, out, err)
		}
		got := incarnationOf(t, to)
		if seen[got.ID] || base64.RawURLEncoding.EncodeToString(got.ID[:]) != res.Incarnation {
			t.Fatalf("db %s: incarnation %+v is not a new one (printed %s)", verb, got, res.Incarnation)
		}
		seen[got.ID] = true
		if fi, err := os.Stat(to); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("db %s: target mode %v (%v), want 0600", verb, fi.Mode(), err)
		}
		if users(t, to) != 2 {
			t.Fatalf("db %s: the copy lacks users", verb)
		}
	}

	if _, errOut, err := runDB("db", "mark-restored", "--db", cp); err != nil {
		t.Fatalf("db mark-restored: %v\n%s", err, errOut)
	}
	got := incarnationOf(t, cp)
	if seen[got.ID] || got.Base != orig.Base {
		t.Fatalf("db mark-restored: incarnation %+v, want a new one with base %d", got, orig.Base)
	}

	// A database a server has open is refused, and keeps its incarnation.
	live, err := sqlstore.Open(context.Background(), src, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, _, err := runDB("db", "mark-restored", "--db", src); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("mark-restored of a database in use: %v", err)
	}
	if got := incarnationOf(t, src); got != orig {
		t.Fatalf("the refused mark-restored changed the incarnation to %+v", got)
	}
	var ue usageError
	for _, args := range [][]string{{"db", "mark-restored"}, {"db", "mark-restored", "--db", src, "x"}, {"db", "backup", "--from", src}} {
		if _, _, err := runDB(args...); !errors.As(err, &ue) {
			t.Errorf("sandi %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}

// TestDBSwitchStream: the command's refusals (the switch itself is tested
// in internal/store/sqlstore, TestPostgresStreamSwitch): exit status 2
// with a sentence, and a SQLite database is left as it was.
func TestDBSwitchStream(t *testing.T) {
	src := sourceDB(t, 1)
	for _, args := range [][]string{
		{"db", "switch-stream"},
		{"db", "switch-stream", "--db", src},
		{"db", "switch-stream", "--db", "postgres://127.0.0.1:1/x", "extra"},
		{"db", "switch-stream", "--bogus"},
	} {
		var ue usageError
		if _, _, err := runDB(args...); !errors.As(err, &ue) || ue.Error() == "" {
			t.Errorf("sandi %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
	if users(t, src) != 1 {
		t.Fatal("the refused command changed the SQLite database")
	}
	if out, _, err := runDB("db", "help"); err != nil || !strings.Contains(out, "db switch-stream --db postgres://") {
		t.Fatalf("db help does not list switch-stream: %v\n%s", err, out)
	}
}

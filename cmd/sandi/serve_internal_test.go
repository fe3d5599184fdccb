package main

import (
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes(" 127.0.0.1, 10.1.2.3/8,,::1, fd00::/8, ::ffff:192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8", "192.0.2.1/32"}
	if len(got) != len(want) {
		t.Fatalf("parsePrefixes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("parsePrefixes = %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "localhost", "::ffff:10.0.0.0/104", "1.2.3"} {
		if _, err := parsePrefixes(bad); err == nil {
			t.Errorf("parsePrefixes(%q): no error", bad)
		}
	}
}

// --db takes a postgres:// URL, a PostgreSQL key=value string (turned into
// a URL with the same settings), or a SQLite path ending in .db or
// .sqlite; nothing else.
func TestDatabaseURL(t *testing.T) {
	for _, c := range []struct{ db, want string }{
		{"", filepath.Join("data", "sandi.db")},
		{"postgres://u:p@h/d", "postgres://u:p@h/d"},
		{"postgresql://h/d", "postgresql://h/d"},
		{"/var/lib/sandi/sandi.db", "/var/lib/sandi/sandi.db"},
		{"copy.sqlite", "copy.sqlite"},
	} {
		if got, err := databaseURL(c.db, "data"); err != nil || got != c.want {
			t.Errorf("databaseURL(%q) = %q, %v; want %q", c.db, got, err, c.want)
		}
	}
	for _, bad := range []string{"sandi-data", "file:sandi.db?mode=rwc", "mysql://h/d", "host", "/tmp/x.db.bak", "host='unterminated"} {
		if got, err := databaseURL(bad, "data"); err == nil {
			t.Errorf("databaseURL(%q) = %q, want an error", bad, got)
		}
	}
	// A key=value string means the same to the PostgreSQL driver as the
	// URL it is turned into.
	kv := `host=127.0.0.1 port=5433 user=sandi dbname=sandi password='it is a \'secret\' \\ =&?+%' sslmode=disable`
	u, err := databaseURL(kv, "data")
	if err != nil {
		t.Fatal(err)
	}
	a, err := pgconn.ParseConfig(kv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pgconn.ParseConfig(u)
	if err != nil {
		t.Fatalf("%s: %v", u, err)
	}
	if a.Host != b.Host || a.Port != b.Port || a.User != b.User || a.Database != b.Database || a.Password != b.Password || (a.TLSConfig == nil) != (b.TLSConfig == nil) {
		t.Fatalf("key=value %+v, URL %s %+v", a, u, b)
	}
	if b.Password != `it is a 'secret' \ =&?+%` {
		t.Fatalf("password %q", b.Password)
	}
}

func TestParseIdle(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "720h": 720 * time.Hour, " 0 ": -1, "1m": time.Minute} {
		if got, err := parseIdle(in); err != nil || got != want {
			t.Errorf("parseIdle(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1d", "0d", "d", "1.5d", "30s", "-5h", "never", "99999d"} {
		if got, err := parseIdle(bad); err == nil {
			t.Errorf("parseIdle(%q) = %v, want an error", bad, got)
		}
	}
}

// The blob flags: sizes with KiB, MiB and GiB suffixes, a quota of 0 for
// no cap, the blob directory in the data directory by default; anything
// else is a usage error.
func TestServeBlobFlags(t *testing.T) {
	for _, c := range []struct {
		args          []string
		blobs         string
		maxBlob, quot int64
		pace          int64
	}{
		{[]string{"--data", "d"}, filepath.Join("d", "blobs"), 101 << 20, 1 << 30, 0},
		{[]string{"--data", "d", "--blobs", "/srv/blobs", "--max-blob", "2MiB", "--blob-quota", "0", "--upload-pace", "0"}, "/srv/blobs", 2 << 20, -1, -1},
		{[]string{"--max-blob", "1000", "--blob-quota", "3 GiB", "--upload-pace", "40MiB"}, filepath.Join("sandi-data", "blobs"), 1000, 3 << 30, 40 << 20},
	} {
		t.Setenv("SANDI_DATA", "")
		c2, err := parseServe(c.args, io.Discard)
		if err != nil || c2.blobs != c.blobs || c2.maxBlob != c.maxBlob || c2.blobQuota != c.quot || c2.limits.UploadPace != c.pace {
			t.Errorf("parseServe(%q) = blobs %q, max %d, quota %d, pace %d, %v; want %q, %d, %d, %d", c.args, c2.blobs, c2.maxBlob, c2.blobQuota, c2.limits.UploadPace, err, c.blobs, c.maxBlob, c.quot, c.pace)
		}
	}
	for _, bad := range [][]string{{"--max-blob", "0"}, {"--max-blob", "1TB"}, {"--blob-quota", "-1"}, {"--blob-quota", "lots"}, {"--upload-pace", "fast"}, {"--upload-pace", "-1MiB"}} {
		if _, err := parseServe(bad, io.Discard); err == nil {
			t.Errorf("parseServe(%q): no error", bad)
		}
	}
}

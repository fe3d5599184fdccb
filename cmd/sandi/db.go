package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/internal/store/sqlstore"
)

const dbUsage = `Usage:
  sandi db copy --from URL --to URL [--json]
  sandi db backup --from URL --to URL [--json]
  sandi db restore --from URL --to URL [--json]
  sandi db mark-restored --db URL [--json]
  sandi db switch-stream --db postgres://… [--force] [--json]

Copies every table of a sandi database into a new, empty one: SQLite to
PostgreSQL, PostgreSQL to SQLite, or either to a copy of itself. URL is a
SQLite file path (or file: URL) or postgres://…. Prints the rows copied per
table (--json: one JSON object).

Stop the server first when moving it to another database: what it writes
after the copy began is not in the copy. The source is read as one
consistent snapshot, so copying a running server's SQLite file to a new
file is a safe online backup.

The target is written in one transaction: all of it or nothing. It must be
empty: a SQLite file that does not exist yet, or a new PostgreSQL database
(CREATE DATABASE …); sandi creates the schema in it. A target that holds
data is refused and nothing is written. Both databases are first brought
to this version's schema, as 'sandi serve' would.

backup and restore are copy, and the new database then begins a new
incarnation of the store: clients that synced past the moment of the
backup see it and read their events again, instead of missing what the
restored server writes next. Back up a running server with 'db backup'
(into a new file, or a new PostgreSQL database); restore with 'db
restore' into a new database, with the server stopped. A database
restored some other way (a copied file, pg_restore) must be given a new
incarnation with 'db mark-restored' before the server starts on it.

switch-stream moves a PostgreSQL database made by a release older than
this one from the event counter to the event id sequence, so that
several nodes write side by side (docs/operations.md, Running a
cluster). Run it once every node runs this release: it refuses while
another program is connected to the database (an older node), unless
--force. A database created by this release is on the sequence already.
`

// dbCommand runs `sandi db …`, the server-side database commands.
func dbCommand(ctx context.Context, args []string, jsonOut bool, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dbUsage)
		return usageError{"db: no subcommand given"}
	}
	switch args[0] {
	case "copy", "backup", "restore":
		return dbCopy(ctx, args[0], args[1:], jsonOut, stdout, stderr)
	case "mark-restored":
		return dbMarkRestored(ctx, args[1:], jsonOut, stdout, stderr)
	case "switch-stream":
		return dbSwitchStream(ctx, args[1:], jsonOut, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, dbUsage)
		return nil
	}
	fmt.Fprint(stderr, dbUsage)
	return usageError{fmt.Sprintf("db: unknown subcommand %q", args[0])}
}

// redact hides the password of a PostgreSQL URL.
func redact(u string) string {
	if !sqlstore.IsPostgres(u) {
		return u
	}
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

func dbCopy(ctx context.Context, verb string, args []string, jsonOut bool, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("db "+verb, flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(stderr, dbUsage+"\nFlags:\n")
		fset.PrintDefaults()
	}
	from := fset.String("from", "", "the database to copy: a SQLite file or postgres://…")
	to := fset.String("to", "", "the new, empty database to copy into: a SQLite file or postgres://…")
	fset.BoolVar(&jsonOut, "json", jsonOut, "print the result as one JSON object")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{"db " + verb + ": " + err.Error()}
	}
	switch {
	case fset.NArg() != 0:
		return usageError{"db " + verb + " takes no arguments, only --from and --to"}
	case *from == "" || *to == "":
		return usageError{"db " + verb + " needs --from URL and --to URL"}
	case *from == *to:
		return usageError{"db " + verb + ": --from and --to are the same database"}
	}

	// A SQLite source must exist: opening a mistyped path would create an
	// empty database and copy nothing.
	if !sqlstore.IsPostgres(*from) {
		if _, err := os.Stat(sqlstore.SQLiteFile(*from)); err != nil {
			return fmt.Errorf("source %s: %w", *from, err)
		}
	}
	// A SQLite target must be a new file: the copy writes only into an
	// empty database, and opening some other file would add sandi's
	// tables to it. If the copy fails, the new file is removed.
	var created []string
	if !sqlstore.IsPostgres(*to) {
		if _, err := os.Stat(sqlstore.SQLiteFile(*to)); err == nil {
			return fmt.Errorf("target %s already exists: copy into a new file", *to)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("target %s: %w", *to, err)
		}
		created = sqlstore.SQLiteFiles(*to)
	}

	counts, inc, err := copyDatabases(ctx, *from, *to, verb != "copy")
	if err != nil {
		for _, f := range created {
			os.Remove(f)
		}
		return err
	}
	if len(created) > 0 {
		// A backup holds every account's password hash and every
		// envelope: readable by its owner only, whatever the umask.
		if err := os.Chmod(created[0], 0o600); err != nil {
			return err
		}
	}
	incText := ""
	if inc != nil {
		incText = base64.RawURLEncoding.EncodeToString(inc.ID[:])
	}

	var total int64
	tables := make(map[string]int64, len(counts))
	for _, c := range counts {
		total += c.Rows
		tables[c.Table] = c.Rows
	}
	if jsonOut {
		b, err := json.Marshal(struct {
			From        string           `json:"from"`
			To          string           `json:"to"`
			Tables      map[string]int64 `json:"tables"`
			Total       int64            `json:"total"`
			Incarnation string           `json:"incarnation,omitempty"`
		}{redact(*from), redact(*to), tables, total, incText})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "copied %s to %s\n", redact(*from), redact(*to))
	for _, c := range counts {
		fmt.Fprintf(&b, "  %-15s %10d\n", c.Table, c.Rows)
	}
	fmt.Fprintf(&b, "  %-15s %10d rows\n", "total", total)
	if incText != "" {
		fmt.Fprintf(&b, "new incarnation %s\n", incText)
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}

// copyDatabases opens both databases (migrating them, as serve does) and
// copies from into to; with newInc, the copy begins a new incarnation.
func copyDatabases(ctx context.Context, from, to string, newInc bool) ([]sqlstore.TableCount, *store.Incarnation, error) {
	// The source may be a running server's database (an online backup).
	src, err := sqlstore.Open(ctx, from, sqlstore.Options{MaxConns: 2, Shared: true})
	if err != nil {
		return nil, nil, fmt.Errorf("open the source %s: %w", redact(from), err)
	}
	defer src.Close()
	dst, err := sqlstore.Open(ctx, to, sqlstore.Options{MaxConns: 2})
	if err != nil {
		return nil, nil, fmt.Errorf("open the target %s: %w", redact(to), err)
	}
	defer dst.Close()
	var counts []sqlstore.TableCount
	var inc *store.Incarnation
	if newInc {
		var in store.Incarnation
		counts, in, err = sqlstore.Backup(ctx, src, dst, time.Now().UnixMilli())
		inc = &in
	} else {
		counts, err = sqlstore.Copy(ctx, src, dst)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := dst.Close(); err != nil {
		return nil, nil, fmt.Errorf("close the target: %w", err)
	}
	return counts, inc, nil
}

// dbMarkRestored gives a database restored by other means than 'db
// restore' a new incarnation.
func dbMarkRestored(ctx context.Context, args []string, jsonOut bool, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("db mark-restored", flag.ContinueOnError)
	fset.SetOutput(stderr)
	db := fset.String("db", "", "the restored database: a SQLite file or postgres://…")
	fset.BoolVar(&jsonOut, "json", jsonOut, "print the result as one JSON object")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{"db mark-restored: " + err.Error()}
	}
	if fset.NArg() != 0 || *db == "" {
		return usageError{"db mark-restored needs --db URL and no arguments"}
	}
	if !sqlstore.IsPostgres(*db) {
		if _, err := os.Stat(sqlstore.SQLiteFile(*db)); err != nil {
			return fmt.Errorf("database %s: %w", *db, err)
		}
	}
	// Not Shared: a SQLite database that a server has open is refused
	// (the server would keep serving the old incarnation).
	s, err := sqlstore.Open(ctx, *db, sqlstore.Options{MaxConns: 2})
	if err != nil {
		return fmt.Errorf("open %s: %w", redact(*db), err)
	}
	defer s.Close()
	in, err := s.NewIncarnation(ctx, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	id := base64.RawURLEncoding.EncodeToString(in.ID[:])
	if jsonOut {
		b, err := json.Marshal(map[string]any{"db": redact(*db), "incarnation": id, "base": in.Base})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s: new incarnation %s (events after %d are new)\n", redact(*db), id, in.Base)
	return err
}

// dbSwitchStream moves a PostgreSQL database from the event counter to
// the event id sequence.
func dbSwitchStream(ctx context.Context, args []string, jsonOut bool, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("db switch-stream", flag.ContinueOnError)
	fset.SetOutput(stderr)
	db := fset.String("db", "", "the database: postgres://…")
	force := fset.Bool("force", false, "switch even while other programs are connected (stop older nodes first)")
	fset.BoolVar(&jsonOut, "json", jsonOut, "print the result as one JSON object")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{"db switch-stream: " + err.Error()}
	}
	if fset.NArg() != 0 || *db == "" {
		return usageError{"db switch-stream needs --db postgres://… and no arguments"}
	}
	if !sqlstore.IsPostgres(*db) {
		return usageError{"db switch-stream: only a PostgreSQL database has the sequence (SQLite has one writer and keeps the counter)"}
	}
	s, err := sqlstore.Open(ctx, *db, sqlstore.Options{MaxConns: 2})
	if err != nil {
		return fmt.Errorf("open %s: %w", redact(*db), err)
	}
	defer s.Close()
	switched, err := s.SwitchStream(ctx, *force)
	if errors.Is(err, sqlstore.ErrOlderNodes) {
		return fmt.Errorf("%w; stop the nodes of older releases (or run it with --force once they are stopped)", err)
	}
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	if jsonOut {
		b, err := json.Marshal(map[string]any{"db": redact(*db), "switched": switched})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	msg := "event ids now come from the sequence"
	if !switched {
		msg = "already on the sequence: nothing to do"
	}
	_, err = fmt.Fprintf(stdout, "%s: %s\n", redact(*db), msg)
	return err
}

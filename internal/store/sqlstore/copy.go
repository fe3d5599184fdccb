package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"sandi.dev/internal/store"
)

// copyTables is every table of the schema, in foreign-key order: a table
// comes after every table it references. It is the one list Copy works
// from; TestCopyTablesCoverSchema fails when a migration adds a table that
// is not here (and Copy itself refuses a database with a table it does not
// know), so a new table cannot be left behind silently.
//
// seed, when set, is the condition that the rows the migrations insert
// satisfy: a freshly migrated database holds them, so the target still
// counts as empty with them, and the copy replaces them by the source's.
var copyTables = []copyTable{
	{name: "users"},
	{name: "devices"},
	{name: "tokens"},
	{name: "one_time_keys"},
	{name: "conversations"},
	{name: "records"},
	{name: "members"},
	{name: "sessions"},
	{name: "session_keys"},
	{name: "messages"},
	{name: "events"},
	// The last event id handed out: copied so that event ids continue
	// after the copied events and a client's sync cursor stays valid.
	{name: "event_counter", seed: "id = 1 AND last_id = 0"},
	{name: "link_requests"},
	{name: "device_lists"},
	{name: "device_list_entries"},
	// The source's incarnations replace the one the target made when it
	// opened: a moved database is the same history (Backup then adds one).
	{name: "incarnations", seed: "n = 1"},
	// The blobs' rows; their ciphertext is in the blob store, which a
	// move of the database leaves where it is.
	{name: "blobs"},
	{name: "blob_refs"},
	{name: "blob_usage"},
	// Account archives (backups, transfers); their ciphertext is in the
	// blob store too.
	{name: "archives"},
	{name: "blocks"},
	{name: "block_statements"},
	{name: "new_contacts"},
}

type copyTable struct {
	name string
	seed string
}

// gooseTable is goose's record of the applied migrations. It belongs to the
// database, not to the data: each store has its own, and Copy compares the
// versions instead of copying it.
const gooseTable = "goose_db_version"

// CopyTables returns the names of the tables Copy copies, in the order it
// copies them (foreign-key order).
func CopyTables() []string {
	out := make([]string, len(copyTables))
	for i, t := range copyTables {
		out[i] = t.name
	}
	return out
}

// TableCount is how many rows Copy wrote to one table.
type TableCount struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
}

// ErrTargetNotEmpty is returned (wrapped) by Copy when the target database
// holds data.
var ErrTargetNotEmpty = errors.New("the target database is not empty")

// Copy copies every table of from into to, which must be empty (freshly
// migrated: Open creates the schema) and at the same migration version.
// It works with any pair of dialects: SQLite to PostgreSQL, PostgreSQL to
// SQLite, or the same on both sides.
//
// The source is read in one read-only transaction, so the copy is a
// consistent snapshot even while a server writes to the source (on SQLite,
// a WAL read transaction; on PostgreSQL, REPEATABLE READ). The target is
// written in one transaction: after an error (a non-empty target, a schema
// that differs, a failed insert, a cancelled ctx) nothing was written. Rows
// are streamed from the source and inserted in bounded batches; no table
// is held in memory. Byte columns are copied byte for byte (an empty value
// stays empty, NULL stays NULL). On a PostgreSQL target, any sequence
// owned by a copied column (serial or identity) is set past the copied
// maximum.
//
// It returns the rows written per table, in copy order. Copy takes no lock
// on the source against writers: moving a server to a new database needs
// the server stopped, or writes made after the snapshot are not copied.
func Copy(ctx context.Context, from, to *Store) ([]TableCount, error) {
	return copyStore(ctx, from, to, nil, nil)
}

// Backup is Copy, and then, in the target's transaction, a new
// incarnation of the target (see store.Incarnation), created at now. A
// backup can only ever be served after a restore, which rolls the server
// back: clients that see the new incarnation resynchronise. Restores use
// it too.
func Backup(ctx context.Context, from, to *Store, now int64) ([]TableCount, store.Incarnation, error) {
	var in store.Incarnation
	counts, err := copyStore(ctx, from, to, nil, func(dst *sql.Tx) error {
		var err error
		in, err = newIncarnation(ctx, dst, to.d, now)
		return err
	})
	if err != nil {
		return nil, store.Incarnation{}, err
	}
	to.setIncarnation(in)
	return counts, in, nil
}

// copyStore is Copy with a hook called after each table is copied (inside
// both transactions); an error from it aborts the copy. Tests use it to
// write to the source during a copy and to fail a copy midway.
// finish, when set, runs last in the target's transaction.
func copyStore(ctx context.Context, from, to *Store, afterTable func(table string) error, finish func(dst *sql.Tx) error) ([]TableCount, error) {
	if from == to {
		return nil, errors.New("sqlstore: copy: the source and the target are the same store")
	}
	counts, err := copyTx(ctx, from, to, afterTable, finish)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: copy: %w", err)
	}
	return counts, nil
}

func copyTx(ctx context.Context, from, to *Store, afterTable func(string) error, finish func(*sql.Tx) error) ([]TableCount, error) {
	if m := to.memo; m != nil {
		// The copy writes the target outside Store.write.
		m.wmu.Lock()
		defer m.wmu.Unlock()
		defer m.invalidate()
	}
	// The source snapshot. On SQLite the read pool's connections begin
	// DEFERRED transactions: the snapshot is taken at the first read and
	// kept until the end.
	ropts := &sql.TxOptions{ReadOnly: true}
	if from.d.dollar {
		ropts.Isolation = sql.LevelRepeatableRead
	}
	src, err := from.r.BeginTx(ctx, ropts)
	if err != nil {
		return nil, fmt.Errorf("begin reading the source: %w", err)
	}
	defer src.Rollback()

	// The target: one write transaction. On SQLite the writer's BEGIN
	// IMMEDIATE holds the database's write lock until the end; on
	// PostgreSQL every table is locked against writers before it is
	// checked.
	dst, err := to.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin writing the target: %w", err)
	}
	defer dst.Rollback()

	sv, err := schemaVersion(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	// The last event id the source handed out, read once the snapshot is
	// taken (its first statement): at or above every id in it. On the
	// sequence it is not transactional, so read later it would count ids
	// drawn after the snapshot too.
	var last int64
	if err := src.QueryRowContext(ctx, streamLastQuery(from.d)).Scan(&last); err != nil {
		return nil, fmt.Errorf("source: read the last event id handed out: %w", err)
	}
	tv, err := schemaVersion(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if sv != tv {
		return nil, fmt.Errorf("the source's schema is at migration version %d and the target's at %d: open both with the same sandi version", sv, tv)
	}
	if err := checkTables(ctx, from.d, src, "source"); err != nil {
		return nil, err
	}
	if err := checkTables(ctx, to.d, dst, "target"); err != nil {
		return nil, err
	}
	if to.d.dollar {
		names := make([]string, len(copyTables))
		for i, t := range copyTables {
			names[i] = quoteIdent(t.name)
		}
		if _, err := dst.ExecContext(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN EXCLUSIVE MODE"); err != nil {
			return nil, fmt.Errorf("lock the target's tables: %w", err)
		}
	}

	// Every column of the source, checked against the target's.
	cols := make([][]column, len(copyTables))
	for i, t := range copyTables {
		sc, err := tableColumns(ctx, from.d, src, t.name)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		tc, err := tableColumns(ctx, to.d, dst, t.name)
		if err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		if err := sameColumns(t.name, sc, tc); err != nil {
			return nil, err
		}
		cols[i] = sc
	}

	// The target must be empty, checked inside its transaction.
	for _, t := range copyTables {
		q := "SELECT 1 FROM " + quoteIdent(t.name)
		if t.seed != "" {
			q += " WHERE NOT (" + t.seed + ")"
		}
		var one int
		err := dst.QueryRowContext(ctx, q+" LIMIT 1").Scan(&one)
		if err == nil {
			return nil, fmt.Errorf("%w (table %s has rows): copy only into a new database, which sandi creates empty", ErrTargetNotEmpty, t.name)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("target: check table %s is empty: %w", t.name, err)
		}
	}

	counts := make([]TableCount, 0, len(copyTables))
	for i, t := range copyTables {
		if t.seed != "" {
			if _, err := dst.ExecContext(ctx, "DELETE FROM "+quoteIdent(t.name)+" WHERE "+t.seed); err != nil {
				return nil, fmt.Errorf("target: clear the seed rows of %s: %w", t.name, err)
			}
		}
		n, err := copyTable1(ctx, src, dst, &to.d, t.name, cols[i])
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t.name, err)
		}
		counts = append(counts, TableCount{Table: t.name, Rows: n})
		if afterTable != nil {
			if err := afterTable(t.name); err != nil {
				return nil, err
			}
		}
	}

	// Event ids continue after the copied events and after every id the
	// source handed out (a cursor may be there): the source's counter, or
	// on a source switched to the sequence the sequence's last value,
	// must not be behind its events.
	var maxID int64
	if err := dst.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM events").Scan(&maxID); err != nil {
		return nil, fmt.Errorf("target: read the last event: %w", err)
	}
	if last < maxID {
		return nil, fmt.Errorf("the source's event counter (%d) is behind its last event (%d): the source is inconsistent", last, maxID)
	}
	// The target starts as a new database does: PostgreSQL on the
	// sequence, SQLite on the counter. The row is written again rather
	// than changed: a switched counter refuses changes.
	if _, err := dst.ExecContext(ctx, "DELETE FROM event_counter"); err != nil {
		return nil, fmt.Errorf("target: event counter: %w", err)
	}
	if _, err := dst.ExecContext(ctx, to.d.rebind("INSERT INTO event_counter (id, last_id, sequenced) VALUES (1, ?, FALSE)"), last); err != nil {
		return nil, fmt.Errorf("target: event counter: %w", err)
	}
	if to.d.dollar {
		if err := resetSequences(ctx, dst); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		if err := switchStream(ctx, dst); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
	}
	if finish != nil {
		if err := finish(dst); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
	}
	if err := src.Commit(); err != nil {
		return nil, fmt.Errorf("end reading the source: %w", err)
	}
	if err := dst.Commit(); err != nil {
		return nil, fmt.Errorf("commit the target: %w", err)
	}
	if m := to.memo; m != nil {
		// The copied counter is the target's newest event (the memo,
		// and its tail, start over from it when invalidate runs).
		m.head.Store(last)
	}
	return counts, nil
}

// colKind is how a column's values travel through Go.
type colKind int

const (
	kindBytes colKind = iota
	kindText
	kindInt
	kindBool
)

func (k colKind) String() string {
	return [...]string{"bytes", "text", "integer", "boolean"}[k]
}

type column struct {
	name string
	kind colKind
}

// kindOf maps a declared column type (SQLite's declaration or PostgreSQL's
// information_schema data_type) to its kind. The schema keeps to these.
func kindOf(typ string) (colKind, bool) {
	switch strings.ToLower(strings.TrimSpace(typ)) {
	case "bytea":
		return kindBytes, true
	case "text":
		return kindText, true
	case "bigint", "integer", "smallint":
		return kindInt, true
	case "boolean":
		return kindBool, true
	}
	return 0, false
}

// queryer is a transaction of either side.
type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// schemaVersion returns the highest migration version applied, as goose
// records it.
func schemaVersion(ctx context.Context, q queryer) (int64, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, "SELECT MAX(version_id) FROM "+gooseTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the migration version: %w", err)
	}
	return v.Int64, nil
}

// listTables returns the names of the database's own tables: not goose's,
// not SQLite's internal ones.
func listTables(ctx context.Context, d dialect, q queryer) ([]string, error) {
	query := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`
	if d.dollar {
		query = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		if name != gooseTable {
			out = append(out, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// checkTables refuses a database whose tables are not exactly copyTables:
// a table Copy does not know would be left behind.
func checkTables(ctx context.Context, d dialect, q queryer, side string) error {
	have, err := listTables(ctx, d, q)
	if err != nil {
		return fmt.Errorf("%s: %w", side, err)
	}
	var unknown, missing []string
	for _, name := range have {
		if !slices.Contains(CopyTables(), name) {
			unknown = append(unknown, name)
		}
	}
	for _, name := range CopyTables() {
		if !slices.Contains(have, name) {
			missing = append(missing, name)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("the %s has tables the copy does not know (%s): this sandi version cannot copy that database", side, strings.Join(unknown, ", "))
	}
	if len(missing) > 0 {
		return fmt.Errorf("the %s lacks tables (%s): it is not a sandi database at this version", side, strings.Join(missing, ", "))
	}
	return nil
}

// tableColumns returns a table's columns in their declared order.
func tableColumns(ctx context.Context, d dialect, q queryer, table string) ([]column, error) {
	query := `SELECT name, type FROM pragma_table_info(?) ORDER BY cid`
	if d.dollar {
		query = `SELECT column_name, data_type FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`
	}
	rows, err := q.QueryContext(ctx, query, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	var out []column
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		k, ok := kindOf(typ)
		if !ok {
			return nil, fmt.Errorf("column %s.%s has type %s, which the copy does not know", table, name, typ)
		}
		out = append(out, column{name: name, kind: k})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("table %s has no columns", table)
	}
	return out, nil
}

func sameColumns(table string, src, dst []column) error {
	key := func(cs []column) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.name + " " + c.kind.String()
		}
		slices.Sort(out)
		return out
	}
	if s, t := key(src), key(dst); !slices.Equal(s, t) {
		return fmt.Errorf("table %s differs: source columns (%s), target columns (%s)", table, strings.Join(s, ", "), strings.Join(t, ", "))
	}
	return nil
}

// Batches of inserted rows are bounded by count, by bound parameters
// (SQLite allows 32766 per statement, PostgreSQL 65535) and by bytes.
const (
	copyMaxRows   = 500
	copyMaxParams = 30000
	copyMaxBytes  = 4 << 20
)

// copyTable1 streams one table from src into dst and returns the rows
// written.
func copyTable1(ctx context.Context, src, dst *sql.Tx, dd *dialect, table string, cols []column) (int64, error) {
	// Byte columns are read with an IS NULL flag: the SQLite driver returns
	// an empty BLOB as nil, and an empty value must not become NULL.
	var sel []string
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quoteIdent(c.name)
		sel = append(sel, names[i])
		if c.kind == kindBytes {
			sel = append(sel, names[i]+" IS NULL")
		}
	}
	rows, err := src.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+quoteIdent(table))
	if err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	defer rows.Close()

	insert := "INSERT INTO " + quoteIdent(table) + " (" + strings.Join(names, ", ") + ")"
	if dd.dollar {
		// Explicit values even for an identity column GENERATED ALWAYS.
		insert += " OVERRIDING SYSTEM VALUE"
	}
	insert += " VALUES "
	maxRows := max(1, min(copyMaxRows, copyMaxParams/len(cols)))

	var (
		args    []any
		n       int // rows in args
		size    int // bytes in args
		read    int64
		written int64
	)
	flush := func() error {
		if n == 0 {
			return nil
		}
		res, err := dst.ExecContext(ctx, dd.rebind(insert+placeholders(n, len(cols))), args...)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		written += k
		args, n, size = args[:0], 0, 0
		return nil
	}

	// Scan destinations, reused for every row.
	type cell struct {
		b    []byte
		null bool
		s    sql.NullString
		i    sql.NullInt64
		t    sql.NullBool
		kind colKind
	}
	cells := make([]cell, len(cols))
	var dest []any
	for i, c := range cols {
		cells[i].kind = c.kind
		switch c.kind {
		case kindBytes:
			dest = append(dest, &cells[i].b, &cells[i].null)
		case kindText:
			dest = append(dest, &cells[i].s)
		case kindInt:
			dest = append(dest, &cells[i].i)
		case kindBool:
			dest = append(dest, &cells[i].t)
		}
	}
	for rows.Next() {
		for i := range cells {
			cells[i].b = nil // Scan into *[]byte allocates a fresh copy
		}
		if err := rows.Scan(dest...); err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
		read++
		for i := range cells {
			c := &cells[i]
			switch c.kind {
			case kindBytes:
				switch {
				case c.null:
					args = append(args, nil)
				case c.b == nil:
					args = append(args, []byte{})
				default:
					args = append(args, c.b)
					size += len(c.b)
				}
			case kindText:
				if c.s.Valid {
					args = append(args, c.s.String)
					size += len(c.s.String)
				} else {
					args = append(args, nil)
				}
			case kindInt:
				if c.i.Valid {
					args = append(args, c.i.Int64)
				} else {
					args = append(args, nil)
				}
			case kindBool:
				if c.t.Valid {
					args = append(args, c.t.Bool)
				} else {
					args = append(args, nil)
				}
			}
		}
		n++
		if n >= maxRows || size >= copyMaxBytes {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	if err := flush(); err != nil {
		return 0, err
	}
	if written != read {
		return 0, fmt.Errorf("read %d rows but the target took %d", read, written)
	}
	return written, nil
}

// resetSequences sets every sequence owned by a column of a copied table
// (serial and identity columns) past the largest copied value, so that the
// next generated value does not collide with a copied row. The schema has
// none today; the copy stays correct if one is added.
func resetSequences(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `
SELECT table_name, column_name, seq FROM (
    SELECT table_name, column_name,
           pg_get_serial_sequence(quote_ident(table_schema) || '.' || quote_ident(table_name), column_name) AS seq
    FROM information_schema.columns
    WHERE table_schema = current_schema()
) c WHERE seq IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("list sequences: %w", err)
	}
	type owned struct{ table, column, seq string }
	var seqs []owned
	for rows.Next() {
		var o owned
		if err := rows.Scan(&o.table, &o.column, &o.seq); err != nil {
			rows.Close()
			return fmt.Errorf("list sequences: %w", err)
		}
		if slices.Contains(CopyTables(), o.table) {
			seqs = append(seqs, o)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list sequences: %w", err)
	}
	for _, o := range seqs {
		// setval(seq, max) makes the next value max+1; with no rows the
		// sequence is left as the migrations made it.
		q := "SELECT setval(CAST($1 AS regclass), m) FROM (SELECT MAX(" + quoteIdent(o.column) + ") AS m FROM " + quoteIdent(o.table) + ") t WHERE m IS NOT NULL"
		var v sql.NullInt64
		if err := tx.QueryRowContext(ctx, q, o.seq).Scan(&v); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("set sequence %s past %s.%s: %w", o.seq, o.table, o.column, err)
		}
	}
	return nil
}

// quoteIdent quotes an identifier for both dialects.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

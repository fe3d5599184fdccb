// Package sqlstore implements store.Store once, over database/sql, for
// SQLite (modernc.org/sqlite, pure Go) and PostgreSQL (pgx through its
// database/sql driver). Every query is written once; the differences between
// the two databases are kept in the small dialect struct below: placeholder
// style and row locks. The schema is one set of embedded migrations
// (package migrations) applied with goose when the store opens.
//
// Concurrency model. Every write is one transaction. On SQLite all writes go
// through one connection and BEGIN IMMEDIATE, so write transactions run one
// at a time and reads use a separate pool. On PostgreSQL (READ COMMITTED)
// each transaction locks the rows its checks depend on before checking them
// (SELECT … FOR UPDATE), always in the same order: the user, device or
// conversation rows first (several of one kind in ascending id order), the
// event counter last. A transaction that deadlocks or fails to serialize
// anyway is retried whole.
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // and the database/sql driver "pgx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite" // and the database/sql driver "sqlite"

	"sandi.dev/internal/store"
	"sandi.dev/internal/store/migrations"
)

// Options tune a Store. The zero value is the production configuration.
type Options struct {
	// Fault, when set, is called between the steps of CreateConversation,
	// AddSession and PutBundle, inside their transaction, with the name of
	// the step just done; an error it returns aborts the transaction and is
	// returned (wrapped). Tests use it to fail a write at every step.
	Fault func(step string) error
	// MaxBatch caps how many SendOne calls one transaction writes
	// (default 256).
	MaxBatch int
	// MaxConns caps the PostgreSQL connection pool, or the SQLite read
	// pool (default 16).
	MaxConns int
	// Shared opens a SQLite database that another process may have open
	// at the same time (sandi db copy reading a running server's file).
	// Without it, a SQLite store locks its database for itself, Open fails
	// with ErrInUse when another process holds that lock, and the store
	// keeps answers in memory between calls (see memo). A shared store
	// keeps nothing and is meant for reading.
	Shared bool
}

// Store is a store.Store on SQLite or PostgreSQL.
type Store struct {
	d     dialect
	w     *sql.DB // writes (SQLite: exactly one connection)
	r     *sql.DB // reads (PostgreSQL: the same pool as w)
	sends *sql.DB // PostgreSQL: the send batches' pool, on generic plans (openPostgres)
	walks *sql.DB // PostgreSQL: the walk by event's pool, on generic plans (openPostgres)
	opts  Options
	batch *batcher
	// rstmts and wstmts hold the statements prepared once on the read pool
	// and on the writer connection (SQLite only: compiling SQL is a large
	// share of SQLite's work per statement, while pgx caches prepared
	// statements per connection by itself).
	rstmts, wstmts *stmtCache
	// memo is nil unless the store is its SQLite database's only user.
	memo *memo
	// pgr remembers token and membership answers on PostgreSQL (nil on
	// SQLite; see pgReads).
	pgr *pgReads
	// ckpt checkpoints the WAL off the writer (SQLite, not Shared).
	ckpt *checkpointer

	// sequenced: the PostgreSQL database takes event ids from the
	// sequence, not the counter; head settles its stream (pgstream.go).
	sequenced atomic.Bool
	head      *pgHead

	// fastSends counts the PostgreSQL send batches written in one round
	// trip (see sendPostgres), for tests.
	fastSends atomic.Int64
	// checkedSends counts the sends of them written while their Check
	// ran (sendPostgresChecked).
	checkedSends atomic.Int64

	// blobMu orders the blob rows' writes on SQLite (see blobWrite);
	// parts are the part marks waiting for it (see SetBlobPart).
	blobMu sync.Mutex
	parts  partQueue

	// inc is the current incarnation (see incarnation.go).
	incMu sync.Mutex
	inc   store.Incarnation

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// dialect is everything that differs between the two databases.
type dialect struct {
	name  string
	goose goose.Dialect
	// dollar: placeholders are $1, $2, … (PostgreSQL); queries are written
	// with ? (SQLite) and rewritten.
	dollar bool
	// forUpdate is appended to a SELECT whose rows the transaction's later
	// checks depend on. SQLite has no row locks and needs none: its write
	// transactions (BEGIN IMMEDIATE on the one writer connection) are
	// serialized whole.
	forUpdate string
	// bytesParam is a placeholder for a binary value where the query gives
	// PostgreSQL no column to infer its type from (a VALUES list): there it
	// must be cast to BYTEA. SQLite must not cast: CAST(x AS BYTEA) would
	// apply numeric affinity to the blob.
	bytesParam string
	// local: the database is a file of this process's (SQLite). A
	// statement costs no round trip, and write transactions (BEGIN
	// IMMEDIATE on the one writer connection) are serialized whole, so
	// nothing changes between a transaction's read and its write.
	local bool
}

var (
	sqliteDialect   = dialect{name: "sqlite", goose: goose.DialectSQLite3, bytesParam: "?", local: true}
	postgresDialect = dialect{name: "postgres", goose: goose.DialectPostgres, dollar: true, forUpdate: " FOR UPDATE", bytesParam: "CAST(? AS BYTEA)"}
)

// rebind rewrites the ? placeholders of q for the dialect. Queries never
// hold a literal question mark.
func (d *dialect) rebind(q string) string {
	if !d.dollar {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// retryable reports whether the transaction may simply be run again: it
// lost a race (a PostgreSQL deadlock or serialization failure) or asks to
// (errLookUp).
func (d *dialect) retryable(err error) bool {
	if errors.Is(err, errLookUp) {
		return true
	}
	var pe *pgconn.PgError
	// codeCounterRetired: the database was switched to the sequence
	// while the transaction took its ids from the counter (the store
	// noticed it, see counterRetired, and takes them from the sequence
	// when it runs again).
	return d.dollar && errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001" || pe.Code == codeCounterRetired)
}

// IsPostgres reports whether url selects PostgreSQL (postgres://… or
// postgresql://…); anything else is a SQLite file path or file: URL.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Database names the store's database: "sqlite" or "postgres".
func (s *Store) Database() string { return s.d.name }

// Open opens (creating if needed) the store at url and applies pending
// migrations. url is postgres://… or postgresql://… for PostgreSQL, and
// otherwise a SQLite file path or file: URL.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	var s *Store
	var err error
	if IsPostgres(url) {
		opts.MaxBatch = min(opts.MaxBatch, maxPGBatch)
		s, err = openPostgres(ctx, url, opts)
	} else {
		s, err = openSQLite(ctx, url, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open: %w", err)
	}
	if err := s.ensureIncarnation(ctx, time.Now().UnixMilli()); err != nil {
		s.closeHandles()
		return nil, fmt.Errorf("sqlstore: open: %w", err)
	}
	s.batch = newBatcher(s, opts.MaxBatch)
	return s, nil
}

// SQLite connection settings, applied by the driver to every connection.
//
// synchronous(FULL): in WAL mode a commit is durable across power loss only
// with FULL, which syncs the WAL on every commit. NORMAL syncs only at
// checkpoints, so after a power loss the last acknowledged commits may be
// gone, and an acknowledged message or claimed key would silently vanish.
// The cost of FULL is paid once per transaction, which is why sends are
// group-committed (see batcher) instead of weakening this.
//
// _txlock=immediate makes BEGIN take the write lock at once, so a write
// transaction never fails midway on a lock upgrade. busy_timeout covers
// another process holding the lock (the store's own writes share one
// connection and never wait on each other in SQLite).
//
// journal_size_limit truncates a WAL that a burst made larger than 64 MiB
// once it starts over. Checkpoints: see checkpointer.
//
// temp_store(MEMORY) keeps the writer's statement journals (the undo log of
// one statement within a transaction) in memory instead of a temporary
// file; durability is the WAL's and does not change. The readers do not
// map the file (mmap_size): a read transaction that finds the file grown
// by a checkpoint unmaps and maps it again, and at thousands of reads a
// second the munmap calls cost more than the preads they save.
const (
	sqliteWriterParams = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)&_pragma=temp_store(MEMORY)&_pragma=journal_size_limit(67108864)&_txlock=immediate"
	// The checkpointer's connection (see checkpointer).
	sqliteCheckpointParams = "_pragma=busy_timeout(5000)&_pragma=synchronous(FULL)&_pragma=journal_size_limit(67108864)"
	sqliteReaderParams     = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(ON)&_pragma=query_only(1)"
)

func sqliteDSN(url, params string) (string, error) {
	if strings.HasPrefix(url, "file:") {
		if strings.Contains(url, "?") {
			return url + "&" + params, nil
		}
		return url + "?" + params, nil
	}
	if url == "" || strings.ContainsAny(url, "?#") {
		return "", fmt.Errorf("sqlite path %q: empty or holds ? or #; use a file: URL", url)
	}
	return url + "?" + params, nil
}

// useFdatasync makes SQLite sync with fdatasync(2) instead of fsync(2),
// process-wide, where the system has it. fdatasync writes a file's data
// and the metadata needed to read it back, its size included, but not its
// timestamps: the same durability, without the journal commit that an
// mtime change forces through ext4 on every fsync. It is what SQLite uses
// on Linux when built by its configure script; the modernc build keeps
// fsync unless asked. Elsewhere (macOS, Windows) SQLite's own sync stays.
var useFdatasync = sync.OnceFunc(func() {
	_, _ = sqlite.Fdatasync(true) // ErrFdatasyncUnavailable: keep fsync
})

func openSQLite(ctx context.Context, url string, opts Options) (_ *Store, err error) {
	useFdatasync()
	wdsn, err := sqliteDSN(url, sqliteWriterParams)
	if err != nil {
		return nil, err
	}
	rdsn, err := sqliteDSN(url, sqliteReaderParams)
	if err != nil {
		return nil, err
	}
	cdsn, err := sqliteDSN(url, sqliteCheckpointParams)
	if err != nil {
		return nil, err
	}
	s := &Store{d: sqliteDialect, opts: opts}
	defer func() {
		if err != nil {
			s.closeHandles()
		}
	}()
	if err := createPrivate(url, SQLiteFile(url)); err != nil {
		return nil, err
	}
	if path := SQLiteFile(url); path == "" {
		s.memo = newMemo(nil) // in memory: private to this process
	} else if !opts.Shared {
		f, err := lockSQLite(path)
		switch {
		case err == nil:
			s.memo = newMemo(f)
		case !errors.Is(err, errNoLock):
			return nil, err
		}
	}
	if s.w, err = sql.Open("sqlite", wdsn); err != nil {
		return nil, err
	}
	// One writer connection: SQLite allows one writer at a time anyway, and
	// queuing in the pool is cheaper than SQLITE_BUSY retries.
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	s.wstmts = newStmtCache(s.w)
	// The writer creates the file, switches it to WAL and migrates before
	// the read pool opens it.
	if _, err := s.migrate(ctx); err != nil {
		return nil, err
	}
	if s.r, err = sql.Open("sqlite", rdsn); err != nil {
		return nil, err
	}
	s.r.SetMaxOpenConns(opts.MaxConns)
	s.r.SetMaxIdleConns(opts.MaxConns)
	if err := s.r.PingContext(ctx); err != nil {
		return nil, err
	}
	s.rstmts = newStmtCache(s.r)
	if s.memo != nil {
		head, err := s.LastEventID(ctx)
		if err != nil {
			return nil, err
		}
		s.memo.head.Store(head)
		s.memo.tail.reset(head)
	}
	if !opts.Shared {
		c, err := sql.Open("sqlite", cdsn)
		if err != nil {
			return nil, err
		}
		c.SetMaxOpenConns(1)
		if err := c.PingContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		s.ckpt = newCheckpointer(c, checkpointEvery)
	}
	return s, nil
}

func openPostgres(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = AppName
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(opts.MaxConns)
	db.SetMaxIdleConns(opts.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	// The send batches run on connections of their own, planned once:
	// PostgreSQL would plan their statements again at every batch for
	// the lengths of its arrays (a custom plan), which took longer than
	// running them. The generic plan is the same whatever the lengths.
	// PostgreSQL plans it again when ANALYZE changes a table's
	// statistics; a connection lasts genericConnLife at most, so that the
	// plans follow the tables' growth even where autovacuum is off. The
	// setting is made once the session has started, rather than as a
	// startup parameter, which a connection pooler may refuse.
	//
	// So does Sync's walk by event (every live read): for a window of a
	// few ids near the head of a long stream a custom plan always looks
	// cheaper than the generic one (which guesses a fraction of the
	// table), so PostgreSQL planned every read anew, and planning took
	// longer than reading (TestPostgresSyncPlannedOnce). Its plan is the
	// same whatever the window (syncByEventPG). Half the request pool's
	// connections suffice: a live read takes a tenth of a millisecond,
	// and a read waiting for a connection waits for one that short.
	generic := func(conns int) *sql.DB {
		p := stdlib.OpenDB(*cfg.Copy(), stdlib.OptionAfterConnect(func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
			return err
		}))
		p.SetMaxOpenConns(conns)
		p.SetMaxIdleConns(conns)
		p.SetConnMaxIdleTime(5 * time.Minute)
		p.SetConnMaxLifetime(genericConnLife)
		return p
	}
	sends, walks := generic(sendConns), generic(max(1, opts.MaxConns/2))
	s := &Store{d: postgresDialect, w: db, r: db, sends: sends, walks: walks, opts: opts, pgr: newPGReads(pgReadTTL)}
	fresh, err := s.migrate(ctx)
	if err == nil {
		err = s.ensureStream(ctx, fresh)
	}
	if err == nil {
		err = s.dropSendKeys(ctx)
	}
	if err != nil {
		db.Close()
		sends.Close()
		walks.Close()
		return nil, err
	}
	s.head = newPGHead(s)
	return s, nil
}

// migrate applies the embedded migrations. On PostgreSQL a session advisory
// lock keeps several servers starting at once from migrating together.
// fresh reports that it created the schema (applied the first migration).
func (s *Store) migrate(ctx context.Context) (fresh bool, err error) {
	if err := s.w.PingContext(ctx); err != nil {
		return false, err
	}
	var popts []goose.ProviderOption
	if s.d.dollar {
		l, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return false, err
		}
		popts = append(popts, goose.WithSessionLocker(l))
	}
	p, err := goose.NewProvider(s.d.goose, s.w, migrations.FS, popts...)
	if err != nil {
		return false, fmt.Errorf("migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return false, fmt.Errorf("migrations: %w", err)
	}
	fresh = slices.ContainsFunc(res, func(r *goose.MigrationResult) bool { return r.Source != nil && r.Source.Version == 1 })
	return fresh, nil
}

// Close stops the send batcher and closes the database handles.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.batch != nil {
			s.batch.close()
		}
		if s.head != nil {
			s.head.close()
		}
		s.closeErr = s.closeHandles()
	})
	return s.closeErr
}

// closeHandles closes whatever of the store is open (also a store that
// failed to open halfway) and releases the SQLite lock last.
func (s *Store) closeHandles() error {
	s.ckpt.close()
	s.rstmts.close()
	s.wstmts.close()
	var err error
	if s.w != nil {
		err = s.w.Close()
	}
	if s.r != nil && s.r != s.w {
		if e := s.r.Close(); err == nil {
			err = e
		}
	}
	for _, p := range []*sql.DB{s.sends, s.walks} {
		if p == nil {
			continue
		}
		if e := p.Close(); err == nil {
			err = e
		}
	}
	if s.memo != nil && s.memo.lock != nil {
		s.memo.lock.Close() // releases the lock
	}
	return err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	if s.r != s.w {
		if err := s.w.PingContext(ctx); err != nil {
			return fmt.Errorf("sqlstore: ping writer: %w", err)
		}
	}
	return nil
}

// Reads outside a transaction use the read pool.

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := s.rstmts.get(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, s.d.rebind(q), args...)
}

func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := s.rstmts.get(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, s.d.rebind(q), args...)
}

// wtx is a write transaction.
type wtx struct {
	tx  *sql.Tx
	s   *Store
	ctx context.Context // the statements' (on SQLite, never cancelled)
	// caller is the caller's context, checked before each statement.
	caller context.Context
	// stmts are the statements this transaction has used, and missed the
	// queries that were not in the store's cache yet: they are prepared
	// for the next transactions once this one has ended (the one SQLite
	// writer connection is busy until then).
	stmts  map[string]*sql.Stmt
	missed []string
	// after runs once the transaction has committed.
	after []func()
}

// afterCommit runs f once the transaction has committed (not if it fails).
func (t *wtx) afterCommit(f func()) { t.after = append(t.after, f) }

// stmt returns q prepared within the transaction, or nil when the dialect
// does not cache statements (then q runs as text).
func (t *wtx) stmt(q string) (*sql.Stmt, error) {
	if t.s.wstmts == nil {
		return nil, nil
	}
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if shared := t.s.wstmts.lookup(q); shared != nil {
		st = t.tx.StmtContext(t.ctx, shared)
	} else {
		var err error
		if st, err = t.tx.PrepareContext(t.ctx, q); err != nil {
			return nil, err
		}
		t.missed = append(t.missed, q)
	}
	if t.stmts == nil {
		t.stmts = make(map[string]*sql.Stmt)
	}
	t.stmts[q] = st
	return st, nil
}

func (t *wtx) exec(q string, args ...any) (sql.Result, error) {
	if err := t.caller.Err(); err != nil {
		return nil, err
	}
	st, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	if st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, t.s.d.rebind(q), args...)
}

func (t *wtx) query(q string, args ...any) (*sql.Rows, error) {
	if err := t.caller.Err(); err != nil {
		return nil, err
	}
	st, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	if st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, t.s.d.rebind(q), args...)
}

// row is what wtx.queryRow returns: a *sql.Row, or an errRow when the
// statement failed to prepare.
type row interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (t *wtx) queryRow(q string, args ...any) row {
	if err := t.caller.Err(); err != nil {
		return errRow{err}
	}
	st, err := t.stmt(q)
	if err != nil {
		return errRow{err}
	}
	if st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, t.s.d.rebind(q), args...)
}

// lockSuffix is the row-lock clause of the dialect (see dialect.forUpdate).
func (t *wtx) lockSuffix() string { return t.s.d.forUpdate }

// step runs the fault hook after the named step.
func (t *wtx) step(name string) error {
	if t.s.opts.Fault == nil {
		return nil
	}
	if err := t.s.opts.Fault(name); err != nil {
		return fmt.Errorf("fault after step %q: %w", name, err)
	}
	return nil
}

// write runs fn in one write transaction and commits it, running it again
// (from the start) when PostgreSQL reports a deadlock or serialization
// failure. fn must have no effect outside the transaction. The returned
// error is wrapped with what, unless it is nil. The memo, if any, is
// forgotten once the transaction has ended.
func (s *Store) write(ctx context.Context, what string, fn func(t *wtx) error) error {
	return s.writeTx(ctx, what, true, fn)
}

// writeTx is write; with invalidate false the memo is kept, and fn must
// keep it true itself (through wtx.afterCommit).
func (s *Store) writeTx(ctx context.Context, what string, invalidate bool, fn func(t *wtx) error) error {
	if m := s.memo; m != nil {
		m.wmu.Lock()
		defer m.wmu.Unlock()
		if invalidate {
			defer m.invalidate()
		}
	}
	if invalidate {
		defer s.pgr.invalidate()
	}
	const attempts = 5
	var err error
	for i := 0; i < attempts; i++ {
		err = s.writeOnce(ctx, fn)
		if err == nil {
			return nil
		}
		s.counterRetired(err)
		if !s.d.retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return wrapErr(what, err)
}

// wrapErr wraps the error of a failed call, joining store.ErrFull when
// err is the disk being full.
func wrapErr(what string, err error) error {
	if full(err) {
		return fmt.Errorf("sqlstore: %s: %w: %w", what, store.ErrFull, err)
	}
	return fmt.Errorf("sqlstore: %s: %w", what, err)
}

// ConnLost implements store.Store.
func (s *Store) ConnLost(err error) bool { return connLost(err) }

// connLost reports whether err is the connection to the database lost
// or refused rather than a statement's failure: a connection pgx could
// not use or open, a network error, an answer cut short, or
// PostgreSQL's connection_exception (class 08) and operator
// intervention (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
// cannot_connect_now).
func connLost(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne)
}

// full reports whether err is the database's disk being full: SQLite's
// SQLITE_FULL (primary code 13, any extended code) or PostgreSQL's
// disk_full (53100).
func full(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == 13 {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "53100"
}

func (s *Store) writeOnce(ctx context.Context, fn func(t *wtx) error) error {
	caller := ctx
	if s.d.local {
		// SQLite: the driver watches a cancellable context with a
		// goroutine of its own for every statement, to interrupt it
		// when the context ends; on a small batch that costs more than
		// some of the statements. The writer's statements are short
		// (lock waits end after busy_timeout), so they run on a context
		// that is never cancelled, and the caller's is checked before
		// each one and before the commit instead.
		ctx = context.WithoutCancel(ctx)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &wtx{tx: tx, s: s, ctx: ctx, caller: caller}
	defer func() { s.wstmts.prepare(ctx, t.missed) }()
	if err := fn(t); err != nil {
		tx.Rollback()
		s.forgetWriter()
		return err
	}
	if err := caller.Err(); err != nil {
		tx.Rollback()
		s.forgetWriter()
		return err
	}
	if err := tx.Commit(); err != nil {
		s.forgetWriter()
		return err
	}
	s.ckpt.wrote()
	for _, f := range t.after {
		f()
	}
	return nil
}

// forgetWriter drops the memo's writer entries after a transaction that
// did not commit (they may hold what it had decided).
func (s *Store) forgetWriter() {
	if s.memo != nil {
		s.memo.clearWriter()
	}
}

// rowsPerStatement caps the rows of one multi-row statement (a VALUES
// list or an IN list): SQLite allows 32,766 parameters, PostgreSQL 65,535,
// and a row here has at most 9; an IN list of single ids takes more.
const (
	rowsPerStatement = 200
	idsPerStatement  = 500
)

// placeholders returns "(?, ?, …), (…)" for rows tuples of cols values.
func placeholders(rows, cols int) string {
	return tuples("("+strings.TrimSuffix(strings.Repeat("?, ", cols), ", ")+")", rows)
}

// tuples returns n copies of one row's placeholders, such as
// "(CAST(? AS BYTEA), ?)", separated by commas: for a VALUES list whose
// columns need the dialect's casts.
func tuples(row string, n int) string {
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// Identifiers travel as 16-byte values.

func idArg(id [16]byte) []byte { return id[:] }

// idDest scans a 16-byte value into an id.
type idDest[T ~[16]byte] struct{ p *T }

func (d idDest[T]) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok || len(b) != 16 {
		return fmt.Errorf("sqlstore: want a 16-byte id, got %T of length %d", src, len(b))
	}
	*d.p = T(b)
	return nil
}

func scanID[T ~[16]byte](p *T) idDest[T] { return idDest[T]{p} }

// toID converts a nullable 16-byte column; nil stays nil.
func toID[T ~[16]byte](b []byte) (*T, error) {
	if b == nil {
		return nil, nil
	}
	if len(b) != 16 {
		return nil, fmt.Errorf("sqlstore: want a 16-byte id, got %d bytes", len(b))
	}
	v := T(b)
	return &v, nil
}

// i64 passes an unsigned counter to the database, which stores BIGINT.
func i64(v uint64) int64 { return int64(v) }

// collect reads every row with scan and closes rows.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Package load measures sandi's send path and live delivery: accepted sends
// per second with several concurrent senders (closed loop), send-to-delivery
// latency over the WebSocket at a fixed send rate (open loop), and sync
// catch-up throughput. It drives the HTTP API with real keys and really
// signed envelopes, as clients do, against a server it starts in-process
// (SQLite or PostgreSQL) or an existing one on a loopback address.
//
// cmd/sandi-load is its command line; docs/performance.md has the figures.
package load

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the per-run database

	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
)

// Config says what to run. Zero values take the defaults; a negative
// duration, rate or catch-up count skips that phase.
type Config struct {
	// Server is the base URL (http://127.0.0.1:PORT) of a running server
	// to measure. Empty starts one in-process on 127.0.0.1 and a random port.
	Server string
	// Servers are more nodes of the same cluster as Server (several
	// sandi serve --nats over one database). Setup goes through Server;
	// the open loop's senders send through the nodes in turn, the
	// receiver listens on a WebSocket to each node, and the report gives
	// each node's figures (LiveResult.Nodes), apart for messages sent
	// through another node (cross-node delivery).
	Servers []string
	// Spread, with Servers, gives the open loop one receiver per node
	// instead of one: receiver k has a single WebSocket, to node k, and
	// sender i writes to receiver i mod nodes, so each message is
	// delivered once, to a device on one node, as when every device is
	// connected to one node. Without it the one receiver listens on
	// every node and each message is delivered once per node (a
	// recipient with a device on every node). The other phases use the
	// first receiver (the catch-up reads its share of the messages).
	Spread bool
	// DB is the in-process server's database: empty for a fresh SQLite file
	// in a new temporary directory (synchronous=FULL, WAL, as the store
	// opens it), the path of a SQLite file to create (to choose the disk;
	// it is kept), or a postgres:// URL of a role that may create databases:
	// each run creates a fresh database there and drops it afterwards.
	DB string
	// Keep keeps the SQLite directory or PostgreSQL database of the run.
	Keep bool

	// Senders is the number of sending accounts, each with its own
	// conversation with the one receiving account (default: the largest
	// concurrency level, at least 1; 1 when neither loop runs).
	Senders int
	// Concurrency lists the closed-loop levels (default 1, 8, 64).
	Concurrency []int
	// Duration of each closed-loop level (default 3s).
	Duration time.Duration
	// Rate is the open-loop send rate, sends per second (default 1000),
	// spread round-robin over the senders' conversations.
	Rate int
	// RateDuration is how long the open loop sends (default 5s).
	RateDuration time.Duration
	// Warmup is how long the open loop sends at its rate before the
	// sends it measures, and each closed-loop level at its concurrency
	// before its measured duration (default 1s; negative: none). The
	// nodes open their database connections and fill their caches, and
	// the client its HTTP connections, during the first tenth of a
	// second at 1,000 sends/s; measured, that start is most of a
	// 5-second run's p99. The warm-up's messages are stored (and, in the
	// open loop, delivered) but not measured (LiveResult.Warmup,
	// ClosedResult.Warmup).
	Warmup time.Duration
	// MaxInFlight bounds the open loop's outstanding sends (default 512);
	// when reached, sends start late and the lateness shows in the
	// latencies, which are measured from each send's scheduled time.
	MaxInFlight int
	// CatchUp caps how many events the catch-up phase reads through
	// GET /api/sync (default 0: all the closed-loop messages).
	CatchUp int
	// PageSize is the sync page size of the catch-up (default 500, the
	// server's maximum).
	PageSize int

	// MessageSize is the plaintext size in bytes (default 100).
	MessageSize int
	// Pool is how many distinct envelopes each sender encrypts and signs
	// before the timed phases (default 256); sends cycle through them, each
	// with a fresh client message id. The server's work per send is the
	// same for a repeated envelope (it parses, verifies and stores each).
	Pool int
	// InlineEncrypt encrypts and signs every envelope in the timed phases
	// instead, so the figures include the sender's client CPU.
	InlineEncrypt bool

	// Uploads, when positive, adds the upload phase (after the others):
	// one text sender (the first sender) sends alone for UploadBaseline,
	// then while Uploads uploads of UploadSize bytes (default 10 MiB) run
	// at once, UploadRounds times (default 1); the report compares its
	// send → answer latencies (UploadResult).
	Uploads        int
	UploadSize     int64
	UploadRounds   int
	UploadBaseline time.Duration // default 3s
	// UploadProcess runs the uploads in a child process of this program
	// (UploadWorkerEnv; a program that uses this package must call
	// RunUploadWorker when it is set), at a lower priority: the uploads
	// then do not share the timing sender's process and take only the
	// CPU the server and the sender leave, as uploads from other
	// machines would.
	UploadProcess bool
	// SendEvery paces the upload phase's text sender: after an answer,
	// its next send waits for the next tick (default 10ms).
	SendEvery time.Duration
	// Metrics is the URL of the server's /metrics, read by the upload
	// phase (default: Server's /metrics; sandi serve serves them there
	// only with --metrics-token, else on --metrics-addr).
	Metrics string
	// BlobDir is the in-process server's blob store directory (default:
	// beside the SQLite file, or a temporary directory).
	BlobDir string

	// RotateAfterMessages is the in-process server's rotation policy
	// (default 1<<30: no rotation during the run; the protocol's default
	// of 100 would make every conversation need a new epoch, a client
	// action this tool does not measure, after 100 messages).
	RotateAfterMessages int

	// Settle, when positive, waits before each timed phase (at most this
	// long) until the rest of the machine has used less than a fifth of a
	// core for a second: on a shared machine, figures then measure sandi
	// rather than its neighbours. Each phase reports what the rest of the
	// machine used while it ran (CPUUse.Others) either way.
	Settle time.Duration

	// CPUProfile, when set, receives a CPU profile of the timed phases.
	// In-process, the server's goroutines carry the pprof label
	// side=server and the load generator's side=client.
	CPUProfile io.Writer
	// Trace, when set, receives a runtime execution trace of the timed
	// phases (go tool trace): where the server's goroutines wait.
	Trace io.Writer
	// Log receives progress lines and the in-process server's warnings.
	Log io.Writer
}

func (c *Config) defaults() {
	if c.Concurrency == nil {
		c.Concurrency = []int{1, 8, 64}
	}
	if c.Senders <= 0 {
		c.Senders = 1
		// Only the loops use more than the first sender.
		for _, n := range c.Concurrency {
			if c.Duration >= 0 || c.Rate >= 0 {
				c.Senders = max(c.Senders, n)
			}
		}
	}
	if c.Duration == 0 {
		c.Duration = 3 * time.Second
	}
	if c.Rate == 0 {
		c.Rate = 1000
	}
	if c.RateDuration == 0 {
		c.RateDuration = 5 * time.Second
	}
	switch {
	case c.Warmup == 0:
		c.Warmup = time.Second
	case c.Warmup < 0:
		c.Warmup = 0
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 512
	}
	if c.PageSize <= 0 {
		c.PageSize = 500
	}
	if c.MessageSize <= 0 {
		c.MessageSize = 100
	}
	if c.Pool <= 0 {
		c.Pool = 256
	}
	if c.UploadSize <= 0 {
		c.UploadSize = 10 << 20
	}
	if c.UploadRounds <= 0 {
		c.UploadRounds = 1
	}
	if c.UploadBaseline <= 0 {
		c.UploadBaseline = 3 * time.Second
	}
	if c.SendEvery <= 0 {
		c.SendEvery = 10 * time.Millisecond
	}
	if c.RotateAfterMessages <= 0 {
		c.RotateAfterMessages = 1 << 30
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Limits that keep a mistyped flag from running for hours.
const (
	maxSenders      = 1000
	maxConcurrency  = 1024
	maxPhase        = 10 * time.Minute
	maxRate         = 100_000
	maxMessageBytes = 64 << 10
	maxPool         = 100_000
)

func (c *Config) check() error {
	switch {
	case c.Senders > maxSenders:
		return fmt.Errorf("at most %d senders", maxSenders)
	case c.Duration > maxPhase || c.RateDuration > maxPhase || c.Warmup > maxPhase:
		return fmt.Errorf("a phase lasts at most %s", maxPhase)
	case c.Rate > maxRate:
		return fmt.Errorf("at most %d sends/s", maxRate)
	case c.MessageSize > maxMessageBytes:
		return fmt.Errorf("messages of at most %d bytes", maxMessageBytes)
	case c.Pool > maxPool:
		return fmt.Errorf("a pool of at most %d envelopes per sender", maxPool)
	case c.Uploads > maxUploads || c.UploadSize > maxUploadBytes || c.UploadRounds > maxUploadRounds:
		return fmt.Errorf("at most %d uploads of at most %d bytes, %d rounds", maxUploads, maxUploadBytes, maxUploadRounds)
	case c.UploadBaseline > maxPhase:
		return fmt.Errorf("a phase lasts at most %s", maxPhase)
	}
	if c.Duration > 0 {
		for _, n := range c.Concurrency {
			if n < 1 || n > maxConcurrency {
				return fmt.Errorf("concurrency levels are 1 to %d", maxConcurrency)
			}
			if n > c.Senders {
				return fmt.Errorf("concurrency %d needs as many senders (have %d)", n, c.Senders)
			}
		}
	}
	if len(c.Servers) > 0 && c.Server == "" {
		return errors.New("more servers need a first one")
	}
	if c.Spread && len(c.Servers) == 0 {
		return errors.New("spread needs more than one server")
	}
	for _, u := range c.Servers {
		if err := checkLoopbackURL(u); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	if c.Server != "" {
		if c.DB != "" {
			return errors.New("a database is for the in-process server; not with a server URL")
		}
		if err := checkLoopbackURL(c.Server); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	if sqlstore.IsPostgres(c.DB) {
		if err := checkLoopbackURL(c.DB); err != nil {
			return fmt.Errorf("database: %w", err)
		}
	} else if c.DB != "" {
		if _, err := os.Stat(c.DB); err == nil {
			return fmt.Errorf("database: %s exists; give the path of a new SQLite file", c.DB)
		}
	}
	return nil
}

// checkLoopbackURL refuses a URL whose host is not a loopback address: the
// tool generates load, and only on this machine.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "" {
		if sqlstore.IsPostgres(raw) {
			return nil // a Unix socket
		}
		return fmt.Errorf("%s: no host", raw)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: only loopback addresses (127.0.0.0/8, ::1, localhost)", host)
	}
	return nil
}

// Run sets up accounts and conversations, then runs the phases in this
// order: closed loop (each concurrency level), catch-up (the receiver reads
// the closed-loop messages through GET /api/sync), open loop with the
// receiver on the WebSocket. It stops early when ctx ends.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.defaults()
	if err := cfg.check(); err != nil {
		return Report{}, err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.Log, "sandi-load: "+format+"\n", args...) }
	rep := Report{Machine: machine(), Senders: cfg.Senders, MessageBytes: cfg.MessageSize, InlineEncrypt: cfg.InlineEncrypt}
	if !cfg.InlineEncrypt {
		rep.Pool = cfg.Pool
	}

	base := cfg.Server
	var dbPIDs func() []int
	diskDir := os.TempDir()
	if base == "" {
		srv, err := startServer(ctx, &cfg, logf)
		if err != nil {
			return rep, err
		}
		defer srv.close()
		base, dbPIDs = srv.url, srv.dbPIDs
		if srv.dir != "" {
			diskDir = srv.dir
		}
		rep.Target, rep.Database, rep.Durability = "in-process", srv.kind, srv.durability
	} else {
		base = strings.TrimSuffix(base, "/")
		rep.Target, rep.Database = base, "(server's)"
	}
	c := newClient(base, logf)
	defer c.close()
	nodes := []*client{c}
	for _, u := range cfg.Servers {
		n := newClient(strings.TrimSuffix(u, "/"), logf)
		defer n.close()
		nodes = append(nodes, n)
	}

	var r *runner
	var err error
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		r, err = setup(ctx, c, &cfg, &rep, logf)
		if err != nil {
			return
		}
		r.dbPIDs, r.diskDir, r.nodes = dbPIDs, diskDir, nodes
		if cfg.CPUProfile != nil {
			if err = pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
				return
			}
			defer pprof.StopCPUProfile()
		}
		if cfg.Trace != nil {
			if err = trace.Start(cfg.Trace); err != nil {
				return
			}
			defer trace.Stop()
		}
		err = r.phases(ctx, &rep)
	})
	if err != nil {
		return rep, err
	}
	for _, u := range r.rcvs {
		n, err := c.stored(ctx, u)
		if err != nil {
			return rep, fmt.Errorf("count stored messages: %w", err)
		}
		rep.Stored += n
	}
	return rep, nil
}

// inProcess is a server the tool started.
type inProcess struct {
	url        string
	kind       string
	durability string
	dir        string // the SQLite file's directory ("" on PostgreSQL)
	dbPIDs     func() []int
	close      func()
}

func startServer(ctx context.Context, cfg *Config, logf func(string, ...any)) (*inProcess, error) {
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	ok := false
	defer func() {
		if !ok {
			cleanup()
		}
	}()
	p := &inProcess{}
	dbURL := cfg.DB
	if sqlstore.IsPostgres(dbURL) {
		fd, err := freshDatabase(ctx, dbURL, cfg.Keep, logf)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, fd.drop)
		dbURL, p.kind, p.durability, p.dbPIDs = fd.url, "postgres", fd.settings, fd.pids
	} else {
		if dbURL == "" {
			dir, err := os.MkdirTemp("", "sandi-load-")
			if err != nil {
				return nil, err
			}
			if cfg.Keep {
				logf("SQLite database kept in %s", dir)
			} else {
				cleanups = append(cleanups, func() { os.RemoveAll(dir) })
			}
			dbURL = filepath.Join(dir, "sandi.db")
		}
		p.kind, p.durability = "sqlite", "synchronous=FULL, journal_mode=WAL (the store's settings)"
		if f := sqlstore.SQLiteFile(dbURL); f != "" {
			p.dir = filepath.Dir(f)
		}
	}

	blobDir := cfg.BlobDir
	if blobDir == "" {
		if p.dir != "" {
			blobDir = filepath.Join(p.dir, "blobs")
		} else {
			dir, err := os.MkdirTemp("", "sandi-load-blobs-")
			if err != nil {
				return nil, err
			}
			cleanups = append(cleanups, func() { os.RemoveAll(dir) })
			blobDir = dir
		}
	}
	blobs, err := fsblob.New(blobDir)
	if err != nil {
		return nil, err
	}

	// The server's goroutines (connections, the send batcher, the database
	// pools) inherit the label of the goroutine that starts them.
	var st *sqlstore.Store
	var hs *http.Server
	var srv *server.Server
	pprof.Do(ctx, pprof.Labels("side", "server"), func(ctx context.Context) {
		st, err = sqlstore.Open(ctx, dbURL, sqlstore.Options{})
		if err != nil {
			return
		}
		cleanups = append(cleanups, func() { st.Close() })
		log := slog.New(slog.NewTextHandler(cfg.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
		srv = server.New(st, log, server.Config{
			RotateAfterMessages: cfg.RotateAfterMessages,
			// Setup registers many accounts at once: no rate limits, and
			// cheap password hashing (logins are not measured).
			RegisterPerMinute: -1, LoginPerMinute: -1, ClaimPerMinute: -1,
			NewContactsPerDay: -1, // its accounts meet for the first time
			Argon2Time:        1, Argon2MemKiB: 64, Argon2Threads: 1,
			Blobs: blobs, BlobUploadsPerMinute: -1,
		})
		cleanups = append(cleanups, srv.Close)
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return
		}
		hs = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		cleanups = append(cleanups, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			hs.Shutdown(sctx)
			hs.Close()
		})
		p.url = "http://" + ln.Addr().String()
	})
	if err != nil {
		return nil, fmt.Errorf("in-process server: %w", err)
	}
	logf("in-process server on %s over %s", p.url, p.kind)
	ok = true
	p.close = cleanup
	return p, nil
}

// pgDatabase is a database made for one run.
type pgDatabase struct {
	url      string
	settings string       // the server's version and durability settings
	drop     func()       // drops it (unless kept) and closes the admin connection
	pids     func() []int // the server's processes, when it runs on this machine
}

// freshDatabase creates a database for one run on the PostgreSQL server of
// adminURL.
func freshDatabase(ctx context.Context, adminURL string, keep bool, logf func(string, ...any)) (*pgDatabase, error) {
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return nil, err
	}
	var fsync, syncCommit, version string
	err = db.QueryRowContext(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('server_version')").Scan(&fsync, &syncCommit, &version)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	name := "sandi_load_" + hex.EncodeToString(rnd[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: create database: %w", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		db.Close()
		return nil, err
	}
	u.Path = "/" + name
	fd := &pgDatabase{url: u.String()}
	fd.drop = func() {
		defer db.Close()
		if keep {
			logf("PostgreSQL database %s kept", name)
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			logf("drop database %s: %v", name, err)
		}
	}
	fd.settings = fmt.Sprintf("PostgreSQL %s, fsync=%s, synchronous_commit=%s", version, fsync, syncCommit)
	if fsync != "on" || (syncCommit != "on" && syncCommit != "remote_apply" && syncCommit != "remote_write") {
		fd.settings += " (NOT durable)"
	}
	// The server's processes: everything pg_stat_activity lists (backends
	// and background processes) and their parent, the postmaster. Only
	// meaningful when the server runs here, which the loopback rule makes
	// likely; a pid that is not there is skipped when sampling.
	fd.pids = func() []int {
		qctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		rows, err := db.QueryContext(qctx, "SELECT pid FROM pg_stat_activity")
		if err != nil {
			return nil
		}
		defer rows.Close()
		var out []int
		for rows.Next() {
			var p int
			if rows.Scan(&p) == nil {
				out = append(out, p)
			}
		}
		if len(out) > 0 {
			if pp := parentPID(out[0]); pp > 1 {
				out = append(out, pp)
			}
		}
		return out
	}
	return fd, nil
}

// runner holds the set-up accounts.
type runner struct {
	c     *client
	nodes []*client // c and Config.Servers' (the open loop spreads over them)
	cfg   *Config
	// rcvs are the receivers: one, or one per node (Spread). Sender i's
	// conversation is with rcvs[i % len(rcvs)]; the first (receiver) is
	// every uploader's, and the one whose stream the catch-up reads.
	rcvs    []*user
	senders []*sender
	// uploaders are the upload phase's accounts, each with a
	// conversation with receiver().
	uploaders []*sender
	pt        []byte
	logf      func(string, ...any)
	// dbPIDs lists the in-process server's PostgreSQL processes (nil
	// otherwise), whose CPU the report counts apart.
	dbPIDs func() []int
	// diskDir is where the disk probe writes: the in-process SQLite
	// file's directory, or the system's temporary directory.
	diskDir string
}

// receiver is the first receiver.
func (r *runner) receiver() *user { return r.rcvs[0] }

// setup registers the receiver and the senders, creates one conversation
// per sender with the receiver, and pre-encrypts the envelope pools.
func setup(ctx context.Context, c *client, cfg *Config, rep *Report, logf func(string, ...any)) (*runner, error) {
	start := time.Now()
	var rnd [4]byte
	rand.Read(rnd[:])
	prefix := "ld" + hex.EncodeToString(rnd[:])
	r := &runner{c: c, cfg: cfg, logf: logf, pt: make([]byte, cfg.MessageSize)}
	copy(r.pt, strings.Repeat("sandi load test message. ", cfg.MessageSize/25+1))
	var err error
	// The receiver's one-time keys: one per conversation while they last,
	// then claims fall back to its signed pre-key.
	receivers := 1
	if cfg.Spread {
		receivers += len(cfg.Servers)
	}
	for k := range receivers {
		name := prefix + "-rcv"
		if k > 0 {
			name += strconv.Itoa(k)
		}
		u, err := c.register(ctx, name, cfg.Senders+1)
		if err != nil {
			return nil, err
		}
		r.rcvs = append(r.rcvs, u)
	}
	logf("setting up %d senders", cfg.Senders)
	for i := range cfg.Senders {
		u, err := c.register(ctx, fmt.Sprintf("%s-s%d", prefix, i), 1)
		if err != nil {
			return nil, err
		}
		s := &sender{idx: i, u: u, to: i % receivers}
		if err := c.createConversation(ctx, s, r.rcvs[s.to]); err != nil {
			return nil, fmt.Errorf("sender %d: %w", i, err)
		}
		r.senders = append(r.senders, s)
	}
	if cfg.Uploads > 0 {
		accounts := (cfg.Uploads + uploadsPerAccount - 1) / uploadsPerAccount
		logf("setting up %d uploading accounts", accounts)
		for i := range accounts {
			u, err := c.register(ctx, fmt.Sprintf("%s-u%d", prefix, i), 1)
			if err != nil {
				return nil, err
			}
			s := &sender{idx: cfg.Senders + i, u: u}
			if err := c.createConversation(ctx, s, r.receiver()); err != nil {
				return nil, fmt.Errorf("uploader %d: %w", i, err)
			}
			r.uploaders = append(r.uploaders, s)
		}
	}
	if !cfg.InlineEncrypt {
		for _, s := range r.senders {
			s.pool = make([]string, cfg.Pool)
			for j := range s.pool {
				if s.pool[j], err = s.encrypt(r.pt); err != nil {
					return nil, err
				}
			}
		}
	}
	env, err := r.senders[0].encrypt(r.pt)
	if err != nil {
		return nil, err
	}
	rep.EnvelopeBytes = len(env) * 3 / 4
	// The receivers' cursors after the setup's events.
	for _, u := range r.rcvs {
		if err := c.syncToEnd(ctx, u, cfg.PageSize); err != nil {
			return nil, err
		}
	}
	rep.SetupSeconds = time.Since(start).Seconds()
	logf("setup done in %.1fs", rep.SetupSeconds)
	return r, nil
}

// settle waits, up to cfg.Settle, for the rest of the machine to be idle.
func (r *runner) settle(ctx context.Context) error {
	if r.cfg.Settle <= 0 {
		return nil
	}
	deadline := time.Now().Add(r.cfg.Settle)
	for {
		s := sampleCPU(r.dbPIDs)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
		use := cpuSince(s)
		if use.Others < 0.2 {
			return nil
		}
		if time.Now().After(deadline) {
			r.logf("the rest of the machine is still using %.2f cores; measuring anyway", use.Others)
			return nil
		}
	}
}

func (r *runner) phases(ctx context.Context, rep *Report) error {
	if r.cfg.Duration > 0 {
		levels := slices.Clone(r.cfg.Concurrency)
		for _, n := range levels {
			if err := r.settle(ctx); err != nil {
				return err
			}
			// The same load, unmeasured, just before: the first level
			// would otherwise measure the nodes' and the client's cold
			// start (connections opened, caches filled), and each
			// higher level the opening of its extra connections.
			var warm *WarmupResult
			if r.cfg.Warmup > 0 {
				w, err := r.closedLoop(ctx, n, r.cfg.Warmup)
				if err != nil {
					return err
				}
				warm = &WarmupResult{Seconds: w.Seconds, Accepted: w.Accepted, Failed: w.Failed}
			}
			res, err := r.closedLoop(ctx, n, r.cfg.Duration)
			if err != nil {
				return err
			}
			res.Warmup = warm
			rep.Closed = append(rep.Closed, res)
			r.logf("closed loop, %d senders: %.0f sends/s", n, res.PerSecond)
		}
	}
	if r.cfg.CatchUp >= 0 {
		if err := r.settle(ctx); err != nil {
			return err
		}
		res, err := r.catchUp(ctx)
		if err != nil {
			return err
		}
		rep.CatchUp = &res
		r.logf("catch-up: %d events, %.0f events/s", res.Events, res.EventsPerSecond)
	}
	if r.cfg.Rate > 0 && r.cfg.RateDuration > 0 {
		if err := r.settle(ctx); err != nil {
			return err
		}
		disk, err := diskSync(r.diskDir, diskWrites)
		if err != nil {
			return err
		}
		res, err := r.openLoop(ctx)
		if err != nil {
			return err
		}
		res.DiskSync = disk
		rep.Live = &res
		r.logf("live at %d sends/s: delivery p50 %.2f ms, p99 %.2f ms", res.Rate, res.Delivery.P50, res.Delivery.P99)
	}
	if r.cfg.Uploads > 0 {
		if err := r.settle(ctx); err != nil {
			return err
		}
		res, err := r.uploadPhase(ctx)
		if err != nil {
			return err
		}
		rep.Upload = &res
		r.logf("uploads: %.0f MiB/s; text sends p99 %.2f ms alone, %.2f ms during the uploads", res.MiBPerSecond, res.Alone.P99, res.During.P99)
	}
	return nil
}

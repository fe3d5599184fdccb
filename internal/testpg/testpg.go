// Package testpg gives tests a real PostgreSQL database: each call of URL
// creates a fresh database on a throwaway cluster that the test binary
// starts once (initdb + postgres from /usr/lib/postgresql/*/bin, on
// 127.0.0.1 and a free port, fsync on) and stops when its tests are done.
//
// A test package that uses it must stop the cluster through TestMain:
//
//	func TestMain(m *testing.M) { testpg.Main(m) }
//
// With SANDI_TEST_POSTGRES_URL set (a postgres:// URL of a role allowed to
// create databases), the databases are made on that server instead and no
// cluster is started. Without it and without the server binaries, the
// test fails: PostgreSQL is part of the test suite, never skipped.
package testpg

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"sandi.dev/internal/testproc"
)

// EnvURL names the environment variable that points the tests at an
// existing server.
const EnvURL = "SANDI_TEST_POSTGRES_URL"

// installHint ends every error about a missing PostgreSQL.
const installHint = "install PostgreSQL: apt-get install -y postgresql; scripts/test.sh does it"

var (
	mainUsed atomic.Bool

	startOnce sync.Once
	cl        *cluster
	startErr  error

	adminMu sync.Mutex
	admin   *sql.DB // connection to the maintenance database, for CREATE/DROP DATABASE
	adminAt string  // its URL
)

// Main runs the tests of a package and then stops the cluster if one was
// started. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Around(m.Run)) }

// Around is Main for a TestMain that uses another such helper too: it
// calls run (m.Run, or the other helper's wrapper of it), stops the
// cluster and returns run's exit code.
func Around(run func() int) int {
	mainUsed.Store(true)
	code := run()
	adminMu.Lock()
	if admin != nil {
		admin.Close()
		admin = nil
	}
	adminMu.Unlock()
	if cl != nil {
		if err := cl.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testpg:", err)
		}
	}
	return code
}

// URL returns the URL of a new, empty database for t, dropped when t ends
// (after the cleanups t registers later, such as closing a store).
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		if !mainUsed.Load() {
			t.Fatal("testpg: the package's TestMain must call testpg.Main(m), which stops the PostgreSQL cluster after the tests")
		}
		startOnce.Do(func() { cl, startErr = start() })
		if startErr != nil {
			t.Fatalf("testpg: %v", startErr)
		}
		base = cl.url("postgres")
	}
	db, err := adminDB(base)
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	name := "t_" + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testpg: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testpg: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testpg: %s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

func adminDB(base string) (*sql.DB, error) {
	adminMu.Lock()
	defer adminMu.Unlock()
	if admin != nil && adminAt == base {
		return admin, nil
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", redact(base), err)
	}
	if admin != nil {
		admin.Close()
	}
	admin, adminAt = db, base
	return db, nil
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// cluster is a running throwaway PostgreSQL.
type cluster struct {
	dir  string // temporary directory: data/, the socket, postgres.log
	port int
	cmd  *exec.Cmd
	done chan error // receives the postgres process's exit

	bin, data string // to start it again (Cluster.Start)
	cred      *syscall.Credential
	halted    bool // halt was called
}

func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// binDir returns the newest /usr/lib/postgresql/<version>/bin holding
// initdb and postgres.
func binDir(root string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(root, "*", "bin"))
	type cand struct {
		dir string
		ver int
	}
	var cs []cand
	for _, d := range dirs {
		if !isExec(filepath.Join(d, "initdb")) || !isExec(filepath.Join(d, "postgres")) {
			continue
		}
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		cs = append(cs, cand{d, v})
	}
	if len(cs) == 0 {
		return "", fmt.Errorf("no PostgreSQL server binaries (initdb, postgres) under %s/*/bin: %s", root, installHint)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ver > cs[j].ver })
	return cs[0].dir, nil
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// start makes and starts a cluster. initdb and postgres refuse to run as
// root, so as root they run as the postgres user the Debian package
// creates, in a directory that user owns.
func start() (*cluster, error) {
	bin, err := binDir("/usr/lib/postgresql")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sandi-pg-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and PostgreSQL refuses root, but there is no postgres user to run it as (%v): %s", err, installHint)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C")
	initdb.Dir = dir
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	initdb.SysProcAttr = testproc.ProcAttr(cred, syscall.SIGINT)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// A port is free when chosen but may be taken before postgres binds
	// it: try a few.
	for attempt := 0; ; attempt++ {
		c, err := launch(bin, dir, data, cred)
		if err == nil {
			ok = true
			return c, nil
		}
		if attempt == 2 {
			return nil, err
		}
	}
}

func launch(bin, dir, data string, cred *syscall.Credential) (*cluster, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return launchOn(bin, dir, data, cred, port)
}

// launchOn starts postgres on data, listening on port.
func launchOn(bin, dir, data string, cred *syscall.Credential, port int) (*cluster, error) {
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir,
		"-c", "fsync=on", // durability stays real: tests check what production does
		"-c", "max_connections=200",
	)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = testproc.ProcAttr(cred, syscall.SIGINT) // SIGINT: a fast shutdown
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &cluster{dir: dir, port: port, cmd: cmd, done: make(chan error, 1), bin: bin, data: data, cred: cred}
	go func() { c.done <- cmd.Wait() }()

	db, err := sql.Open("pgx", c.url("postgres"))
	if err != nil {
		c.stop()
		return nil, err
	}
	defer db.Close()
	if err := testproc.Await("postgres", c.done, logPath, 60*time.Second, db.PingContext); err != nil {
		c.halt()
		return nil, err
	}
	return c, nil
}

// Cluster is a throwaway PostgreSQL cluster of one test's own, which the
// test may stop and start again (a database outage) without disturbing
// the package's shared cluster.
type Cluster struct {
	t  testing.TB
	mu sync.Mutex
	c  *cluster
}

// NewCluster starts a cluster for t alone, removed when t ends. It needs
// the server binaries (SANDI_TEST_POSTGRES_URL does not apply: a shared
// server cannot be stopped).
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := start()
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	cl := &Cluster{t: t, c: c}
	t.Cleanup(func() {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		if err := cl.c.stop(); err != nil {
			t.Errorf("testpg: %v", err)
		}
	})
	return cl
}

// URL returns the URL of the cluster's postgres database.
func (cl *Cluster) URL() string { return cl.c.url("postgres") }

// Stop shuts the cluster down (fast shutdown), keeping its data.
func (cl *Cluster) Stop() {
	cl.t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if err := cl.c.halt(); err != nil {
		cl.t.Fatalf("testpg: %v", err)
	}
}

// Start starts the stopped cluster again on the same port and data.
func (cl *Cluster) Start() {
	cl.t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	c, err := launchOn(cl.c.bin, cl.c.dir, cl.c.data, cl.c.cred, cl.c.port)
	if err != nil {
		cl.t.Fatalf("testpg: start again: %v", err)
	}
	cl.c = c
}

// halt stops the postgres process (fast shutdown: SIGINT), keeping its
// directory.
func (c *cluster) halt() error {
	if c.cmd.Process == nil || c.halted {
		return nil
	}
	c.halted = true
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case werr := <-c.done:
		c.done <- werr
		return nil
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		c.done <- <-c.done
		return errors.New("postgres did not stop within 20s; killed")
	}
}

// stop shuts the cluster down (fast shutdown: SIGINT) and removes its
// directory.
func (c *cluster) stop() error {
	var errs []error
	if err := c.halt(); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// EndConnections has PostgreSQL end every other connection to the
// database at dbURL (pg_terminate_backend, as a restart or an
// administrator does) and fails t if there was none to end. The programs
// holding them find them dead at their next use.
func EndConnections(t testing.TB, dbURL string) {
	t.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("testpg: no connection to the database to end")
	}
}

//go:build !js

package client_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/internal/testpg"
)

func TestMain(m *testing.M) { testpg.Main(m) }

// node is a sandi server on a fixed loopback address over one database; it
// can be stopped and started again on the same address and database, as a
// restart would.
type node struct {
	t    testing.TB
	db   string
	addr string
	cfg  server.Config
	hs   *http.Server
	srv  *server.Server
	st   *sqlstore.Store
	done chan struct{}
}

// dbs are the databases every end-to-end test runs on.
func dbs(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return t.TempDir() + "/sandi.db" },
		"postgres": func(t *testing.T) string { return testpg.URL(t) },
	}
}

func forEachDB(t *testing.T, f func(t *testing.T, n *node)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, dbs(t)[name](t), server.Config{})
			f(t, n)
		})
	}
}

func startNode(t testing.TB, db string, cfg server.Config) *node {
	t.Helper()
	if cfg.Argon2Time == 0 {
		cfg.Argon2Time, cfg.Argon2MemKiB, cfg.Argon2Threads = 1, 64, 1
	}
	if cfg.RegisterPerMinute == 0 {
		cfg.RegisterPerMinute, cfg.LoginPerMinute, cfg.ClaimPerMinute = -1, -1, -1
	}
	if cfg.NewContactsPerDay == 0 {
		cfg.NewContactsPerDay = -1 // scenarios meet many accounts at once
	}
	if cfg.Blobs == nil {
		// As sandi serve: a blob store beside the database, which a link
		// needs (the archive of what the approving device hands over);
		// a database on a server (a URL) gets a directory of its own.
		dir := filepath.Join(filepath.Dir(db), "blobs")
		if strings.Contains(db, "://") {
			dir = t.TempDir()
		}
		st, err := fsblob.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Blobs = st
	}
	n := &node{t: t, db: db, cfg: cfg}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	n.serve(ln)
	t.Cleanup(n.stop)
	return n
}

func (n *node) serve(ln net.Listener) {
	st, err := sqlstore.Open(context.Background(), n.db, sqlstore.Options{})
	if err != nil {
		n.t.Fatal(err)
	}
	n.st = st
	var logw io.Writer = io.Discard
	if os.Getenv("SANDI_TEST_LOG") != "" {
		logw = os.Stderr
	}
	n.srv = server.New(st, slog.New(slog.NewTextHandler(logw, nil)), n.cfg)
	n.hs = &http.Server{Handler: n.srv.Handler()}
	n.done = make(chan struct{})
	go func() {
		defer close(n.done)
		n.hs.Serve(ln)
	}()
}

func (n *node) url() string { return "http://" + n.addr }

// stop shuts the server down (idempotent).
func (n *node) stop() {
	if n.hs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.hs.Shutdown(ctx)
	n.hs.Close()
	<-n.done
	n.srv.Close()
	n.st.Close()
	n.hs = nil
}

// restart stops the server and starts a new one on the same address and
// database.
func (n *node) restart() {
	n.t.Helper()
	n.stop()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatal(err)
	}
	n.serve(ln)
}

// newClient opens a client with its own state directory (dir, or a new
// one if dir is "").
func newClient(t testing.TB, n *node, dir string) *client.Client {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return openClient(t, n, nil, dir)
}

// openClient opens a client whose requests go through rt (nil: the default
// transport) and whose state is kept in dir ("": in memory).
func openClient(t testing.TB, n *node, rt http.RoundTripper, dir string) *client.Client {
	t.Helper()
	var st client.Storage = client.NewMemStorage()
	if dir != "" {
		ds, err := client.NewDirStorage(dir)
		if err != nil {
			t.Fatal(err)
		}
		st = ds
	}
	c, err := client.Open(client.Options{Server: n.url(), Storage: st, HTTPClient: &http.Client{Transport: rt, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// register opens a client with its own state directory and registers
// name on it, with the password "password of "+name.
func register(t testing.TB, n *node, name string) *client.Client {
	t.Helper()
	return registerWith(t, n, name, nil, t.TempDir())
}

// registerWith opens a client as openClient does and registers name on it,
// with the password "password of "+name.
func registerWith(t testing.TB, n *node, name string, rt http.RoundTripper, dir string) *client.Client {
	t.Helper()
	c := openClient(t, n, rt, dir)
	if err := c.Register(context.Background(), name, "password of "+name); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return c
}

// texts syncs c and returns the texts of the new messages of conv.
func syncTexts(t testing.TB, c *client.Client) []string {
	t.Helper()
	res, err := c.Sync(context.Background())
	if err != nil {
		t.Fatalf("%s: sync: %v", c.Username(), err)
	}
	if len(res.Failures) > 0 {
		t.Fatalf("%s: decrypt failures: %v", c.Username(), res.Failures[0])
	}
	var out []string
	for _, m := range res.Messages {
		if m.Type == client.ContentText {
			out = append(out, m.Sender+": "+m.Text)
		}
	}
	return out
}

func serverConfig() server.Config { return server.Config{} }

// hookTransport counts requests by path and calls after once each request
// has been answered.
type hookTransport struct {
	base  http.RoundTripper
	after func(*http.Request)
	mu    sync.Mutex
	seen  map[string]int
}

func (h *hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(r)
	h.mu.Lock()
	if h.seen == nil {
		h.seen = map[string]int{}
	}
	h.seen[r.Method+" "+r.URL.Path]++
	h.mu.Unlock()
	if err == nil && h.after != nil {
		h.after(r)
	}
	return resp, err
}

// count returns how many POSTs went to path.
func (h *hookTransport) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen["POST "+path]
}

// newClientWith opens a client whose requests go through rt, its state
// in memory.
func newClientWith(t testing.TB, n *node, rt http.RoundTripper) *client.Client {
	t.Helper()
	return openClient(t, n, rt, "")
}

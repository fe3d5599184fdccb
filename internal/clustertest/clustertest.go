// Package clustertest runs a cluster of sandi nodes inside a test process:
// several server.Server on loopback listeners over one PostgreSQL
// database, an embedded NATS server on a loopback port, and a reverse
// proxy that spreads requests (WebSocket upgrades included) over the live
// nodes, as a load balancer without sticky sessions would. Only tests
// import it (the NATS server is not part of any sandi binary).
package clustertest

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
)

// NATS is an embedded NATS server on a fixed loopback port, which can be
// stopped and started again on that port.
type NATS struct {
	t    testing.TB
	port int
	mu   sync.Mutex
	srv  *natsserver.Server
}

// StartNATS starts a NATS server on a free loopback port.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n := &NATS{t: t, port: port}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// URL is the server's nats:// URL.
func (n *NATS) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// Start starts the server (again) on its port.
func (n *NATS) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return
	}
	var err error
	for range 50 { // the port may take a moment to be free again
		var s *natsserver.Server
		s, err = natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: n.port, NoLog: true, NoSigs: true})
		if err != nil {
			break
		}
		go s.Start()
		if s.ReadyForConnections(2 * time.Second) {
			n.srv = s
			return
		}
		s.Shutdown()
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("nats server on port %d did not start: %v", n.port, err)
}

// Stop stops the server (idempotent).
func (n *NATS) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// Node is one sandi server of the cluster.
type Node struct {
	c    *Cluster
	Addr string
	Srv  *server.Server
	St   *sqlstore.Store
	hs   *http.Server
	done chan struct{}
	up   bool
}

// URL is the node's own http:// URL (not through the proxy).
func (n *Node) URL() string { return "http://" + n.Addr }

// Cluster is a set of nodes over one database and one NATS server, with a
// proxy in front.
type Cluster struct {
	t     testing.TB
	DB    string
	Cfg   server.Config
	Beat  time.Duration
	NATS  *NATS // nil: the nodes run without NATS
	Nodes []*Node

	mu  sync.Mutex
	rng *rand.Rand
	// ProxyURL is the proxy's http:// URL.
	ProxyURL string
}

// Options configure Start.
type Options struct {
	Nodes  int
	DB     string        // a PostgreSQL URL (testpg.URL)
	Config server.Config // every node's
	NoNATS bool          // nodes alone, sharing only the database
	Beat   time.Duration // the nodes' beat and head poll (default 1 s)
	Seed   uint64        // the proxy's choice of nodes
}

// TestConfig is a server configuration for tests: cheap password hashing
// and no rate limits.
func TestConfig() server.Config {
	return server.Config{Argon2Time: 1, Argon2MemKiB: 64, Argon2Threads: 1,
		RegisterPerMinute: -1, LoginPerMinute: -1, ClaimPerMinute: -1}
}

// Start starts a NATS server (unless NoNATS), the nodes and the proxy; the
// test's cleanup stops them.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, DB: o.DB, Cfg: o.Config, Beat: o.Beat, rng: rand.New(rand.NewPCG(o.Seed, 15))}
	if !o.NoNATS {
		c.NATS = StartNATS(t)
	}
	for range o.Nodes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n := &Node{c: c, Addr: ln.Addr().String()}
		n.serve(ln)
		c.Nodes = append(c.Nodes, n)
	}
	c.startProxy()
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			n.Stop()
		}
	})
	return c
}

func (n *Node) serve(ln net.Listener) {
	c := n.c
	st, err := sqlstore.Open(context.Background(), c.DB, sqlstore.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	var logw io.Writer = io.Discard
	if os.Getenv("SANDI_TEST_LOG") != "" {
		logw = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logw, nil)).With("node", n.Addr)
	srv := server.New(st, log, c.Cfg)
	if c.NATS != nil {
		if err := srv.JoinCluster(server.ClusterOptions{URL: c.NATS.URL(), Beat: c.Beat, Name: n.Addr}); err != nil {
			c.t.Fatal(err)
		}
	}
	n.St, n.Srv = st, srv
	n.hs = &http.Server{Handler: srv.Handler()}
	n.done = make(chan struct{})
	go func() {
		defer close(n.done)
		n.hs.Serve(ln)
	}()
	c.mu.Lock()
	n.up = true
	c.mu.Unlock()
}

// Stop takes the node out of the proxy and stops it: its listener and
// connections are closed at once, WebSockets included (idempotent).
func (n *Node) Stop() {
	n.c.mu.Lock()
	up := n.up
	n.up = false
	n.c.mu.Unlock()
	if !up {
		return
	}
	n.hs.Close()
	<-n.done
	n.Srv.Close()
	n.St.Close()
}

// Restart stops the node and starts it again on the same address.
func (n *Node) Restart() {
	n.c.t.Helper()
	n.Stop()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", n.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		n.c.t.Fatal(err)
	}
	n.serve(ln)
}

// pick returns a live node at random (nil if none is up).
func (c *Cluster) pick() *Node {
	live := c.Live()
	if len(live) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return live[c.rng.IntN(len(live))]
}

// startProxy serves a reverse proxy that sends each request (a WebSocket
// upgrade included) to a live node chosen at random.
func (c *Cluster) startProxy() {
	c.ProxyURL = c.serveProxy(c.pick)
}

// Front returns the URL of a proxy that sends every request to node n
// (a client pinned to one node).
func (c *Cluster) Front(n *Node) string {
	return c.serveProxy(func() *Node {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !n.up {
			return nil
		}
		return n
	})
}

// serveProxy serves a reverse proxy to the node pick chooses for each
// request (502 when it chooses none) until the test ends.
func (c *Cluster) serveProxy(pick func() *Node) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "127.0.0.1:1" // refused: 502
			if n := pick(); n != nil {
				r.Out.URL.Host = n.Addr
			}
			r.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	hs := &http.Server{Handler: rp}
	go hs.Serve(ln)
	c.t.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

// Live returns the nodes that are up.
func (c *Cluster) Live() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var live []*Node
	for _, n := range c.Nodes {
		if n.up {
			live = append(live, n)
		}
	}
	return live
}

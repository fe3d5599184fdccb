package clustertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/testpg"
	"sandi.dev/protocol"
)

func TestMain(m *testing.M) { testpg.Main(m) }

// user is a client of the cluster with its own storage, reaching it
// through url (the proxy, or a front pinned to one node).
func user(t *testing.T, url, name string, register bool) *client.Client {
	t.Helper()
	c, err := client.Open(client.Options{Server: url, Storage: client.NewMemStorage(),
		HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if register {
		if err := c.Register(context.Background(), name, "password of "+name); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
	}
	return c
}

// receiver counts the messages a listening client is handed.
type receiver struct {
	mu    sync.Mutex
	got   map[uint64]int
	fails int
	ch    chan uint64
}

func listen(ctx context.Context, c *client.Client, wg *sync.WaitGroup) *receiver {
	r := &receiver{got: map[uint64]int{}, ch: make(chan uint64, 1024)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.Listen(ctx, func(m client.Message) {
			if m.Type != client.ContentText {
				return
			}
			r.mu.Lock()
			r.got[m.Seq]++
			r.mu.Unlock()
			r.ch <- m.Seq
		}, func(*client.DecryptError) {
			r.mu.Lock()
			r.fails++
			r.mu.Unlock()
		})
	}()
	return r
}

// waitFor waits until r has been handed seq.
func (r *receiver) waitFor(t *testing.T, seq uint64, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		r.mu.Lock()
		n := r.got[seq]
		r.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("message %d not delivered within %v", seq, within)
		}
	}
}

// check fails unless r was handed messages 1..n exactly once each, with no
// decrypt failure.
func (r *receiver) check(t *testing.T, who string, n uint64) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fails > 0 {
		t.Errorf("%s: %d decrypt failures", who, r.fails)
	}
	for seq := uint64(1); seq <= n; seq++ {
		if r.got[seq] != 1 {
			t.Errorf("%s: message %d handed over %d times", who, seq, r.got[seq])
		}
	}
	if len(r.got) != int(n) {
		t.Errorf("%s: %d messages handed over, want %d", who, len(r.got), n)
	}
}

// send sends text, retrying with the same client id while the cluster
// answers with errors (a node going away under the request), so that the
// message is stored once; it returns the message's seq.
func send(t *testing.T, c *client.Client, conv protocol.ConversationID, text string) uint64 {
	t.Helper()
	id := client.NewClientID()
	var err error
	for range 50 {
		var m client.Message
		if m, err = c.SendWithID(context.Background(), conv, id, text); err == nil {
			return m.Seq
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("send %q: %v", text, err)
	return 0
}

// aliceToBob registers alice on c's first node and bob on its second,
// makes their conversation, and listens on bob's side (until ctx ends).
func aliceToBob(ctx context.Context, t *testing.T, c *Cluster, wg *sync.WaitGroup) (*client.Client, protocol.ConversationID, *receiver) {
	alice := user(t, c.Front(c.Nodes[0]), "alice", true)
	bob := user(t, c.Front(c.Nodes[1]), "bob", true)
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return alice, conv, listen(ctx, bob, wg)
}

// While NATS is stopped under a trickle of sends through one node, a
// listener on another node still gets every message (by the nodes' head
// polls), once; when NATS is back the nodes rejoin alone and delivery is
// live again.
func TestClusterNATSOutage(t *testing.T) {
	c := Start(t, Options{Nodes: 3, DB: testpg.URL(t), Config: TestConfig(), Beat: 250 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	alice, conv, r := aliceToBob(ctx, t, c, &wg)
	var n uint64
	trickle := func(k int) {
		for range k {
			n = send(t, alice, conv, fmt.Sprintf("message %d", n+1))
			time.Sleep(50 * time.Millisecond)
		}
	}
	trickle(5)
	r.waitFor(t, n, 5*time.Second)
	c.NATS.Stop()
	stopped := time.Now()
	// A node without NATS is still ready: it delivers by polling.
	for _, up := c.Nodes[1].Srv.ClusterConnected(); up; _, up = c.Nodes[1].Srv.ClusterConnected() {
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get(c.Nodes[1].URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "degraded") {
		t.Fatalf("readyz without NATS: %d %q", resp.StatusCode, body)
	}
	for time.Since(stopped) < 3*time.Second {
		trickle(1)
	}
	r.waitFor(t, n, 5*time.Second) // caught up by polling, NATS still down
	c.NATS.Start()
	for _, node := range c.Nodes {
		deadline := time.Now().Add(10 * time.Second)
		for _, up := node.Srv.ClusterConnected(); !up; _, up = node.Srv.ClusterConnected() {
			if time.Now().After(deadline) {
				t.Fatalf("node %s did not reconnect to NATS", node.Addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	trickle(5)
	r.waitFor(t, n, 5*time.Second)
	r.check(t, "bob", n)
	t.Logf("%d messages, NATS down for %v", n, 3*time.Second)
}

// A node killed while clients are connected through the proxy: they
// reconnect to other nodes and resume from their cursors; every message
// sent (retried until acknowledged) reaches every listener once.
func TestClusterNodeKilled(t *testing.T) {
	c := Start(t, Options{Nodes: 3, DB: testpg.URL(t), Config: TestConfig(), Seed: 3})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	alice := user(t, c.ProxyURL, "alice", true)
	names := []string{"bob", "carol", "dave", "erin"}
	var listeners []*client.Client
	for _, name := range names {
		listeners = append(listeners, user(t, c.ProxyURL, name, true))
	}
	conv, err := alice.CreateConversation(ctx, "", names...)
	if err != nil {
		t.Fatal(err)
	}
	var rs []*receiver
	for _, l := range listeners {
		if _, err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, listen(ctx, l, &wg))
	}
	var n uint64
	for i := range 30 {
		if i == 10 {
			c.Nodes[0].Stop()
		}
		if i == 20 {
			c.Nodes[0].Restart()
			c.Nodes[1].Stop()
		}
		n = send(t, alice, conv, fmt.Sprintf("message %d", i+1))
		time.Sleep(20 * time.Millisecond)
	}
	for i, r := range rs {
		r.waitFor(t, n, 10*time.Second)
		r.check(t, names[i], n)
	}
}

// PostgreSQL stopped under a cluster: every node answers 503 (readiness
// and requests), and recovers alone when it is back; every acknowledged
// message reaches a listener on another node once, and a send refused
// during the outage, retried with its client id, is stored once.
func TestClusterDatabaseOutage(t *testing.T) {
	pg := testpg.NewCluster(t)
	c := Start(t, Options{Nodes: 2, DB: pg.URL(), Config: TestConfig(), Beat: 250 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	alice, conv, r := aliceToBob(ctx, t, c, &wg)
	var n uint64
	for i := range 3 {
		n = send(t, alice, conv, fmt.Sprintf("before %d", i))
	}
	r.waitFor(t, n, 5*time.Second)

	pg.Stop()
	for _, node := range c.Nodes {
		resp, err := http.Get(node.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("node %s: readyz %d with the database down", node.Addr, resp.StatusCode)
		}
	}
	id := client.NewClientID()
	sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
	_, err := alice.SendWithID(sctx, conv, id, "during")
	scancel()
	if !client.IsCode(err, "unavailable") {
		t.Fatalf("a send with the database down: %v, want 503 unavailable", err)
	}
	pg.Start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := alice.SendWithID(ctx, conv, id, "during")
		if err == nil {
			n = m.Seq
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery 30 s after the database came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range 3 {
		n = send(t, alice, conv, fmt.Sprintf("after %d", i))
	}
	r.waitFor(t, n, 10*time.Second)
	r.check(t, "bob", n)
}

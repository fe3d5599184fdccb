package server_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"sandi.dev/internal/clustertest"
	"sandi.dev/internal/server"
	"sandi.dev/internal/testpg"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// clusterBound is the documented time within which a revocation or a
// removal made through one node takes effect on every node of a cluster
// whose NATS server is up (operations.md). A PostgreSQL store remembers
// answers for 2 s and a WebSocket checks its token every 20 s: without
// the cluster's messages, both take longer.
const clusterBound = time.Second

// openCluster starts n servers over one PostgreSQL database, each in the
// cluster of one NATS server, with beats and head polls every beat.
func openCluster(t *testing.T, n int, beat time.Duration) ([]*env, *clustertest.NATS) {
	t.Helper()
	url := testpg.URL(t)
	nats := clustertest.StartNATS(t)
	var es []*env
	for range n {
		e, _ := openEnv(t, url, server.Config{})
		if err := e.srv.JoinCluster(server.ClusterOptions{URL: nats.URL(), Beat: beat}); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es, nats
}

// refusedWithin repeats do until it is refused with status, and fails the
// test if that takes longer than clusterBound from since.
func refusedWithin(t *testing.T, since time.Time, status int, what string, do func() error) {
	t.Helper()
	for {
		var ae *apiError
		err := do()
		if errors.As(err, &ae) && ae.Status == status {
			return
		}
		if err != nil && ae == nil {
			t.Fatal(err)
		}
		if time.Since(since) > clusterBound {
			t.Fatalf("%s %v ago", what, time.Since(since))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// on returns d acting through another node (the same token and keys).
func (d *device) on(e *env) *device {
	c := *d
	c.e = e
	return &c
}

// A message sent through node A reaches WebSockets on nodes B and C at
// once, woken over NATS (their store poll is 20 s away, and their head
// poll an hour).
func TestClusterLiveDelivery(t *testing.T) {
	es, _ := openCluster(t, 3, time.Hour)
	alice, bob := es[0].register("alice"), es[0].register("bob")
	conv, err := alice.create([]*device{bob})
	if err != nil {
		t.Fatal(err)
	}
	bob.events(500)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for _, e := range es[1:] {
		c, err := bob.on(e).dialWS(ctx, nil, bob.cursor)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		conns = append(conns, c)
	}
	for i := range 3 {
		sentAt := time.Now()
		if _, err := alice.send(conv, 1, "across"); err != nil {
			t.Fatal(err)
		}
		for j, c := range conns {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			p, err := readFrame(rctx, c)
			rcancel()
			if err != nil {
				t.Fatalf("send %d: node %d pushed nothing within 5 s: %v", i, j+1, err)
			}
			if len(p.Events) != 1 || p.Events[0].Kind != "message" || p.Events[0].Message.Seq != uint64(i+1) {
				t.Fatalf("send %d: node %d pushed %+v", i, j+1, p)
			}
			if j > 0 {
				continue // the same message: decrypted once
			}
			if text, err := bob.decrypt(p.Events[0]); err != nil || text != "across" {
				t.Fatalf("decrypt: %q %v", text, err)
			}
		}
		t.Logf("send %d: pushed on the other nodes in %v", i, time.Since(sentAt))
	}
}

// A device revoked through node A (logged out, or signed out by its
// account's identity reset) loses access on nodes B and C within
// clusterBound: B had just answered its token (and remembers answers for
// 2 s), and C holds its WebSocket.
func TestClusterRevocation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		revoke func(alice, alice2 *device) error
	}{
		{"logout", func(_, alice2 *device) error { return alice2.do("POST", "/api/auth/logout", nil, nil) }},
		{"identity reset", func(alice, _ *device) error {
			alice.id = secret.NewIdentity()
			return alice.uploadBundle(true)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, _ := openCluster(t, 3, time.Second)
			alice := es[0].register("alice")
			alice2 := es[0].login("alice", alice.id)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ws, err := alice2.on(es[2]).dialWS(ctx, nil, alice2.cursor)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			onB := alice2.on(es[1])
			onB.events(100) // B now remembers the token
			closed := make(chan time.Time, 1)
			go func() {
				for {
					if _, _, err := ws.Read(ctx); err != nil {
						if websocket.CloseStatus(err) == websocket.StatusPolicyViolation {
							closed <- time.Now()
						}
						close(closed)
						return
					}
				}
			}()
			revokedAt := time.Now()
			if err := tc.revoke(alice, alice2); err != nil {
				t.Fatal(err)
			}
			refusedWithin(t, revokedAt, http.StatusUnauthorized, "node B still answers a token revoked through node A", func() error {
				return onB.do("GET", "/api/sync?since=0", nil, nil)
			})
			t.Logf("node B refuses the token %v after the revocation", time.Since(revokedAt))
			select {
			case at, ok := <-closed:
				if !ok {
					t.Fatal("node C's WebSocket ended without the revocation's close")
				}
				t.Logf("node C closed the WebSocket %v after the revocation", at.Sub(revokedAt))
			case <-time.After(clusterBound - time.Since(revokedAt)):
				t.Fatalf("node C still holds the WebSocket of a device revoked through node A %v ago", time.Since(revokedAt))
			}
		})
	}
}

// A member removed through node A loses access to the conversation on
// node B within clusterBound, though B had just answered its membership.
func TestClusterRemovedMember(t *testing.T) {
	es, _ := openCluster(t, 2, time.Second)
	alice, bob := es[0].register("alice"), es[0].register("bob")
	conv, err := alice.create([]*device{bob})
	if err != nil {
		t.Fatal(err)
	}
	bobB := bob.on(es[1])
	path := "/api/conversations/" + conv.String()
	bobB.must("GET", path, nil, nil) // B now remembers the members
	removedAt := time.Now()
	if err := alice.change(conv, protocol.OpRemove, nil, []protocol.UserID{bob.user}); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, removedAt, http.StatusNotFound, "node B still shows the conversation to a member removed through node A", func() error {
		return bobB.do("GET", path, nil, nil)
	})
	t.Logf("node B refuses the removed member %v after the removal", time.Since(removedAt))
}

// Read your writes across nodes, with NATS down (so no message to forget
// arrives): a member added through node A is let in on node B at once,
// though B remembered the members without it; a device that uploaded its
// keys through A is let in on B at once, though B remembered it keyless.
func TestClusterReadYourWrites(t *testing.T) {
	es, nats := openCluster(t, 2, time.Second)
	alice, bob, carol := es[0].register("alice"), es[0].register("bob"), es[0].register("carol")
	conv, err := alice.create([]*device{carol})
	if err != nil {
		t.Fatal(err)
	}
	bobB := bob.on(es[1])
	path := "/api/conversations/" + conv.String()
	if r := es[1].raw(nil, bobB.token, "GET", path, nil); r.status != http.StatusNotFound {
		t.Fatalf("a non-member's GET: %d", r.status)
	}
	alice2 := es[0].login("alice", nil) // no keys yet
	if r := es[1].raw(nil, alice2.token, "GET", "/api/me", nil); r.status != http.StatusOK {
		t.Fatalf("GET /api/me: %d", r.status)
	}
	nats.Stop()
	if err := alice.change(conv, protocol.OpAdd, []protocol.Member{bob.member(protocol.RoleMember)}, nil); err != nil {
		t.Fatal(err)
	}
	if r := es[1].raw(nil, bobB.token, "GET", path, nil); r.status != http.StatusOK {
		t.Fatalf("node B answers %d to a member added through node A", r.status)
	}
	alice2.id = alice.id
	if err := alice2.uploadBundle(false); err != nil {
		t.Fatal(err)
	}
	if r := es[1].raw(nil, alice2.token, "GET", "/api/keys/count", nil); r.status != http.StatusOK {
		t.Fatalf("node B answers %d to a device whose keys were uploaded through node A", r.status)
	}
}

// A wake-up's event mark (the newest event id of the commit it announces)
// is a hint that a publisher on NATS can forge. A node that delivers from
// a message stored through a server outside the cluster, woken only by
// forged wake-ups: one naming an event never drawn delivers the message
// at once, without a read giving up on the head (the reader falls back to
// a round of its own); one naming an old event, then a plain one, lose
// and repeat nothing.
func TestClusterForgedWakeEvent(t *testing.T) {
	url := testpg.URL(t)
	ns := clustertest.StartNATS(t)
	node, _ := openEnv(t, url, server.Config{})
	if err := node.srv.JoinCluster(server.ClusterOptions{URL: ns.URL(), Beat: time.Hour}); err != nil {
		t.Fatal(err)
	}
	outside, _ := openEnv(t, url, server.Config{}) // wakes nobody on node
	alice, bob := outside.register("alice"), outside.register("bob")
	conv, err := alice.create([]*device{bob})
	if err != nil {
		t.Fatal(err)
	}
	bob.events(500)
	// The socket's catch-up pushes this one: once it is read, the socket
	// is idle, and only the wake-ups below make it read again.
	if _, err := alice.send(conv, 1, "zero"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, err := bob.on(node).dialWS(ctx, nil, bob.cursor)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	pub, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var seq uint64
	forge := func(at uint64) {
		seq++
		b := []byte{1, 1, 'f', 'o', 'r', 'g', 'e', 'r', 0, 0} // version, wake, node
		b = binary.BigEndian.AppendUint64(b, seq)
		b = append(b, bob.user[:]...)
		if at > 0 {
			b = append(b, 's', 'a', 'n', 'd', 'i', 0, 'a', 't')
			b = binary.BigEndian.AppendUint64(b, at)
		}
		if err := pub.Publish("sandi.cluster", b); err != nil {
			t.Fatal(err)
		}
		if err := pub.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	read := func(what string) pageAnswer {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		p, err := readFrame(rctx, ws)
		if err != nil {
			t.Fatalf("%s: nothing pushed within 10 s (the socket's poll is 20 s away): %v", what, err)
		}
		return p
	}
	if p := read("the catch-up"); len(p.Events) != 1 || p.Events[0].Message == nil || p.Events[0].Message.Seq != 1 {
		t.Fatalf("catch-up frame: %+v", p)
	}
	late := node.metricOr0("sandi_stream_head_late_total")
	if _, err := alice.send(conv, 1, "one"); err != nil {
		t.Fatal(err)
	}
	forge(math.MaxInt64)
	p := read("woken for an event never drawn")
	if len(p.Events) != 1 || p.Events[0].Message == nil || p.Events[0].Message.Seq != 2 {
		t.Fatalf("frame: %+v", p)
	}
	if v := node.metricOr0("sandi_stream_head_late_total"); v != late {
		t.Fatalf("a read woken for an event never drawn gave up on the head (%v reads): it waited for the forged event", v-late)
	}
	// An old event, one the socket has sent already: the socket does
	// not read (the message waits for a wake-up of its own); a plain
	// wake-up after it delivers the message, once.
	reads := func(result string) float64 {
		return node.metricOr0("sandi_websocket_reads_total", "result", result)
	}
	delivered, read0 := reads("delivered"), reads("events")+reads("empty")
	if _, err := alice.send(conv, 1, "two"); err != nil {
		t.Fatal(err)
	}
	forge(1)
	eventually(t, 10*time.Second, "the wake-up for an event sent already is taken", func() bool { return reads("delivered") > delivered })
	if n := reads("events") + reads("empty") - read0; n != 0 {
		t.Fatalf("a wake-up naming an event the socket had sent made it read the store (%v reads)", n)
	}
	forge(0)
	p2 := read("woken by a plain wake-up after a stale one")
	if len(p2.Events) != 1 || p2.Events[0].Message == nil || p2.Events[0].Message.Seq != 3 {
		t.Fatalf("frame: %+v, want message 3 alone", p2)
	}
	if text, err := bob.decrypt(p.Events[0]); err != nil || text != "one" {
		t.Fatalf("decrypt: %q %v", text, err)
	}
}

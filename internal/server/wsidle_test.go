package server_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sandi.dev/internal/server"
)

// An idle WebSocket holds one goroutine on the server, its reader: the
// catch-up after the handshake, a push after a send and the periodic ping
// run on goroutines that end when they are done. The test's own side adds
// one goroutine a socket (each reads, which answers the pings); slack
// covers the HTTP connections and timers of the test and the server.
func TestIdleWebSocketGoroutines(t *testing.T) {
	const n, slack = 40, 12
	e := serveReal(t, server.Config{MaxWebSocketsPerDevice: n, MaxWebSocketsPerAccount: n,
		WebSocketPing: 500 * time.Millisecond, WebSocketPongWait: 5 * time.Second})
	alice, bob := e.register("alice"), e.register("bob")
	conv, err := alice.create([]*device{bob})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.epoch(conv, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := runtime.NumGoroutine()
	bound := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for g := runtime.NumGoroutine(); g > base+2*n+slack; g = runtime.NumGoroutine() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d goroutines, %d before the %d sockets opened: more than one a socket on each side", what, g, base, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	var pings, frames atomic.Int64
	for range n {
		// From the start: each socket catches up on the conversation's
		// creation events first.
		c, _, err := websocket.Dial(ctx, e.wsURL(0), &websocket.DialOptions{
			HTTPHeader:     map[string][]string{"Authorization": {"Bearer " + bob.token}},
			OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		c.SetReadLimit(16 << 20)
		go func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
				frames.Add(1)
			}
		}()
	}
	eventually(t, 5*time.Second, "every socket open and caught up", func() bool {
		return e.metricOr0("sandi_websockets_open") == n && frames.Load() >= n
	})
	bound("goroutines after the catch-up")

	caught := frames.Load()
	if _, err := alice.send(conv, 1, "to every socket"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the message pushed to every socket", func() bool { return frames.Load() >= caught+n })
	bound("goroutines after a push")

	eventually(t, 10*time.Second, "every socket pinged twice", func() bool { return pings.Load() >= 2*n })
	bound("goroutines after the pings")
	if v := e.metricOr0("sandi_websockets_open"); v != n {
		t.Fatalf("%v sockets open after the pings, want %d", v, n)
	}
}

// After authenticating a client sends nothing but control frames: a data
// frame, small or over the read limit, closes its socket with a policy
// violation and frees the socket's place at once. (With the library's
// CloseRead, the reader's own close waited 15 s for the reader to end.)
func TestWebSocketDataFrameCloses(t *testing.T) {
	e := serveReal(t, server.Config{})
	alice := e.register("alice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		frame []byte
		want  websocket.StatusCode
	}{
		{[]byte(`{"hello": 1}`), websocket.StatusPolicyViolation},
		{make([]byte, 8<<10), websocket.StatusPolicyViolation},
	} {
		ws, err := alice.dialWS(ctx, nil, alice.cursor)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Second, "the socket counted", func() bool { return e.metricOr0("sandi_websockets_open") == 1 })
		if err := ws.Write(ctx, websocket.MessageText, c.frame); err != nil {
			t.Fatal(err)
		}
		_, _, err = ws.Read(ctx)
		if got := websocket.CloseStatus(err); got != c.want {
			t.Fatalf("%d-byte data frame: read %v (close status %v), want %v", len(c.frame), err, got, c.want)
		}
		ws.CloseNow()
		eventually(t, 3*time.Second, "the socket's place freed", func() bool { return e.metricOr0("sandi_websockets_open") == 0 })
	}
}

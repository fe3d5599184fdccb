//go:build !js

package client_test

import (
	"context"
	"testing"
	"time"

	"sandi.dev/internal/server"
)

// TestListenReportsConnection: OnConnection hears Listen's WebSocket come
// up, drop when the server stops, and come up again when it is back; a
// Listen ended by its context reports no drop.
func TestListenReportsConnection(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	c := register(t, n, "alice")
	states := make(chan bool, 64)
	c.OnConnection(func(up bool) { states <- up })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Listen(ctx, nil, nil)
	}()
	want := func(up bool) {
		t.Helper()
		for {
			select {
			case s := <-states:
				if s == up {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no report of the connection up=%v", up)
			}
		}
	}
	want(true)
	n.stop()
	want(false)
	n.restart()
	want(true)
	cancel()
	<-done
	select {
	case s := <-states:
		t.Fatalf("after the end of Listen: up=%v reported", s)
	default:
	}
}

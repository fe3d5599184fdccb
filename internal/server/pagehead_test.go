package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"sandi.dev/internal/server"
)

// TestPageHead: every page, of GET /api/sync and of a WebSocket, names a
// head at least its last event's id (a client that finds the head below
// its cursor takes the store for rolled back), on PostgreSQL where it is
// the node's settled head as on SQLite; a page without events names the
// newest event stored.
func TestPageHead(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := alice.send(conv, 1, fmt.Sprintf("m%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		check := func(how string, p pageAnswer) {
			t.Helper()
			if n := len(p.Events); n > 0 && p.Head < p.Events[n-1].ID {
				t.Fatalf("%s: head %d below the page's last event %d", how, p.Head, p.Events[n-1].ID)
			}
			if p.Head < p.Cursor {
				t.Fatalf("%s: head %d below the page's cursor %d", how, p.Head, p.Cursor)
			}
		}
		var last int64
		for cursor, pages := int64(0), 0; ; pages++ {
			var p pageAnswer
			bob.must("GET", fmt.Sprintf("/api/sync?since=%d&limit=2", cursor), nil, &p)
			check("GET /api/sync", p)
			if len(p.Events) == 0 {
				if p.Head != last {
					t.Fatalf("an empty page names head %d, the newest event is %d", p.Head, last)
				}
				break
			}
			last, cursor = p.Events[len(p.Events)-1].ID, p.Cursor
			if pages > 20 {
				t.Fatal("the stream does not end")
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ws, err := bob.dialWS(ctx, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		for seen := int64(0); seen < last; {
			p, err := readFrame(ctx, ws)
			if err != nil {
				t.Fatal(err)
			}
			check("a WebSocket's catch-up", p)
			seen = p.Cursor
		}
		sent, err := alice.send(conv, 1, "live")
		if err != nil {
			t.Fatal(err)
		}
		for got := false; !got; {
			p, err := readFrame(ctx, ws)
			if err != nil {
				t.Fatal(err)
			}
			check("a live frame", p)
			for _, ev := range p.Events {
				got = got || ev.Kind == "message" && ev.Seq == sent.Seq
			}
		}
	})
}

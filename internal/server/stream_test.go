package server_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"testing"
	"time"

	"sandi.dev/internal/server"
	"sandi.dev/internal/testpg"
)

// TestStreamHeadStuck: on PostgreSQL, a transaction of another program
// that holds a transaction id open holds every new event back (a reader
// must not pass ids that it may still commit). The node exports how far
// and how long, reports itself not ready once the wait passes
// StreamStuckAfter, and once the transaction ends delivers what it held
// back to the sockets that were woken for it in vain, and is ready again.
func TestStreamHeadStuck(t *testing.T) {
	url := testpg.URL(t)
	e, _ := openEnv(t, url, server.Config{StreamStuckAfter: 300 * time.Millisecond})
	alice, bob := e.register("alice"), e.register("bob")
	conv, err := alice.create([]*device{bob})
	if err != nil {
		t.Fatal(err)
	}
	bob.events(500)
	if r := e.raw(nil, "", "GET", "/readyz", nil); r.status != http.StatusOK {
		t.Fatalf("/readyz: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, err := bob.dialWS(ctx, nil, bob.cursor)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	other, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.send(conv, 1, "held"); err != nil {
		t.Fatal(err)
	}
	if evs := bob.events(500); len(evs) != 0 {
		t.Fatalf("bob read %v while an older transaction was open", kindsOf(evs))
	}
	eventually(t, 10*time.Second, "/readyz answers 503 while the head is held", func() bool {
		return e.raw(nil, "", "GET", "/readyz", nil).status == http.StatusServiceUnavailable
	})
	e.raw(nil, "", "GET", "/readyz", nil).wantProblem(t, http.StatusServiceUnavailable, server.CodeUnavailable)
	if v := e.metricOr0("sandi_stream_head_behind"); v <= 0 {
		t.Fatalf("sandi_stream_head_behind %v while an event is held back", v)
	}
	if v := e.metricOr0("sandi_stream_head_wait_seconds"); v < 0.3 {
		t.Fatalf("sandi_stream_head_wait_seconds %v, want 0.3 at least", v)
	}
	if v := e.metricOr0("sandi_stream_head_late_total"); v < 1 {
		t.Fatalf("sandi_stream_head_late_total %v after a read gave up waiting for the head", v)
	}
	// While the head is held the node keeps checking whether its
	// observation has settled (more slowly), without new observations
	// unless a reader needs one.
	if v := e.metricOr0("sandi_stream_head_observations_total"); v < 1 {
		t.Fatalf("sandi_stream_head_observations_total %v after reads on PostgreSQL", v)
	}
	before := e.metricOr0("sandi_stream_head_checks_total")
	eventually(t, 10*time.Second, "checks of the held head", func() bool {
		return e.metricOr0("sandi_stream_head_checks_total") > before
	})

	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	p, err := readFrame(rctx, ws)
	rcancel()
	if err != nil {
		t.Fatalf("the held message did not reach the socket once the transaction ended: %v", err)
	}
	if len(p.Events) != 1 || p.Events[0].Kind != "message" {
		t.Fatalf("frame: %+v", p)
	}
	if text, err := bob.decrypt(p.Events[0]); err != nil || text != "held" {
		t.Fatalf("decrypt: %q %v", text, err)
	}
	eventually(t, 10*time.Second, "/readyz answers 200 once the transaction ended", func() bool {
		return e.raw(nil, "", "GET", "/readyz", nil).status == http.StatusOK
	})
}

// TestStreamCatchUpWaitsOnce: a socket more than a page behind reads its
// pages after the first up to the head settled already, without waiting
// for the head again: the first read's wait covered every event
// committed before it, and a commit after it wakes the socket anew. With
// a transaction of another program holding the head while newer events
// are drawn, each wait gives up after a quarter of a second, so a wait
// per page would make a backlog of many pages seconds late (counted here
// by the reads that gave up).
func TestStreamCatchUpWaitsOnce(t *testing.T) {
	url := testpg.URL(t)
	e, _ := openEnv(t, url, server.Config{RotateAfterMessages: 1 << 20})
	alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
	conv, err := alice.create([]*device{bob})
	if err != nil {
		t.Fatal(err)
	}
	other, err := alice.create([]*device{carol})
	if err != nil {
		t.Fatal(err)
	}
	bob.events(500)
	const n = 2*200 + 10 // three pages of the socket
	for i := range n {
		if _, err := alice.send(conv, 1, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A sync settles the head past the messages before the hold.
	start := bob.cursor
	if evs := bob.events(500); len(evs) < n {
		t.Fatalf("bob read %d events, want %d messages", len(evs), n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	// An event after the hold: every read now waits for it in vain.
	if _, err := alice.send(other, 1, "to carol"); err != nil {
		t.Fatal(err)
	}
	late := e.metricOr0("sandi_stream_head_late_total")
	ws, err := bob.dialWS(ctx, nil, start)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	got, frames := 0, 0
	for got < n {
		p, err := readFrame(ctx, ws)
		if err != nil {
			t.Fatalf("after %d messages in %d frames: %v", got, frames, err)
		}
		frames++
		for _, ev := range p.Events {
			if ev.Kind == "message" {
				got++
			}
		}
	}
	if frames < 3 {
		t.Fatalf("%d messages in %d frames, want pages of 200", got, frames)
	}
	if d := e.metricOr0("sandi_stream_head_late_total") - late; d != 1 {
		t.Errorf("catching up %d frames waited for the head %v times, want once", frames, d)
	}
}

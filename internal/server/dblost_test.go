package server_test

import (
	"net/http"
	"testing"

	"sandi.dev/internal/server"
	"sandi.dev/internal/testpg"
)

// TestPostgresConnectionLost: PostgreSQL ends the server's connections
// (pg_terminate_backend, as a restart or an administrator does) before
// each request, which then runs on a pooled connection that is dead
// while the database answers. A message is stored all the same; every
// other request, a write, a read or a sync, succeeds or is answered 503
// unavailable with Retry-After, never 500.
func TestPostgresConnectionLost(t *testing.T) {
	url := testpg.URL(t)
	e := newEnv(t, url, server.Config{})
	alice, bob := e.register("alice"), e.register("bob")
	conv, err := alice.create([]*device{bob})
	if err != nil {
		t.Fatal(err)
	}
	kill := func() { testpg.EndConnections(t, url) }
	if _, err := alice.send(conv, 1, "before"); err != nil {
		t.Fatal(err)
	}
	kill()
	if _, err := alice.send(conv, 1, "after the connections ended"); err != nil {
		t.Fatalf("a send on a connection PostgreSQL ended: %v", err)
	}
	requests := []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/blocks", alice.statement(bob, true, 1000, nil)},
		{"GET", "/api/conversations", nil},
		{"GET", "/api/conversations/" + conv.String() + "/messages", nil},
		{"GET", "/api/sync?since=0", nil},
		{"GET", "/api/blocks", nil},
	}
	unavailable := 0
	for _, rq := range requests {
		// A request first, so that the pool's connections were used
		// within the second in which it hands them out unchecked.
		e.raw(nil, alice.token, "GET", "/api/me", nil)
		kill()
		r := e.raw(nil, alice.token, rq.method, rq.path, rq.body)
		switch {
		case r.status < 300:
		case r.status == http.StatusServiceUnavailable:
			r.wantProblem(t, http.StatusServiceUnavailable, server.CodeUnavailable)
			if r.header.Get("Retry-After") == "" {
				t.Errorf("%s %s: 503 without Retry-After", rq.method, rq.path)
			}
			unavailable++
		default:
			t.Errorf("%s %s on a connection PostgreSQL ended: %d %s, want success or 503", rq.method, rq.path, r.status, r.body)
		}
	}
	t.Logf("%d of %d requests answered 503", unavailable, len(requests))
}

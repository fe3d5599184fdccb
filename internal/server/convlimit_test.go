package server_test

import (
	"net/http"
	"testing"
	"time"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
)

// convsAnswer is the answer of GET /api/conversations, ids only.
type convsAnswer struct {
	Conversations []struct{ ID protocol.ConversationID } `json:"conversations"`
}

// TestConversationRateLimit: an account creates conversations and
// changes their members and state at most ConversationsPerMinute times a
// minute, from all its devices together: one more is 429 rate_limited
// with Retry-After and stores nothing; another account is not held back;
// a minute later the account goes on. Every route of the limit counts.
func TestConversationRateLimit(t *testing.T) {
	const limit = 3
	e := newEnv(t, t.TempDir()+"/sandi.db", server.Config{ConversationsPerMinute: limit})
	alice, bob := e.register("alice"), e.register("bob")
	other := e.login("alice", alice.id)
	conv := mustCreate(t, alice, bob)
	for range limit - 2 {
		mustCreate(t, alice, bob)
	}
	mustCreate(t, other, bob) // the account's third, from its other device
	var before convsAnswer
	alice.must("GET", "/api/conversations", nil, &before)
	_, err := other.create([]*device{bob})
	wantCode(t, err, http.StatusTooManyRequests, server.CodeRateLimited)
	_, err = alice.create([]*device{bob})
	wantCode(t, err, http.StatusTooManyRequests, server.CodeRateLimited)
	var after convsAnswer
	alice.must("GET", "/api/conversations", nil, &after)
	if len(after.Conversations) != len(before.Conversations) || len(after.Conversations) != limit {
		t.Fatalf("refused creations stored conversations: %d before, %d after, want %d", len(before.Conversations), len(after.Conversations), limit)
	}
	mustCreate(t, bob, alice) // another account has its own allowance

	for _, route := range []struct{ method, path string }{
		{"POST", "/api/conversations/" + conv.String() + "/members"},
		{"DELETE", "/api/conversations/" + conv.String() + "/members/" + bob.user.String()},
		{"PUT", "/api/conversations/" + conv.String() + "/state"},
		{"POST", "/api/conversations"},
	} {
		e.clock.now = e.clock.now.Add(time.Minute) // a full allowance again
		for range limit {                          // refused or not, each takes a token
			if r := e.raw(nil, alice.token, route.method, route.path, map[string]string{}); r.status == http.StatusTooManyRequests {
				t.Fatalf("%s %s: 429 within the limit", route.method, route.path)
			}
		}
		r := e.raw(nil, alice.token, route.method, route.path, map[string]string{})
		r.wantProblem(t, http.StatusTooManyRequests, server.CodeRateLimited)
		if h := r.header.Get("Retry-After"); h == "" || h == "0" {
			t.Fatalf("%s %s: 429 with Retry-After %q", route.method, route.path, h)
		}
	}
	e.clock.now = e.clock.now.Add(time.Minute)
	mustCreate(t, alice, bob)
}

func mustCreate(t *testing.T, d *device, others ...*device) protocol.ConversationID {
	t.Helper()
	conv, err := d.create(others)
	if err != nil {
		t.Fatalf("%s creates a conversation: %v", d.name, err)
	}
	return conv
}

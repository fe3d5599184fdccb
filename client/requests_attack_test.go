//go:build !js

package client_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestServerHidesAddRecord: mallory, a stranger to alice, starts a
// conversation with carol and then adds alice. The server serves alice's
// device the chain without the add (a prefix that verifies, where alice is
// no member), then the add at her next sync, hoping the device decides on
// the prefix and never again. The conversation is still a request: the
// device decides when its verified chain first names its account.
func TestServerHidesAddRecord(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	p := newProxy(t, n)
	alice := clientVia(t, p)
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	mallory := register(t, n, "mallory")
	register(t, n, "carol")
	conv, err := mallory.CreateConversation(ctx, "", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := mallory.AddMembers(ctx, conv, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.Send(ctx, conv, "hello alice"); err != nil {
		t.Fatal(err)
	}
	hide := func(r *http.Request, body map[string]any) {
		if r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/records") && r.URL.Query().Get("from") == "0" {
			if recs, ok := body["records"].([]any); ok && len(recs) > 1 {
				body["records"] = recs[:len(recs)-1]
			}
		}
	}
	p.set(hide)
	alice.Sync(ctx) // the prefix: the conversation may or may not be listed yet
	p.set(nil)
	syncTexts(t, alice)
	if req, err := alice.IsRequest(conv); err != nil || !req {
		t.Fatalf("mallory's conversation after the server hid the add: request = %v, %v; want a request", req, err)
	}
	if r := requestIDs(t, alice); len(r) != 1 || r[0] != conv {
		t.Fatalf("requests = %v; want %s", r, conv)
	}
}

//go:build !js

package client_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"sandi.dev/client"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// forgeRekey is the malicious server: it appends to conv's chain a rekey of
// user to a key it holds (signed by that key alone, as any rekey without
// the old key's co-signature is), writing straight to its database.
func forgeRekey(t *testing.T, n *node, conv protocol.ConversationID, user protocol.UserID, key *secret.IdentityPrivateKey) {
	t.Helper()
	rk := &protocol.Record{Op: protocol.OpRekey, Author: user, Members: []protocol.Member{{User: user, Identity: key.Public(), Role: protocol.RoleMember}}}
	appendRecord(t, n, conv, rk, func(rec *protocol.Record) { secret.SignRecord(key, rec) })
}

func wantText(t *testing.T, c *client.Client, want string) {
	t.Helper()
	if got := syncTexts(t, c); !slices.Contains(got, want) {
		t.Fatalf("%s read %q, want %q among them", c.Username(), got, want)
	}
}

// TestForgedRekeyRekeyBack: the server forges a rekey of a conversation's
// only admin. The admin can no longer add members (nor can the server's
// key); the real admin rekeys back, co-signed by the key it still holds,
// and adds a member, who reads what it sends next.
func TestForgedRekeyRekeyBack(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	alice, bob, carol := register(t, n, "alice"), register(t, n, "bob"), register(t, n, "carol")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "before"); err != nil {
		t.Fatal(err)
	}
	wantText(t, bob, "alice: before")

	forgeRekey(t, n, conv, alice.UserID(), secret.NewIdentity())
	if err := alice.AddMembers(ctx, conv, "carol"); err == nil {
		t.Fatal("alice adds after the forged rekey demoted her")
	}
	if err := alice.RekeyBack(ctx, nil); err != nil {
		t.Fatalf("rekey back: %v", err)
	}
	if err := alice.AddMembers(ctx, conv, "carol"); err != nil {
		t.Fatalf("add after rekeying back: %v", err)
	}
	if _, err := alice.Send(ctx, conv, "carol is in"); err != nil {
		t.Fatal(err)
	}
	wantText(t, carol, "alice: carol is in")
	wantText(t, bob, "alice: carol is in")
}

// TestResetIdentityKeepsAdmin: a reset on a device that holds the old key
// co-signs its rekeys with it, so the only admin stays admin.
func TestResetIdentityKeepsAdmin(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	alice, bob, carol := register(t, n, "alice"), register(t, n, "bob"), register(t, n, "carol")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := alice.IdentityKey()
	if err := alice.ResetIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	if after, _ := alice.IdentityKey(); after.Equal(before) {
		t.Fatal("the identity did not change")
	}
	if err := alice.AddMembers(ctx, conv, "carol"); err != nil {
		t.Fatalf("add after a co-signed reset: %v", err)
	}
	if _, err := alice.Send(ctx, conv, "after the reset"); err != nil {
		t.Fatal(err)
	}
	wantText(t, carol, "alice: after the reset")
	wantText(t, bob, "alice: after the reset")
}

// TestRekeyBackWithOldSeed: a reset made on a device without the old key
// demotes the account; given the old seed later, RekeyBack restores the
// role.
func TestRekeyBackWithOldSeed(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	dir := t.TempDir()
	alice := newClient(t, n, dir)
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	register(t, n, "bob")
	carol := register(t, n, "carol")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	alice.Close() // one process (here: client) per state directory
	st, err := client.NewDirStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := st.Get("identity")
	if err != nil {
		t.Fatal(err)
	}
	fresh := newClient(t, n, "")
	if err := fresh.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if err := fresh.ResetIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fresh.AddMembers(ctx, conv, "carol"); err == nil {
		t.Fatal("a reset without the old key kept admin")
	}
	if err := fresh.RekeyBack(ctx, seed); err != nil {
		t.Fatalf("rekey back with the old seed: %v", err)
	}
	if err := fresh.AddMembers(ctx, conv, "carol"); err != nil {
		t.Fatalf("add after rekeying back: %v", err)
	}
	if _, err := fresh.Send(ctx, conv, "restored"); err != nil {
		t.Fatal(err)
	}
	wantText(t, carol, "alice: restored")
}

// TestSmallOrderGenesisRefused: on bob's first contact with a conversation,
// the server serves a genesis record that names alice with the identity
// point as her key, "signed" with R = identity, S = 0, a signature that
// verifies for every message under that key. Bob's client refuses the
// record itself (at decode), as a server's misbehaviour.
func TestSmallOrderGenesisRefused(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	alice := register(t, n, "alice")
	bob := registerVia(t, p, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "hello"); err != nil {
		t.Fatal(err)
	}
	var weak protocol.IdentityKey
	weak[0] = 1
	var universal [protocol.SignatureSize]byte
	universal[0] = 1
	served := 0
	p.set(func(r *http.Request, body map[string]any) {
		if !strings.HasSuffix(r.URL.Path, "/records") {
			return
		}
		recs := body["records"].([]any)
		g, err := protocol.ParseRecord(unb64u(t, recs[0]))
		if err != nil || g.Seq != 0 {
			return
		}
		for i := range g.Members {
			if g.Members[i].User == alice.UserID() {
				g.Members[i].Identity = weak
			}
		}
		g.Signature = universal
		recs[0] = b64u(g.Marshal())
		served++
	})
	_, err = bob.Sync(ctx)
	if err == nil {
		_, err = bob.Send(ctx, conv, "to alice")
	}
	wantMisbehaved(t, err)
	if served == 0 || !strings.Contains(err.Error(), "small order") {
		t.Fatalf("refused for another reason (%d forged records served): %v", served, err)
	}
	wantAlarm(t, bob, conv, client.AlarmServerData)
}

// TestForgedCosignatureRefused: the server appends to bob's view of the
// chain a rekey of alice, the admin, to a key of its own, "co-signed" by
// another key of its own and claiming admin. Bob's client refuses the
// chain, as the server's misbehaviour, and raises an alarm.
func TestForgedCosignatureRefused(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	alice := register(t, n, "alice")
	bob := registerVia(t, p, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	forged, other := secret.NewIdentity(), secret.NewIdentity()
	p.set(func(r *http.Request, body map[string]any) {
		if !strings.HasSuffix(r.URL.Path, "/records") {
			return
		}
		recs := body["records"].([]any)
		last, err := protocol.ParseRecord(unb64u(t, recs[len(recs)-1]))
		if err != nil {
			t.Error(err)
			return
		}
		rk := &protocol.Record{Op: protocol.OpRekeyCosigned, Conversation: conv, Seq: last.Seq + 1, Prev: last.Hash(), Author: alice.UserID(),
			Members: []protocol.Member{{User: alice.UserID(), Identity: forged.Public(), Role: protocol.RoleAdmin}}}
		secret.SignRekey(forged, other, rk)
		body["records"] = append(recs, b64u(rk.Marshal()))
	})
	_, err = bob.Send(ctx, conv, "for alice")
	wantMisbehaved(t, err)
	if !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("refused for another reason: %v", err)
	}
	wantAlarm(t, bob, conv, client.AlarmBadSignature)
}

//go:build !js

package client_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The three defects of the system sandi started from, as a user meets them.

// Defect 1: after a device uploads its keys, others find the account's
// public key at once, also after a reset, and never a stale one.
func TestDefectStalePublicKey(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		bob := register(t, n, "bob")
		alice := register(t, n, "alice") // keys uploaded with the account
		if _, err := bob.FindUser(ctx, "alice"); err != nil {
			t.Fatalf("alice's public key right after registering: %v", err)
		}
		conv, err := bob.CreateConversation(ctx, "", "alice")
		if err != nil {
			t.Fatal(err)
		}
		// A reset from a new device: the new key is served at once, the
		// conversation goes on with it, and bob is warned.
		fresh := newClient(t, n, "")
		if err := fresh.Login(ctx, "alice", "password of alice"); err != nil {
			t.Fatal(err)
		}
		if err := fresh.ResetIdentity(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, conv, "still there?"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, fresh); !slices.Equal(got, []string{"bob: still there?"}) {
			t.Fatalf("alice's new device read %q", got)
		}
		if _, err := alice.Send(ctx, conv, "old device"); err == nil {
			t.Fatal("the reset left the old device signed in")
		}
	})
}

// Defect 2: no conversation exists without keys for every member device.
// A device that appears between the claim and the write makes the server
// refuse the whole write; the client claims again and succeeds, and no
// half-made conversation is ever listed.
func TestDefectGhostConversation(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		bob := register(t, n, "bob")
		var once sync.Once
		// alice's client talks through a transport that, right after her
		// first claim, links a second device to bob.
		tr := &hookTransport{base: http.DefaultTransport, after: func(r *http.Request) {
			if r.URL.Path == "/api/keys/claim" {
				once.Do(func() {
					bob2 := newClient(t, n, "")
					if err := bob2.Login(ctx, "bob", "password of bob"); err != nil {
						t.Error(err)
						return
					}
					code, err := bob2.StartLink(ctx)
					if err == nil {
						_, err = bob.ApproveLink(ctx, code)
					}
					if err == nil {
						err = bob2.WaitLink(ctx, 0)
					}
					if err != nil {
						t.Error(err)
					}
				})
			}
		}}
		alice := registerWith(t, n, "alice", tr, "")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		if tr.count("/api/conversations") < 2 {
			t.Fatalf("the first create was not refused (%d creates)", tr.count("/api/conversations"))
		}
		convs, err := bob.Conversations(ctx)
		if err != nil || len(convs) != 1 || convs[0].ID != conv {
			t.Fatalf("bob lists %+v %v", convs, err)
		}
		if _, err := alice.Send(ctx, conv, "both of your devices"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: both of your devices"}) {
			t.Fatalf("bob read %q", got)
		}
	})
}

// Defect 3: every epoch after a rotation carries an initiator ephemeral key
// for every member device, made by a member's client: messages after each
// rotation decrypt on every device.
func TestDefectRotatedSession(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob, carol := register(t, n, "alice"), register(t, n, "bob"), register(t, n, "carol")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{}
		for i, step := range []func() error{
			func() error { return nil },
			func() error { return alice.AddMembers(ctx, conv, "carol") },
			func() error { return alice.RemoveMembers(ctx, conv, "carol") },
			func() error { return alice.AddMembers(ctx, conv, "carol") },
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
			text := strings.Repeat("x", i+1)
			if _, err := bob.Send(ctx, conv, text); err != nil {
				t.Fatalf("after step %d: %v", i, err)
			}
			want = append(want, "bob: "+text)
		}
		if got := syncTexts(t, alice); !slices.Equal(got, want) {
			t.Fatalf("alice read %q, want %q", got, want)
		}
		// carol was a member for the 2nd and 4th messages only.
		if got := syncTexts(t, carol); !slices.Equal(got, []string{want[1], want[3]}) {
			t.Fatalf("carol read %q", got)
		}
		if s := bob.Stats(); s.Rotations+s.AdoptedEpochs < 3 {
			t.Fatalf("bob made %d rotations", s.Rotations)
		}
	})
}

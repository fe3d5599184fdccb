//go:build !js

package client_test

import (
	"context"
	"slices"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// TestSessions: a login with the password is announced to the account's
// devices as a warning, listed as a keyless session, reads nothing of the
// account, and is signed out by a linked device or by a password change
// that signs out the others; the old password then no longer signs in.
func TestSessions(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob := register(t, n, "alice"), register(t, n, "bob")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, conv, "metadata"); err != nil {
			t.Fatal(err)
		}
		syncTexts(t, alice)
		if ws, err := alice.Warnings(); err != nil || len(ws) != 0 {
			t.Fatalf("warnings before any login: %+v, %v", ws, err)
		}

		snoop := newClient(t, n, "")
		if err := snoop.Login(ctx, "alice", "password of alice"); err != nil {
			t.Fatal(err)
		}
		syncTexts(t, alice)
		ws, err := alice.Warnings()
		if err != nil || len(ws) != 1 || ws[0].Kind != client.WarnSessionAdded || ws[0].Device != snoop.DeviceID() || ws[0].User != alice.UserID() {
			t.Fatalf("after a login, alice's warnings = %+v, %v; want one session_added naming %s", ws, err, snoop.DeviceID())
		}

		// The keyless session sees only itself.
		ss, err := snoop.Sessions(ctx)
		if err != nil || len(ss) != 1 || !ss[0].Current || !ss[0].Keyless {
			t.Fatalf("keyless session lists %+v, %v", ss, err)
		}
		ss, err = alice.Sessions(ctx)
		if err != nil || len(ss) != 2 {
			t.Fatalf("alice lists %+v, %v", ss, err)
		}
		i := slices.IndexFunc(ss, func(s client.Session) bool { return s.Device == snoop.DeviceID() })
		j := slices.IndexFunc(ss, func(s client.Session) bool { return s.Current })
		if i < 0 || j < 0 || !ss[i].Keyless || !ss[i].SignOut || ss[j].Keyless || !ss[j].Listed || ss[j].SignOut {
			t.Fatalf("alice lists %+v", ss)
		}
		if _, err := snoop.SignOutSession(ctx, alice.DeviceID().String()); err == nil {
			t.Fatal("a keyless session signed out a linked device")
		}
		if _, err := alice.SignOutSession(ctx, alice.DeviceID().String()[:6]); err == nil {
			t.Fatal("signed itself out as a session")
		}

		if _, err := alice.SignOutSession(ctx, snoop.DeviceID().String()[:8]); err != nil {
			t.Fatal(err)
		}
		if _, err := snoop.Sessions(ctx); !client.IsCode(err, "unauthenticated") {
			t.Fatalf("a signed-out session lists: %v", err)
		}

		// A password change that signs out the other sessions.
		snoop2 := newClient(t, n, "")
		if err := snoop2.Login(ctx, "alice", "password of alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.ChangePassword(ctx, "not the password", "a new password", true); !client.IsCode(err, "bad_credentials") {
			t.Fatalf("a wrong current password: %v", err)
		}
		revoked, err := alice.ChangePassword(ctx, "password of alice", "a new password", true)
		if err != nil || !slices.Equal(revoked, []protocol.DeviceID{snoop2.DeviceID()}) {
			t.Fatalf("ChangePassword revoked %v, %v; want %s", revoked, err, snoop2.DeviceID())
		}
		if _, err := snoop2.Sessions(ctx); !client.IsCode(err, "unauthenticated") {
			t.Fatalf("a session signed out by the password change lists: %v", err)
		}
		if err := newClient(t, n, "").Login(ctx, "alice", "password of alice"); !client.IsCode(err, "bad_credentials") {
			t.Fatalf("the old password: %v", err)
		}
		if err := newClient(t, n, "").Login(ctx, "alice", "a new password"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Send(ctx, conv, "still here"); err != nil {
			t.Fatal(err)
		}
	})
}

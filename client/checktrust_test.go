//go:build !js

package client_test

import (
	"context"
	"errors"
	"testing"

	"sandi.dev/client"
)

// TestCheckTrust: CheckTrust says, without sending, what a send would
// meet: nothing before a verified contact's reset, the contact's
// *IdentityError (pending) after it, and nothing once the new key is
// accepted. It is what the web client disables its composer on.
func TestCheckTrust(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob := register(t, n, "alice"), register(t, n, "bob")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		syncTexts(t, bob)
		if err := bob.CheckTrust(conv); err != nil {
			t.Fatalf("before any change: %v", err)
		}
		verify(t, bob, alice)
		alice2 := newClient(t, n, "")
		if err := alice2.Login(ctx, "alice", "password of alice"); err != nil {
			t.Fatal(err)
		}
		if err := alice2.ResetIdentity(ctx); err != nil {
			t.Fatal(err)
		}
		syncTexts(t, bob)
		err = bob.CheckTrust(conv)
		wantNotAccepted(t, err, alice.UserID())
		var ie *client.IdentityError
		if !errors.As(err, &ie) || !ie.Pending || ie.Own || ie.Conversation != conv || ie.Username != "alice" {
			t.Fatalf("CheckTrust: %#v", ie)
		}
		// The same error as the send it predicts.
		_, serr := bob.Send(ctx, conv, "still you?")
		if serr == nil || serr.Error() != err.Error() {
			t.Fatalf("send says %v, CheckTrust %v", serr, err)
		}
		if _, _, err := bob.AcceptIdentity("alice"); err != nil {
			t.Fatal(err)
		}
		if err := bob.CheckTrust(conv); err != nil {
			t.Fatalf("after accepting: %v", err)
		}
	})
}

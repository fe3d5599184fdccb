//go:build !js

package client_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"sandi.dev/client"
)

// TestLinkDevice: a second device of alice gets her identity key through a
// code she confirms on her first device, then reads and sends in her
// conversations; bob's device sees one account, two devices.
func TestLinkDevice(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob := register(t, n, "alice"), register(t, n, "bob")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, conv, "before the second device"); err != nil {
			t.Fatal(err)
		}
		phone := newClient(t, n, "")
		if err := phone.Login(ctx, "alice", "password of alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := phone.Send(ctx, conv, "no keys yet"); err == nil {
			t.Fatal("a device without the identity key could send")
		}
		code, err := phone.StartLink(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A wrong code confirms nothing.
		if _, err := alice.ApproveLink(ctx, "AAAA-AAAA-AAAA-AAAA-AAAA"); err == nil {
			t.Fatal("a wrong code was accepted")
		}
		dev, err := alice.ApproveLink(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		if dev != phone.DeviceID() {
			t.Fatalf("approved %s, want %s", dev, phone.DeviceID())
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := phone.WaitLink(wctx, 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		pk, ok := phone.IdentityKey()
		ak, _ := alice.IdentityKey()
		if !ok || pk != ak {
			t.Fatal("the linked device does not hold alice's identity key")
		}
		devs, err := alice.Devices(ctx)
		if err != nil || len(devs) != 2 {
			t.Fatalf("alice's devices: %+v %v", devs, err)
		}
		// The new device makes the conversation rotate; messages after that
		// reach both of alice's devices.
		if _, err := bob.Send(ctx, conv, "hello both alices"); err != nil {
			t.Fatal(err)
		}
		if _, err := phone.Send(ctx, conv, "from alice's phone"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, phone); !slices.Equal(got, []string{"bob: hello both alices"}) {
			t.Fatalf("phone read %q", got)
		}
		if got := syncTexts(t, alice); !slices.Equal(got, []string{"bob: before the second device", "bob: hello both alices", "alice: from alice's phone"}) {
			t.Fatalf("alice read %q", got)
		}
		if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: from alice's phone"}) {
			t.Fatalf("bob read %q", got)
		}
		if s := bob.Stats(); len(s.DecryptFailed) != 0 {
			t.Fatalf("bob's failures: %v", s.DecryptFailed)
		}
	})
}

// TestResetIdentity: with no device at hand, a reset gives the account a new
// identity; contacts are warned and keep talking to it.
func TestResetIdentity(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob := register(t, n, "alice"), register(t, n, "bob")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		before, _, err := bob.SafetyNumber(ctx, "alice")
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
		if _, err := alice.Send(ctx, conv, "old device"); err == nil {
			t.Fatal("the old device still works after the reset")
		}
		if _, err := fresh.Send(ctx, conv, "new identity"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: new identity"}) {
			t.Fatalf("bob read %q", got)
		}
		ws, err := bob.Warnings()
		if err != nil || !slices.ContainsFunc(ws, func(w client.Warning) bool { return w.Kind == client.WarnIdentityChanged }) {
			t.Fatalf("bob's warnings: %+v %v", ws, err)
		}
		after, _, err := bob.SafetyNumber(ctx, "alice")
		if err != nil || after == before {
			t.Fatalf("safety number unchanged after a reset: %v", err)
		}
	})
}

//go:build !js

package client_test

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// Messages held for a pending identity key (protocol.md §10.1 "Held
// messages"): nothing sent by a contact whose new key waits for the user is
// lost; it is shown once the user accepts the key, dropped if the user
// rejects it.

// resetAlice has alice reset her identity from a new device (a rekey the
// old key did not co-sign: pending on the devices that verified her) and
// returns that device.
func resetAlice(t *testing.T, n *node, name string) *client.Client {
	t.Helper()
	a2 := newClient(t, n, "")
	if err := a2.Login(context.Background(), name, "password of "+name); err != nil {
		t.Fatal(err)
	}
	if err := a2.ResetIdentity(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a2
}

func mustSend(t *testing.T, c *client.Client, conv protocol.ConversationID, text string) client.Message {
	t.Helper()
	m, err := c.Send(context.Background(), conv, text)
	if err != nil {
		t.Fatalf("%s sends %q: %v", c.Username(), text, err)
	}
	return m
}

// TestHeldThenAccepted: bob verified alice; alice resets her identity and
// writes in two conversations, one where she makes the new epoch (its
// creator's key is pending) and one where carol made it (the sender's key
// is pending). Bob holds the three messages, shows none, and after
// AcceptIdentity has them in his history in seq order with the right
// sender; the next Sync reports them.
func TestHeldThenAccepted(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob, carol := register(t, n, "alice"), register(t, n, "bob"), register(t, n, "carol")
		two, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		three, err := alice.CreateConversation(ctx, "", "bob", "carol")
		if err != nil {
			t.Fatal(err)
		}
		mustSend(t, alice, two, "before")
		syncTexts(t, bob)
		syncTexts(t, carol)
		verify(t, bob, alice)

		alice2 := resetAlice(t, n, "alice")
		m1 := mustSend(t, alice2, two, "new key, same alice")
		m2 := mustSend(t, alice2, two, "second")
		mustSend(t, carol, three, "carol first")
		m3 := mustSend(t, alice2, three, "alice in carol's epoch")

		res, err := bob.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var held []uint64
		for _, h := range res.Held {
			held = append(held, h.Seq)
		}
		if len(res.Failures) != 0 || len(held) != 3 || !slices.Contains(held, m1.Seq) || !slices.Contains(held, m3.Seq) {
			t.Fatalf("failures %+v, held %+v", res.Failures, res.Held)
		}
		for _, m := range res.Messages {
			if m.SenderID == alice.UserID() {
				t.Fatalf("shown before the key was accepted: %+v", m)
			}
		}
		if hm, err := bob.HeldMessages(); err != nil || len(hm) != 3 || hm[0].Username != "alice" {
			t.Fatalf("held messages %+v %v", hm, err)
		}
		if got := historyTexts(t, bob, two); !slices.Equal(got, []string{"alice: before"}) {
			t.Fatalf("history before accepting: %q", got)
		}
		if st := bob.Stats(); len(st.DecryptFailed) != 0 || st.Held != 3 {
			t.Fatalf("stats %+v", st)
		}

		if _, _, err := bob.AcceptIdentity("alice"); err != nil {
			t.Fatal(err)
		}
		if got := historyTexts(t, bob, two); !slices.Equal(got, []string{"alice: before", "alice: new key, same alice", "alice: second"}) {
			t.Fatalf("history after accepting: %q", got)
		}
		if got := historyTexts(t, bob, three); !slices.Equal(got, []string{"carol: carol first", "alice: alice in carol's epoch"}) {
			t.Fatalf("history after accepting: %q", got)
		}
		hist, _ := bob.History(two)
		if last := hist[len(hist)-1]; last.SenderID != alice.UserID() || last.Seq != m2.Seq {
			t.Fatalf("released message %+v", last)
		}
		res, err = bob.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, m := range res.Messages {
			seqs = append(seqs, m.Seq)
		}
		if len(res.Failures) != 0 || !slices.Equal(seqs, []uint64{m1.Seq, m2.Seq, m3.Seq}) && !slices.Equal(seqs, []uint64{m3.Seq, m1.Seq, m2.Seq}) {
			t.Fatalf("the sync after accepting reported %+v, failures %+v", res.Messages, res.Failures)
		}
		if hm, err := bob.HeldMessages(); err != nil || len(hm) != 0 {
			t.Fatalf("still held %+v %v", hm, err)
		}
		if st := bob.Stats(); len(st.DecryptFailed) != 0 {
			t.Fatalf("failures counted %v", st.DecryptFailed)
		}
		// Nothing is released twice, and the conversation goes on.
		mustSend(t, alice2, two, "and on")
		if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: and on"}) {
			t.Fatalf("bob read %q", got)
		}
	})
}

// TestHeldThenRejected: the same change, rejected: the held message is
// dropped, never shown, and counted as a failure.
func TestHeldThenRejected(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	dir := t.TempDir()
	alice, bob := register(t, n, "alice"), newClient(t, n, dir)
	if err := bob.Register(ctx, "bob", "password of bob"); err != nil {
		t.Fatal(err)
	}
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	verify(t, bob, alice)
	alice2 := resetAlice(t, n, "alice")
	mustSend(t, alice2, conv, "is it me?")
	res, err := bob.Sync(ctx)
	if err != nil || len(res.Held) != 1 || len(res.Failures) != 0 {
		t.Fatalf("sync: %+v %v", res, err)
	}
	// Held in storage: a restarted client still holds it.
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	bob = newClient(t, n, dir)
	if hm, err := bob.HeldMessages(); err != nil || len(hm) != 1 {
		t.Fatalf("held after a restart %+v %v", hm, err)
	}
	if err := bob.RejectIdentity("alice"); err != nil {
		t.Fatal(err)
	}
	if hm, err := bob.HeldMessages(); err != nil || len(hm) != 0 {
		t.Fatalf("still held %+v %v", hm, err)
	}
	if got := historyTexts(t, bob, conv); len(got) != 0 {
		t.Fatalf("history %q", got)
	}
	if st := bob.Stats(); st.DecryptFailed["identity_not_accepted"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	res, err = bob.Sync(ctx)
	if err != nil || len(res.Messages) != 0 || len(res.Failures) != 1 || res.Failures[0].Reason != "identity_not_accepted" {
		t.Fatalf("sync after rejecting: %+v %v", res, err)
	}
}

// TestHeldBound: a device holds at most client.MaxHeld messages; the next
// one is a failure, as every such message was before holding existed.
func TestHeldBound(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	open := func() *client.Client {
		c, err := client.Open(client.Options{Server: n.url(), Storage: client.NewMemStorage()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob, alice2 := open(), open(), open()
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if err := bob.Register(ctx, "bob", "password of bob"); err != nil {
		t.Fatal(err)
	}
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	verify(t, bob, alice)
	if err := alice2.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if err := alice2.ResetIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range client.MaxHeld + 1 {
		mustSend(t, alice2, conv, "m"+strconv.Itoa(i))
	}
	res, err := bob.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Held) != client.MaxHeld || len(res.Failures) != 1 || res.Failures[0].Reason != "identity_not_accepted" {
		t.Fatalf("held %d, failures %+v", len(res.Held), res.Failures)
	}
	if _, _, err := bob.AcceptIdentity("alice"); err != nil {
		t.Fatal(err)
	}
	if got := historyTexts(t, bob, conv); len(got) != client.MaxHeld || got[0] != "alice: m0" || got[len(got)-1] != "alice: m"+strconv.Itoa(client.MaxHeld-1) {
		t.Fatalf("history has %d messages: first %q", len(got), got[:min(len(got), 1)])
	}
}

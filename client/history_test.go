//go:build !js

package client_test

import (
	"context"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// unreadIn returns c's unread count of conv.
func unreadIn(t *testing.T, c *client.Client, conv protocol.ConversationID) int {
	t.Helper()
	convs, err := c.Conversations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, cv := range convs {
		if cv.ID == conv {
			return cv.Unread
		}
	}
	t.Fatalf("%s does not list %s", c.Username(), conv)
	return 0
}

// TestUnreadCounts: only texts from other accounts are unread: not a
// title, not what the account's other device sent; MarkReadThrough leaves
// unread what came after its mark, and a mark does not move back.
func TestUnreadCounts(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	phone, code := startLinked(t, n)
	if _, err := alice.ApproveLink(ctx, code); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, phone, alice)
	conv, err := bob.CreateConversation(ctx, "lunch", "alice")
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, s := range []struct {
		from *client.Client
		text string
	}{{bob, "one"}, {phone, "from alice's phone"}, {bob, "two"}, {bob, "three"}} {
		m, err := s.from.Send(ctx, conv, s.text)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, m.Seq)
	}
	syncTexts(t, alice)
	if got := unreadIn(t, alice, conv); got != 3 {
		t.Fatalf("unread %d; want 3 (bob's texts, not the title nor the phone's)", got)
	}
	if err := alice.MarkReadThrough(conv, seqs[2]); err != nil {
		t.Fatal(err)
	}
	if got := unreadIn(t, alice, conv); got != 1 {
		t.Fatalf("unread %d after marking through %q; want 1", got, "two")
	}
	if err := alice.MarkReadThrough(conv, seqs[0]); err != nil {
		t.Fatal(err)
	}
	if got := unreadIn(t, alice, conv); got != 1 {
		t.Fatalf("unread %d after an older mark; want it unchanged, 1", got)
	}
	if err := alice.MarkRead(conv); err != nil {
		t.Fatal(err)
	}
	if err := alice.MarkReadThrough(conv, seqs[0]); err != nil {
		t.Fatal(err)
	}
	if got := unreadIn(t, alice, conv); got != 0 {
		t.Fatalf("unread %d after MarkRead and an older mark; want 0", got)
	}
}

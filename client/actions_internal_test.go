package client

import (
	"fmt"
	"testing"

	"sandi.dev/protocol"
)

// foldActions bounds what a message gathers, applies an action that came
// before its target, and ignores an edit or delete by another account.
func TestFoldActionsRules(t *testing.T) {
	alice, bob := protocol.NewUserID(), protocol.NewUserID()
	const target = "AAAAAAAAAAAAAAAA"
	hist := []Message{{Seq: 1, Type: ContentEdit, Target: target, Text: "early", SenderID: alice}}
	hist = append(hist, Message{Seq: 2, Type: ContentText, Text: "orig", Ref: target, SenderID: alice, Sender: "alice", SentAt: 7})
	for i := range MaxEdits + 5 {
		hist = append(hist, Message{Seq: uint64(3 + i), Type: ContentEdit, Target: target, Text: fmt.Sprint("v", i), SenderID: alice, SentAt: int64(100 + i)})
	}
	hist = append(hist, Message{Seq: 1000, Type: ContentEdit, Target: target, Text: "bob's", SenderID: bob})
	for i := range MaxReactionKinds + 3 {
		hist = append(hist, Message{Seq: uint64(2000 + i), Type: ContentReaction, Target: target, Text: fmt.Sprint("e", i), SenderID: protocol.NewUserID(), Sender: fmt.Sprint("u", i)})
	}
	out := foldActions(hist)
	if len(out) != 1 {
		t.Fatalf("view has %d messages, want the target only", len(out))
	}
	m := out[0]
	// The early edit counts as the first; the MaxEdits-th is the last applied.
	if want := fmt.Sprint("v", MaxEdits-2); m.Text != want || !m.Edited || m.Sender != "alice" || m.SentAt != 7 {
		t.Fatalf("after %d edits: %+v, want text %q, sender and time unchanged", MaxEdits+6, m, want)
	}
	if len(m.Reactions) != MaxReactionKinds {
		t.Fatalf("%d kinds of reaction, want at most %d", len(m.Reactions), MaxReactionKinds)
	}
	out = foldActions(append(hist, Message{Seq: 3000, Type: ContentDelete, Target: target, SenderID: bob}))
	if out[0].Deleted {
		t.Fatal("a delete by another account was applied")
	}
	out = foldActions(append(hist, Message{Seq: 3000, Type: ContentDelete, Target: target, SenderID: alice}))
	if m := out[0]; !m.Deleted || m.Text != "" || m.Reactions != nil || m.Edited {
		t.Fatalf("deleted: %+v", m)
	}
}

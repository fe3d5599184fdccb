//go:build !js

package client_test

import (
	"context"
	"slices"
	"testing"

	"sandi.dev/client"
	"sandi.dev/internal/server"
)

// TestTimelineLines: membership changes, a rename and a timer change made
// by several members appear, for a member that follows along, as lines
// between the messages, where the change reached it; a member's lines
// name who did what; a member's new identity key is a line too.
func TestTimelineLines(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	carol, dave := register(t, n, "carol"), register(t, n, "dave")
	conv, err := alice.CreateConversation(ctx, "trip", "bob")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		syncTexts(t, bob)
	}
	step("send", func() error { _, err := alice.Send(ctx, conv, "one"); return err }())
	step("add", alice.AddMembers(ctx, conv, "carol", "dave"))
	step("rename", bob.Rename(ctx, conv, "summer trip"))
	syncTexts(t, carol)
	step("send", func() error { _, err := carol.Send(ctx, conv, "two"); return err }())
	step("timer", carol.SetTimer(ctx, conv, 3600))
	step("remove", alice.RemoveMembers(ctx, conv, "dave"))
	syncTexts(t, carol)
	step("leave", carol.Leave(ctx, conv))
	_ = dave
	// alice resets her identity from a new device and writes: bob's
	// device meets the new key, and says so in the conversation.
	a2 := resetAlice(t, n, "alice")
	if _, err := a2.Send(ctx, conv, "new key"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	items, err := bob.Timeline(conv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		if it.Line != nil {
			got = append(got, it.Line.Text())
		} else {
			got = append(got, it.Message.Sender+": "+it.Message.Text)
		}
	}
	want := []string{
		"alice: one",
		"alice added carol and dave",
		"bob renamed the conversation to \"summer trip\"",
		"carol: two",
		"carol set disappearing messages to 1 hour",
		"alice removed dave",
		"carol left",
		"the identity key of alice changed: compare safety numbers",
		"alice: new key",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("bob's timeline:\n%q\nwant\n%q", got, want)
	}
	if l, err := bob.Lines(conv); err != nil || len(l) != 6 {
		t.Fatalf("bob's lines: %d, %v; want 6", len(l), err)
	}
	if s := client.FormatTimer(90061); s != "1 day 1 hour 1 minute 1 second" {
		t.Fatalf("FormatTimer(90061) = %q", s)
	}
}

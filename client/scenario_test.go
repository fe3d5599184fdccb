//go:build !js

package client_test

import (
	"context"
	"slices"
	"testing"
)

// TestGroupScenario is the user story: three people in a group, one is
// removed, the others keep talking, the server restarts in the middle and
// nothing is lost.
func TestGroupScenario(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob, carol := register(t, n, "alice"), register(t, n, "bob"), register(t, n, "carol")
		conv, err := alice.CreateConversation(ctx, "friends", "bob", "carol")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Send(ctx, conv, "hi all"); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, conv, "hi alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := carol.Send(ctx, conv, "hello from carol"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, alice); !slices.Equal(got, []string{"bob: hi alice", "carol: hello from carol"}) {
			t.Fatalf("alice read %q", got)
		}
		if got := syncTexts(t, carol); !slices.Equal(got, []string{"alice: hi all", "bob: hi alice"}) {
			t.Fatalf("carol read %q", got)
		}
		convs, err := bob.Conversations(ctx)
		if err != nil || len(convs) != 1 || convs[0].Title != "" && convs[0].Title != "friends" {
			t.Fatalf("bob lists %+v %v", convs, err)
		}

		if err := alice.RemoveMembers(ctx, conv, "carol"); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, conv, "carol is gone"); err != nil {
			t.Fatal(err)
		}
		n.restart()
		if _, err := alice.Send(ctx, conv, "after the restart"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: hi all", "carol: hello from carol", "alice: after the restart"}) {
			t.Fatalf("bob read %q", got)
		}
		if got := syncTexts(t, alice); !slices.Equal(got, []string{"bob: carol is gone"}) {
			t.Fatalf("alice read %q", got)
		}
		if got := syncTexts(t, carol); len(got) != 0 {
			t.Fatalf("carol, removed, read %q", got)
		}
		if _, err := carol.Send(ctx, conv, "let me in"); err == nil {
			t.Fatal("a removed member could send")
		}
		// Titles travel encrypted and set the conversation's name.
		convs, err = bob.Conversations(ctx)
		if err != nil || len(convs) != 1 || convs[0].Title != "friends" {
			t.Fatalf("bob lists %+v %v", convs, err)
		}
		// Safety numbers agree on both sides.
		a, _, err := alice.SafetyNumber(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := bob.SafetyNumber(ctx, "alice")
		if err != nil || a != b || len(a) != 71 {
			t.Fatalf("safety numbers %q %q %v", a, b, err)
		}
	})
}

//go:build !js

package client_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"sandi.dev/client"
)

// TestLostAnswersStoredOnce: the server stores a message with an
// attachment, then a reaction, but every answer to the posts is lost on
// the way back (the SDK's own retries included), so the application does
// not know they were stored and sends each again with its client message
// id. Bob reads each exactly once, as first sent: a retry whose text
// changed re-sends the first attempt's envelope.
func TestLostAnswersStoredOnce(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	ctx := context.Background()
	p := newProxy(t, n)
	alice := registerVia(t, p, "alice")
	bob := register(t, n, "bob")
	conv := pair(t, n, alice, bob)
	a := upload(t, alice, conv, "note.txt", "text/plain", []byte("a file"))
	lost := 0
	loseSends := func(r *http.Request) bool {
		if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/messages") {
			lost++
			return true
		}
		return false
	}

	id := client.NewClientID()
	p.setLose(loseSends)
	if _, err := alice.SendMessageWithID(ctx, conv, id, "with a file", []client.Attachment{a}); err == nil {
		t.Fatal("the send succeeded although every answer was lost")
	}
	p.setLose(nil)
	m, err := alice.SendMessageWithID(ctx, conv, id, "changed on retry", []client.Attachment{a})
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 1 || m.Text != "with a file" || len(m.Attachments) != 1 {
		t.Fatalf("the retry sent seq %d %q with %d attachments, want the first attempt's", m.Seq, m.Text, len(m.Attachments))
	}

	rid := client.NewClientID()
	p.setLose(loseSends)
	if _, err := alice.ActWithID(ctx, conv, rid, client.ContentReaction, m.Ref, "👍"); err == nil {
		t.Fatal("the reaction succeeded although every answer was lost")
	}
	p.setLose(nil)
	if _, err := alice.ActWithID(ctx, conv, rid, client.ContentReaction, m.Ref, "👍"); err != nil {
		t.Fatal(err)
	}
	if lost < 2 {
		t.Fatalf("%d answers lost, want both sends' at least", lost)
	}

	res, err := bob.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range res.Messages {
		got = append(got, fmt.Sprintf("%s:%s/%d", m.Type, m.Text, len(m.Attachments)))
	}
	if want := []string{"text:with a file/1", "reaction:👍/0"}; !slices.Equal(got, want) {
		t.Fatalf("bob read %q, want %q", got, want)
	}
	if _, err := alice.SendMessageWithID(ctx, conv, "x", "bad id", nil); err == nil {
		t.Fatal("a short client id was accepted")
	}
	if _, err := alice.ActWithID(ctx, conv, "x", client.ContentReaction, m.Ref, "👍"); err == nil {
		t.Fatal("a short client id was accepted")
	}
	if _, err := alice.ActWithID(ctx, conv, "", "title", m.Ref, "x"); err == nil {
		t.Fatal("a title was sent as an action")
	}
}

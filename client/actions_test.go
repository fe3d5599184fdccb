//go:build !js

package client_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// view syncs c and returns its view of the message ref in conv.
func view(t *testing.T, c *client.Client, conv protocol.ConversationID, ref string) client.Message {
	t.Helper()
	if res, err := c.Sync(context.Background()); err != nil || len(res.Failures) > 0 {
		t.Fatalf("%s: sync: %v %v", c.Username(), err, res.Failures)
	}
	hist, err := c.History(conv)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		if m.Ref == ref {
			return m
		}
	}
	t.Fatalf("%s: no message %s in %+v", c.Username(), ref, hist)
	return client.Message{}
}

func unread(t *testing.T, c *client.Client, conv protocol.ConversationID) int {
	t.Helper()
	convs, err := c.LocalConversations()
	if err != nil {
		t.Fatal(err)
	}
	for _, cv := range convs {
		if cv.ID == conv {
			return cv.Unread
		}
	}
	return -1
}

// Replies, reactions, edits and deletes reach the other members, on both
// databases; a delete erases the text from the receiver's storage.
func TestActions(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice := register(t, n, "alice")
		bobDir := t.TempDir()
		bob := newClient(t, n, bobDir)
		if err := bob.Register(ctx, "bob", "password of bob"); err != nil {
			t.Fatal(err)
		}
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		orig, err := alice.Send(ctx, conv, "secret plans")
		if err != nil {
			t.Fatal(err)
		}
		view(t, bob, conv, orig.Ref)
		reply, err := bob.Reply(ctx, conv, orig.Ref, "sounds good")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []string{"👍", "🎉"} { // the second replaces the first
			if _, err := bob.React(ctx, conv, orig.Ref, e); err != nil {
				t.Fatal(err)
			}
		}
		view(t, alice, conv, reply.Ref)
		if _, err := alice.React(ctx, conv, reply.Ref, "❤️"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.React(ctx, conv, reply.Ref, ""); err != nil { // removed
			t.Fatal(err)
		}
		if _, err := alice.Edit(ctx, conv, orig.Ref, "secret plans, edited"); err != nil {
			t.Fatal(err)
		}
		// Refused before anything is sent.
		if _, err := bob.Edit(ctx, conv, orig.Ref, "bob's words"); !errors.Is(err, client.ErrNotYours) {
			t.Fatalf("bob edits alice's message: %v", err)
		}
		if _, err := bob.Delete(ctx, conv, orig.Ref); !errors.Is(err, client.ErrNotYours) {
			t.Fatalf("bob deletes alice's message: %v", err)
		}
		if _, err := bob.React(ctx, conv, "AAAAAAAAAAAAAAAA", "👍"); !errors.Is(err, client.ErrUnknownMessage) {
			t.Fatalf("reaction to an unknown message: %v", err)
		}
		m := view(t, bob, conv, orig.Ref)
		if m.Text != "secret plans, edited" || !m.Edited || m.Sender != "alice" || m.SentAt != orig.SentAt ||
			!reflect.DeepEqual(m.Reactions, map[string][]string{"🎉": {"bob"}}) {
			t.Fatalf("bob sees %+v", m)
		}
		if r := view(t, alice, conv, reply.Ref); r.Type != client.ContentReply || r.ReplyTo != orig.Ref || r.Text != "sounds good" || r.Reactions != nil {
			t.Fatalf("alice sees the reply as %+v", r)
		}
		// The reply counts as unread for alice; reactions and edits do not.
		if u := unread(t, alice, conv); u != 1 {
			t.Fatalf("alice has %d unread, want 1 (the reply)", u)
		}
		if u := unread(t, bob, conv); u != 1 {
			t.Fatalf("bob has %d unread, want 1 (the message)", u)
		}
		if _, err := alice.Delete(ctx, conv, orig.Ref); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client.Client{alice, bob} {
			if m := view(t, c, conv, orig.Ref); !m.Deleted || m.Text != "" || m.Edited || m.Reactions != nil {
				t.Fatalf("%s sees the deleted message as %+v", c.Username(), m)
			}
		}
		if _, err := alice.Edit(ctx, conv, orig.Ref, "again"); !errors.Is(err, client.ErrUnknownMessage) {
			t.Fatalf("edit of a deleted message: %v", err)
		}
		// Neither the text nor its edit is left in bob's storage.
		filepath.WalkDir(bobDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, _ := os.ReadFile(p); strings.Contains(string(b), "secret plans") {
					t.Errorf("%s still holds the deleted text", p)
				}
			}
			return nil
		})
	})
}

// A member's client that edits or deletes another account's message: the
// receivers ignore it and raise an alarm; a server that attributes such an
// edit to the message's author (rewriting the sender in the sync answer)
// is caught by the envelope's signed header.
func TestActionsMaliciousMember(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	p := newProxy(t, n)
	alice := register(t, n, "alice")
	mallory := register(t, n, "mallory")
	bob := registerVia(t, p, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob", "mallory")
	if err != nil {
		t.Fatal(err)
	}
	orig, err := alice.Send(ctx, conv, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	view(t, bob, conv, orig.Ref)
	for _, ct := range []client.Content{{Type: client.ContentEdit, Text: "forged", Target: orig.Ref}, {Type: client.ContentDelete, Target: orig.Ref}} {
		if _, err := mallory.SendContent(ctx, conv, ct); err != nil {
			t.Fatal(err)
		}
	}
	if m := view(t, bob, conv, orig.Ref); m.Text != "hello" || m.Edited || m.Deleted {
		t.Fatalf("bob sees %+v after mallory's edit and delete", m)
	}
	alarms, err := bob.Alarms(conv)
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms) != 2 || alarms[0].Kind != client.AlarmForeignAction || alarms[0].User != mallory.UserID() {
		t.Fatalf("alarms %+v, want two %s for mallory", alarms, client.AlarmForeignAction)
	}

	edit, err := mallory.SendContent(ctx, conv, client.Content{Type: client.ContentEdit, Text: "forged", Target: orig.Ref})
	if err != nil {
		t.Fatal(err)
	}
	p.set(func(r *http.Request, body map[string]any) {
		evs, _ := body["events"].([]any)
		for _, x := range evs {
			if m, ok := x.(map[string]any)["message"].(map[string]any); ok && m["seq"] == float64(edit.Seq) {
				m["senderUser"] = alice.UserID().String()
			}
		}
	})
	res, err := bob.Sync(ctx)
	p.set(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 1 || res.Failures[0].Reason != "server_misbehaved" {
		t.Fatalf("failures %v, want the rewritten edit refused", res.Failures)
	}
	if m := view(t, bob, conv, orig.Ref); m.Text != "hello" || m.Edited {
		t.Fatalf("bob sees %+v after the server's attribution", m)
	}
}

//go:build !js

package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

func titleOf(t *testing.T, c *client.Client, conv protocol.ConversationID) string {
	t.Helper()
	convs, err := c.Conversations(context.Background())
	if err != nil {
		t.Fatalf("%s: conversations: %v", c.Username(), err)
	}
	for _, cv := range convs {
		if cv.ID == conv {
			return cv.Title
		}
	}
	t.Fatalf("%s does not list %s", c.Username(), conv)
	return ""
}

func alarmKinds(t *testing.T, c *client.Client, conv protocol.ConversationID) map[string]int {
	t.Helper()
	as, err := c.Alarms(conv)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, a := range as {
		out[a.Kind]++
	}
	return out
}

// TestConversationState: the title is conversation state (§7.6). A member
// added later and a device linked later read it at once, a rename reaches
// every member, and the title is no message: nothing unread, nothing in
// the history.
func TestConversationState(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, dbs(t)["sqlite"](t), serverConfig())
	alice, bob, carol := register(t, n, "alice"), register(t, n, "bob"), register(t, n, "carol")
	conv, err := alice.CreateConversation(ctx, "Lunch", "bob")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	if got := titleOf(t, bob, conv); got != "Lunch" {
		t.Fatalf("bob sees the title %q", got)
	}
	if h, _ := bob.History(conv); len(h) != 0 {
		t.Fatalf("the title is in bob's history: %+v", h)
	}
	if convs, _ := bob.Conversations(ctx); convs[0].Unread != 0 {
		t.Fatalf("the title counts as unread: %+v", convs[0])
	}

	// A member added later reads the title at once.
	if err := alice.AddMembers(ctx, conv, "carol"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, carol)
	if got := titleOf(t, carol, conv); got != "Lunch" {
		t.Fatalf("carol, added later, sees the title %q", got)
	}

	// A rename reaches every member.
	if err := bob.Rename(ctx, conv, "Dinner"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{alice, carol} {
		syncTexts(t, c)
		if got := titleOf(t, c, conv); got != "Dinner" {
			t.Fatalf("%s sees the title %q after the rename", c.Username(), got)
		}
	}
	// The state follows later epochs: a message rotates nothing away.
	if _, err := carol.Send(ctx, conv, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Rename(ctx, conv, "Supper"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	if got := titleOf(t, bob, conv); got != "Supper" {
		t.Fatalf("bob sees %q after alice's rename", got)
	}

	// A device linked later reads it too.
	second := linkDevice(t, n, bob, "password of bob")
	if _, err := bob.Send(ctx, conv, "from my old device"); err != nil { // the epoch that covers the new device
		t.Fatal(err)
	}
	syncTexts(t, second)
	if got := titleOf(t, second, conv); got != "Supper" {
		t.Fatalf("bob's linked device sees the title %q", got)
	}
	for _, c := range []*client.Client{alice, bob, carol, second} {
		if as, _ := c.Alarms(conv); len(as) != 0 {
			t.Fatalf("%s raised alarms with an honest server: %+v", c.Username(), as)
		}
	}
}

// captureState is a transport that keeps the body of every state a client
// puts and, while hold is set, does not send it.
type captureState struct {
	mu     sync.Mutex
	hold   bool
	bodies [][]byte
}

func (c *captureState) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == "PUT" && strings.HasSuffix(r.URL.Path, "/state") {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		c.mu.Lock()
		c.bodies = append(c.bodies, b)
		hold := c.hold
		c.mu.Unlock()
		if hold {
			return nil, errors.New("held by the test")
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestConversationStateAttacks: a server that replays an older state,
// serves a state under another epoch, one signed by a non-member or by a
// removed member, or strips the state, changes nothing the member holds:
// the title stays the last verified one and an alarm says why.
func TestConversationStateAttacks(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, dbs(t)["sqlite"](t), serverConfig())
	p := newProxy(t, n)
	alice := registerVia(t, p, "alice")
	capture := &captureState{}
	bob := registerWith(t, n, "bob", capture, "")
	register(t, n, "carol")
	conv, err := alice.CreateConversation(ctx, "Lunch", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	var old string // the first state, as served
	p.set(func(r *http.Request, body map[string]any) {
		if list, ok := body["conversations"].([]any); ok && len(list) > 0 {
			body = list[0].(map[string]any)
		}
		if s, ok := body["state"].(string); ok && old == "" {
			old = s
		}
	})
	if titleOf(t, alice, conv) != "Lunch" || old == "" {
		t.Fatal("no state served")
	}
	syncTexts(t, bob)
	if err := bob.Rename(ctx, conv, "Dinner"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, alice)
	if got := titleOf(t, alice, conv); got != "Dinner" {
		t.Fatalf("alice sees %q", got)
	}
	// Adding a member makes epoch 2, which carries the state.
	register(t, n, "dave")
	if err := alice.AddMembers(ctx, conv, "dave"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	served := func(f func(cur string) any) {
		p.set(func(r *http.Request, body map[string]any) {
			if r.Method != "GET" {
				return
			}
			rewrite := func(m map[string]any) {
				if cur, ok := m["state"].(string); ok && m["id"] == conv.String() {
					if v := f(cur); v == nil {
						delete(m, "state")
					} else {
						m["state"] = v
					}
				}
			}
			rewrite(body)
			if list, ok := body["conversations"].([]any); ok {
				for _, m := range list {
					rewrite(m.(map[string]any))
				}
			}
		})
	}
	check := func(what, kind string) {
		t.Helper()
		before := alarmKinds(t, alice, conv)[kind]
		if got := titleOf(t, alice, conv); got != "Dinner" {
			t.Fatalf("%s: alice's title is %q", what, got)
		}
		if after := alarmKinds(t, alice, conv)[kind]; after <= before {
			t.Fatalf("%s: no %s alarm", what, kind)
		}
	}

	served(func(string) any { return old })
	check("an older state replayed", client.AlarmStateRollback)

	served(func(cur string) any {
		b := unb64u(t, cur)
		b[1+16+7]-- // the epoch, in the clear header: one alice holds
		return b64u(b)
	})
	check("the state moved to another epoch", client.AlarmStateInvalid)

	served(func(cur string) any {
		rec, err := protocol.ParseStateRecord(unb64u(t, cur))
		if err != nil {
			t.Fatal(err)
		}
		rec.StateVersion++
		rec.Signer = protocol.DeviceRef{User: protocol.NewUserID(), Device: protocol.NewDeviceID()}
		rec.Signature = secret.NewIdentity().Sign(rec.SignedData())
		return b64u(rec.Marshal())
	})
	check("a state signed by a non-member", client.AlarmStateInvalid)

	served(func(string) any { return nil })
	check("the state stripped", client.AlarmStateMissing)

	// Bob, still a member, makes a state the server keeps back; after
	// bob's removal the server serves it as the latest.
	p.set(nil)
	capture.mu.Lock()
	capture.hold = true
	capture.mu.Unlock()
	if err := bob.Rename(ctx, conv, "Bob's trap"); err == nil {
		t.Fatal("the held rename went through")
	}
	capture.mu.Lock()
	trap := capture.bodies[len(capture.bodies)-1]
	capture.mu.Unlock()
	if err := alice.RemoveMembers(ctx, conv, "bob"); err != nil {
		t.Fatal(err)
	}
	var req struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(trap, &req); err != nil {
		t.Fatal(err)
	}
	served(func(string) any { return req.State })
	check("a removed member's state", client.AlarmStateInvalid)

	// The honest server again: a rename by alice goes through, and the
	// rolled-back versions stay refused.
	p.set(nil)
	if err := alice.Rename(ctx, conv, "Brunch"); err != nil {
		t.Fatal(err)
	}
	if got := titleOf(t, alice, conv); got != "Brunch" {
		t.Fatalf("after the attacks alice renames to %q", got)
	}
}

// TestLegacyTitleMessage: a title sent as a message by an older client
// still names a conversation that has no state, is not counted as unread,
// and gives way to the state once there is one.
func TestLegacyTitleMessage(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, dbs(t)["sqlite"](t), serverConfig())
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SendLegacyTitle(ctx, conv, "Old title"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	convs, err := bob.Conversations(ctx)
	if err != nil || len(convs) != 1 || convs[0].Title != "Old title" || convs[0].Unread != 0 {
		t.Fatalf("bob's conversation with a legacy title: %+v %v", convs, err)
	}
	if err := bob.Rename(ctx, conv, "New title"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, alice)
	for _, c := range []*client.Client{alice, bob} {
		if got := titleOf(t, c, conv); got != "New title" {
			t.Fatalf("%s: the state did not replace the legacy title: %q", c.Username(), got)
		}
	}
}

// TestRemovedConversationKept: a removed member keeps the conversation,
// read-only: listed as removed, with the messages sent while it was a
// member and none after; sending and renaming are refused.
func TestRemovedConversationKept(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, dbs(t)["sqlite"](t), serverConfig())
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "Lunch", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "before"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	if err := alice.RemoveMembers(ctx, conv, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "after"); err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, bob); len(got) != 0 {
		t.Fatalf("removed bob received %q", got)
	}
	convs, err := bob.Conversations(ctx)
	if err != nil || len(convs) != 1 || convs[0].ID != conv || convs[0].Status != "removed" || convs[0].Title != "Lunch" {
		t.Fatalf("bob's conversations after his removal: %+v %v", convs, err)
	}
	if h, err := bob.History(conv); err != nil || len(h) != 1 || h[0].Text != "before" {
		t.Fatalf("bob's history after his removal: %+v %v", h, err)
	}
	if _, err := bob.Send(ctx, conv, "still here?"); !errors.Is(err, client.ErrNotMember) {
		t.Fatalf("removed bob's send: %v", err)
	}
	if err := bob.Rename(ctx, conv, "Mine now"); !errors.Is(err, client.ErrNotMember) {
		t.Fatalf("removed bob's rename: %v", err)
	}
	// Added again, bob writes again.
	if err := alice.AddMembers(ctx, conv, "bob"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	if _, err := bob.Send(ctx, conv, "back"); err != nil {
		t.Fatalf("bob, added again: %v", err)
	}
}

//go:build !js

package client_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/http"
	"slices"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// requestIDs lists the conversations c holds as message requests.
func requestIDs(t *testing.T, c *client.Client) []protocol.ConversationID {
	t.Helper()
	rs, err := c.Requests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []protocol.ConversationID
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// startedBy has from create a conversation with to and send one text.
func startedBy(t *testing.T, from *client.Client, to string) protocol.ConversationID {
	t.Helper()
	ctx := context.Background()
	conv, err := from.CreateConversation(ctx, "", to)
	if err != nil {
		t.Fatalf("%s starts a conversation with %s: %v", from.Username(), to, err)
	}
	if _, err := from.Send(ctx, conv, "hello from "+from.Username()); err != nil {
		t.Fatal(err)
	}
	return conv
}

// TestMessageRequests: a conversation started by an account alice shares
// no conversation with is a request: listed with its sender, its messages
// not marked read until she accepts (or answers); one started by a member
// of a conversation she holds is not. Delete leaves and forgets it; block
// also makes the server refuse the sender's next conversation with her.
func TestMessageRequests(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	alice, carol := register(t, n, "alice"), register(t, n, "carol")
	bob, dave, erin := register(t, n, "bob"), register(t, n, "dave"), register(t, n, "erin")
	if _, err := alice.CreateConversation(ctx, "", "carol"); err != nil {
		t.Fatal(err)
	}
	fromCarol := startedBy(t, carol, "alice")
	fromBob, fromDave, fromErin := startedBy(t, bob, "alice"), startedBy(t, dave, "alice"), startedBy(t, erin, "alice")
	syncTexts(t, alice)

	reqs, err := alice.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[protocol.ConversationID]string{}
	for _, r := range reqs {
		got[r.ID] = r.From
	}
	want := map[protocol.ConversationID]string{fromBob: "bob", fromDave: "dave", fromErin: "erin"}
	if len(got) != len(want) || got[fromBob] != "bob" || got[fromDave] != "dave" || got[fromErin] != "erin" {
		t.Fatalf("requests = %v; want %v (not carol's: they share a conversation)", got, want)
	}
	// Reading a request does not mark it read (nothing to tell bob).
	if err := alice.MarkRead(fromBob); err != nil {
		t.Fatal(err)
	}
	if err := alice.MarkReadThrough(fromBob, 100); err != nil {
		t.Fatal(err)
	}
	if u := unreadIn(t, alice, fromBob); u != 1 {
		t.Fatalf("a request's unread count after marking it read = %d; want 1", u)
	}
	// Nor is bob sent a receipt, delivered or read.
	if err := alice.SendReceipts(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := bob.Sync(ctx); err != nil || len(res.Receipts) != 0 {
		t.Fatalf("bob got %d receipts from a request (%v)", len(res.Receipts), err)
	}
	// Accept: an ordinary conversation.
	if err := alice.Accept(fromBob); err != nil {
		t.Fatal(err)
	}
	if err := alice.MarkRead(fromBob); err != nil {
		t.Fatal(err)
	}
	if u := unreadIn(t, alice, fromBob); u != 0 {
		t.Fatalf("unread after accepting and reading = %d", u)
	}
	// Answering accepts too.
	if _, err := alice.Send(ctx, fromErin, "hi erin"); err != nil {
		t.Fatal(err)
	}
	if r := requestIDs(t, alice); !slices.Equal(r, []protocol.ConversationID{fromDave}) {
		t.Fatalf("requests after accepting bob's and answering erin = %v; want dave's only", r)
	}
	// The device's own list, without the server, tells the same.
	local, err := alice.LocalConversations()
	if err != nil {
		t.Fatal(err)
	}
	var localReqs []protocol.ConversationID
	for _, c := range local {
		if c.Request {
			localReqs = append(localReqs, c.ID)
		}
	}
	if !slices.Equal(localReqs, []protocol.ConversationID{fromDave}) {
		t.Fatalf("requests in the local list = %v; want dave's only", localReqs)
	}
	if err := alice.Accept(fromCarol); err == nil {
		t.Fatal("accepting a conversation that is no request succeeded")
	}

	// Block: leave, forget, and the server refuses dave's next one.
	if err := alice.BlockRequest(ctx, fromDave); err != nil {
		t.Fatal(err)
	}
	convs, err := alice.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cv := range convs {
		if cv.ID == fromDave {
			t.Fatalf("alice still lists the blocked request (status %q)", cv.Status)
		}
	}
	if members := membersOf(t, dave, fromDave); slices.Contains(members, "alice") {
		t.Fatalf("dave's conversation after alice blocked has %v; want alice gone", members)
	}
	if _, err := dave.CreateConversation(ctx, "", "alice"); !client.IsCode(err, "blocked") {
		t.Fatalf("dave starting again after the block: %v; want blocked", err)
	}
	bl, err := alice.Blocks(ctx)
	if err != nil || len(bl) != 1 || bl[0].Username != "dave" {
		t.Fatalf("alice's blocks = %v, %v", bl, err)
	}
	if err := alice.Unblock(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	again := startedBy(t, dave, "alice")
	syncTexts(t, alice)
	if r := requestIDs(t, alice); !slices.Equal(r, []protocol.ConversationID{again}) {
		t.Fatalf("after unblocking, requests = %v; want dave's new one", r)
	}
	// Unblocking also cleared this device's own list: no alarm.
	if alarms, err := alice.Alarms(again); err != nil || len(alarms) != 0 {
		t.Fatalf("alarms after unblocking dave = %+v, %v; want none", alarms, err)
	}
	// Delete: leave and forget, without blocking.
	if err := alice.DeleteRequest(ctx, again); err != nil {
		t.Fatal(err)
	}
	if r := requestIDs(t, alice); len(r) != 0 {
		t.Fatalf("requests after deleting = %v", r)
	}
	if h, err := alice.History(again); err != nil || len(h) != 0 {
		t.Fatalf("a deleted request's history: %d messages, %v", len(h), err)
	}
}

// membersOf returns the members of conv as c lists them.
func membersOf(t *testing.T, c *client.Client, conv protocol.ConversationID) []string {
	t.Helper()
	convs, err := c.Conversations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, cv := range convs {
		if cv.ID == conv {
			return cv.Members
		}
	}
	t.Fatalf("%s does not list %s", c.Username(), conv)
	return nil
}

// TestRequestsDecidedByClient: the server cannot turn a stranger into a
// contact. A server that records the stranger as a member of a
// conversation alice shares with carol, or that forgets alice's block of
// him, still delivers his conversation as a request; the forgotten block
// is also an alarm.
func TestRequestsDecidedByClient(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	alice, mallory := register(t, n, "alice"), register(t, n, "mallory")
	register(t, n, "carol")
	shared, err := alice.CreateConversation(ctx, "", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Block(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := mallory.UserID()
	if _, err := db.Exec(`INSERT INTO members (conversation_id, user_id, role, joined_event_id) VALUES (?, ?, 0, 0)`, shared[:], m[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM blocks`); err != nil {
		t.Fatal(err)
	}
	conv := startedBy(t, mallory, "alice")
	syncTexts(t, alice)
	if r := requestIDs(t, alice); !slices.Equal(r, []protocol.ConversationID{conv}) {
		t.Fatalf("requests = %v; want mallory's conversation", r)
	}
	alarms, err := alice.Alarms(conv)
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms) != 1 || alarms[0].User != m || alarms[0].Kind != client.AlarmServerData {
		t.Fatalf("alarms = %+v; want one for the blocked sender let through", alarms)
	}
}

// TestRequestTellsNoTyping: typing in a request tells its sender nothing
// (a notice would say the request was opened); once accepted, it does.
func TestRequestTellsNoTyping(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	tap := &typingTap{}
	alice := registerWith(t, n, "alice", tap, "")
	bob := register(t, n, "bob")
	conv := startedBy(t, bob, "alice")
	syncTexts(t, alice)
	if err := alice.SendTyping(ctx, conv, true); err != nil {
		t.Fatal(err)
	}
	tap.mu.Lock()
	posted := len(tap.notices)
	tap.mu.Unlock()
	if posted != 0 {
		t.Fatalf("typing in a request posted %d notices", posted)
	}
	if err := alice.Accept(conv); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendTyping(ctx, conv, true); err != nil {
		t.Fatal(err)
	}
	tap.mu.Lock()
	posted = len(tap.notices)
	tap.mu.Unlock()
	if posted != 1 {
		t.Fatalf("typing once accepted posted %d notices, want 1", posted)
	}
}

// TestLinkedDeviceKeepsRequests: a device linked without history decides
// requests as the approving device would. What the approving device
// accepted (bob's conversation, answered; dave's, accepted) is no request
// on the new device, nor is bob's next conversation; mallory's, still a
// request on the approving device, stays one; and erin, blocked before the
// link, is blocked on the new device too: a server that forgets the block
// and lets her conversation through gives a request and an alarm there.
func TestLinkedDeviceKeepsRequests(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	dave, mallory, erin := register(t, n, "dave"), register(t, n, "mallory"), register(t, n, "erin")
	fromBob, fromDave, fromMallory := startedBy(t, bob, "alice"), startedBy(t, dave, "alice"), startedBy(t, mallory, "alice")
	syncTexts(t, alice)
	if _, err := alice.Send(ctx, fromBob, "hi bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Accept(fromDave); err != nil {
		t.Fatal(err)
	}
	if err := alice.Block(ctx, "erin"); err != nil {
		t.Fatal(err)
	}
	if r := requestIDs(t, alice); !slices.Equal(r, []protocol.ConversationID{fromMallory}) {
		t.Fatalf("alice's requests before the link = %v; want mallory's", r)
	}

	phone, code := startLinked(t, n)
	if _, err := alice.ApproveLink(ctx, code); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, phone, alice)
	again := startedBy(t, bob, "alice")
	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM blocks`); err != nil {
		t.Fatal(err)
	}
	fromErin := startedBy(t, erin, "alice")
	syncTexts(t, phone)

	got := requestIDs(t, phone)
	slices.SortFunc(got, func(a, b protocol.ConversationID) int { return bytes.Compare(a[:], b[:]) })
	want := []protocol.ConversationID{fromMallory, fromErin}
	slices.SortFunc(want, func(a, b protocol.ConversationID) int { return bytes.Compare(a[:], b[:]) })
	if !slices.Equal(got, want) {
		t.Fatalf("the linked device's requests = %v; want mallory's %s and erin's %s (not bob's %s and %s, nor dave's %s)",
			got, fromMallory, fromErin, fromBob, again, fromDave)
	}
	alarms, err := phone.Alarms(fromErin)
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms) != 1 || alarms[0].User != erin.UserID() || alarms[0].Kind != client.AlarmServerData {
		t.Fatalf("the linked device's alarms for erin's conversation = %+v; want one: she is blocked", alarms)
	}
}

// TestLinkedRequestStateLate: a server that withholds the request state
// (the archive download fails) leaves the linked device deciding alone:
// bob's conversation, accepted on alice's first device, is a request
// there, never less; a swapped archive is refused with an alarm; once the
// genuine state is imported, the request ends.
func TestLinkedRequestStateLate(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	fromBob := startedBy(t, bob, "alice")
	syncTexts(t, alice)
	if err := alice.Accept(fromBob); err != nil {
		t.Fatal(err)
	}
	rt := &archiveTransport{}
	rt.set(func(*http.Response) error { return errors.New("connection reset") })
	phone := newClientWith(t, n, rt)
	if err := approveNew(t, phone, alice, "password of alice"); !errors.Is(err, client.ErrTransfer) || !phone.PendingTransfer() {
		t.Fatalf("a withheld request state: %v (pending %v)", err, phone.PendingTransfer())
	}
	syncTexts(t, phone)
	if r := requestIDs(t, phone); !slices.Equal(r, []protocol.ConversationID{fromBob}) {
		t.Fatalf("without the state, the linked device's requests = %v; want bob's (deciding alone)", r)
	}
	rt.set(flipByte)
	if err := phone.ResumeTransfer(ctx); !errors.Is(err, client.ErrServerMisbehaved) {
		t.Fatalf("a swapped request state: %v", err)
	}
	if r := requestIDs(t, phone); !slices.Equal(r, []protocol.ConversationID{fromBob}) {
		t.Fatalf("after a swapped state, requests = %v", r)
	}
	rt.set(nil)
	if err := phone.ResumeTransfer(ctx); err != nil {
		t.Fatal(err)
	}
	if r := requestIDs(t, phone); len(r) != 0 {
		t.Fatalf("once the state came, requests = %v; want none", r)
	}
}

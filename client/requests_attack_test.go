//go:build !js

package client_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// TestServerHidesAddRecord: mallory, a stranger to alice, starts a
// conversation with carol and then adds alice. The server serves alice's
// device the chain without the add (a prefix that verifies, where alice is
// no member), then the add at her next sync, hoping the device decides on
// the prefix and never again. The conversation is still a request: the
// device decides when its verified chain first names its account.
func TestServerHidesAddRecord(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	p := newProxy(t, n)
	alice := registerVia(t, p, "alice")
	mallory := register(t, n, "mallory")
	register(t, n, "carol")
	conv, err := mallory.CreateConversation(ctx, "", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := mallory.AddMembers(ctx, conv, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.Send(ctx, conv, "hello alice"); err != nil {
		t.Fatal(err)
	}
	hide := func(r *http.Request, body map[string]any) {
		if r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/records") && r.URL.Query().Get("from") == "0" {
			if recs, ok := body["records"].([]any); ok && len(recs) > 1 {
				body["records"] = recs[:len(recs)-1]
			}
		}
	}
	p.set(hide)
	alice.Sync(ctx) // the prefix: the conversation may or may not be listed yet
	p.set(nil)
	syncTexts(t, alice)
	if req, err := alice.IsRequest(conv); err != nil || !req {
		t.Fatalf("mallory's conversation after the server hid the add: request = %v, %v; want a request", req, err)
	}
	if r := requestIDs(t, alice); len(r) != 1 || r[0] != conv {
		t.Fatalf("requests = %v; want %s", r, conv)
	}
}

// TestStrangerBringsContact: mallory, a stranger to alice, cannot skip the
// request by bringing carol, whom alice knows: a conversation he creates
// with alice and carol, and one with carol to which he then adds alice,
// are both requests (the record that made alice a member is his). One
// to which carol adds alice is not.
func TestStrangerBringsContact(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	alice, mallory, carol := register(t, n, "alice"), register(t, n, "mallory"), register(t, n, "carol")
	startedBy(t, alice, "carol")
	syncTexts(t, carol)

	group, err := mallory.CreateConversation(ctx, "", "carol", "alice")
	if err != nil {
		t.Fatal(err)
	}
	added, err := mallory.CreateConversation(ctx, "", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := mallory.AddMembers(ctx, added, "alice"); err != nil {
		t.Fatal(err)
	}
	byCarol, err := carol.CreateConversation(ctx, "", "mallory")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, mallory)
	if err := carol.AddMembers(ctx, byCarol, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, conv := range []protocol.ConversationID{group, added, byCarol} {
		if _, err := mallory.Send(ctx, conv, "hello alice"); err != nil {
			t.Fatal(err)
		}
	}
	syncTexts(t, alice)
	got := requestIDs(t, alice)
	want := []protocol.ConversationID{group, added}
	slices.SortFunc(got, compareConvIDs)
	slices.SortFunc(want, compareConvIDs)
	if !slices.Equal(got, want) {
		t.Fatalf("alice's requests = %v; want mallory's group %s and the one he added her to %s (not %s, which carol added her to)", got, group, added, byCarol)
	}
}

func compareConvIDs(a, b protocol.ConversationID) int { return strings.Compare(a.String(), b.String()) }

// TestServerCannotEndRequest: a request ends when alice's account sends in
// it, from any of her devices. The server serves alice's laptop, as a
// message of hers in mallory's request, an envelope her phone sent in her
// conversation with carol: as it is, and with its header moved to the
// request. Both are refused, and the request stays
// one, its messages not marked read; her phone's real answer ends it.
func TestServerCannotEndRequest(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	p := newProxy(t, n)
	alice := registerVia(t, p, "alice")
	mallory := register(t, n, "mallory")
	register(t, n, "carol")
	withCarol, err := alice.CreateConversation(ctx, "", "carol")
	if err != nil {
		t.Fatal(err)
	}
	phone := linkDevice(t, n, alice, "password of alice")
	syncTexts(t, phone)
	if _, err := phone.Send(ctx, withCarol, "hello from alice's phone"); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var own []byte
	if err := db.QueryRow(`SELECT envelope FROM messages WHERE conversation_id = ?`, withCarol[:]).Scan(&own); err != nil {
		t.Fatal(err)
	}
	env, err := protocol.ParseEnvelope(own)
	if err != nil {
		t.Fatal(err)
	}
	conv := startedBy(t, mallory, "alice")
	syncTexts(t, alice)
	moved := *env
	moved.Conversation = conv
	for _, forged := range [][]byte{own, moved.Marshal()} {
		if _, err := mallory.Send(ctx, conv, "read me"); err != nil {
			t.Fatal(err)
		}
		p.set(func(r *http.Request, body map[string]any) {
			if r.URL.Path != "/api/sync" {
				return
			}
			evs, _ := body["events"].([]any)
			for _, e := range evs {
				m, _ := e.(map[string]any)["message"].(map[string]any)
				if m == nil || m["conversation"] != conv.String() {
					continue
				}
				m["envelope"] = b64u(forged)
				m["sender"] = env.Sender.Device.String()
				m["senderUser"] = env.Sender.User.String()
				m["epoch"] = env.Epoch
			}
		})
		res, err := alice.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Failures) == 0 {
			t.Fatal("a message of alice's from another conversation, served in the request, was not refused")
		}
		if req, err := alice.IsRequest(conv); err != nil || !req {
			t.Fatalf("after the server served alice's own message in mallory's request: request = %v, %v; want a request", req, err)
		}
	}
	p.set(nil)
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if req, err := alice.IsRequest(conv); err != nil || !req {
		t.Fatalf("request = %v, %v; want a request", req, err)
	}
	if u := unreadIn(t, alice, conv); u != 1 {
		t.Fatalf("the request's unread count = %d; want 1 (mallory's first message)", u)
	}
	// What the server tried to fake: her phone answering does end it.
	syncTexts(t, phone)
	if _, err := phone.Send(ctx, conv, "hi mallory"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, alice)
	if req, err := alice.IsRequest(conv); err != nil || req {
		t.Fatalf("after alice's phone answered: request = %v, %v; want it ended", req, err)
	}
}

// TestLateRequestStateKeepsBlocked: alice shares a conversation with erin,
// then blocks her. The server withholds the transfer from alice's new
// phone, which takes the signed block from the list all the same, then
// stops enforcing the block and lets erin's conversation through: a
// request on the phone, with an alarm. When the genuine request state
// comes at last, naming erin as known, the request stays one: a late
// state ends no request of a blocked author.
func TestLateRequestStateKeepsBlocked(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	alice, erin := register(t, n, "alice"), register(t, n, "erin")
	startedBy(t, alice, "erin")
	if err := alice.Block(ctx, "erin"); err != nil {
		t.Fatal(err)
	}
	rt := &archiveTransport{}
	rt.set(func(*http.Response) error { return errors.New("connection reset") })
	phone := newClientWith(t, n, rt)
	if err := approveNew(t, phone, alice, "password of alice"); !errors.Is(err, client.ErrTransfer) || !phone.PendingTransfer() {
		t.Fatalf("a withheld transfer: %v (pending %v)", err, phone.PendingTransfer())
	}
	if got := blockedNames(t, phone); !slices.Equal(got, []string{"erin"}) {
		t.Fatalf("the phone's block list = %v; want erin", got)
	}
	execDB(t, n, `DELETE FROM blocks`)
	execDB(t, n, `DELETE FROM block_statements`)
	conv := startedBy(t, erin, "alice")
	syncTexts(t, phone)
	if req, err := phone.IsRequest(conv); err != nil || !req {
		t.Fatalf("erin's conversation on the phone: request = %v, %v; want a request", req, err)
	}
	if as, err := phone.Alarms(conv); err != nil || len(as) != 1 {
		t.Fatalf("alarms in erin's conversation = %+v, %v; want one", as, err)
	}
	rt.set(nil)
	if err := phone.ResumeTransfer(ctx); err != nil {
		t.Fatal(err)
	}
	if req, err := phone.IsRequest(conv); err != nil || !req {
		t.Fatalf("erin's conversation once the state came: request = %v, %v; want still a request (she is blocked)", req, err)
	}
}

// TestDeletedRequestReAdded: alice deletes mallory's request (she leaves
// it); mallory adds her back to the same conversation. It is a request
// again, not an ordinary conversation: the device forgot it whole and
// decides anew.
func TestDeletedRequestReAdded(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	alice, mallory := register(t, n, "alice"), register(t, n, "mallory")
	conv := startedBy(t, mallory, "alice")
	syncTexts(t, alice)
	if err := alice.DeleteRequest(ctx, conv); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, mallory)
	if err := mallory.AddMembers(ctx, conv, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.Send(ctx, conv, "hello again"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, alice)
	if r := requestIDs(t, alice); !slices.Equal(r, []protocol.ConversationID{conv}) {
		t.Fatalf("alice's requests after mallory added her back = %v; want %s", r, conv)
	}
	if u := unreadIn(t, alice, conv); u == 0 {
		t.Fatal("no unread message in the request")
	}
}

// TestWithheldTransferKeepsBlockedRequest: alice blocked bob, with whom she
// shares a conversation she started. Her phone links; the server withholds
// what her first device handed over (the archive's download fails), serves
// the phone no block, no longer enforces the block and lets bob start a
// conversation with her. Deciding alone, the phone would take it as
// accepted (bob is a member of a conversation it holds): while the import
// is pending every conversation another account starts is a request.
// Once the import goes through, bob's stays one (he is blocked) and
// dave's, whom alice knows, ends.
func TestWithheldTransferKeepsBlockedRequest(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	alice, bob, dave := register(t, n, "alice"), register(t, n, "bob"), register(t, n, "dave")
	withBob := startedBy(t, alice, "bob")
	fromDave := startedBy(t, dave, "alice")
	syncTexts(t, alice)
	if err := alice.Accept(fromDave); err != nil {
		t.Fatal(err)
	}
	if err := alice.Block(ctx, "bob"); err != nil {
		t.Fatal(err)
	}

	p := newProxy(t, n)
	p.setLose(func(r *http.Request) bool {
		return r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/archives/")
	})
	onBlockList(p, func(body map[string]any) { body["blocks"], body["unblocks"] = []any{}, []any{} })
	phone := clientVia(t, p)
	if err := approveNew(t, phone, alice, "password of alice"); !errors.Is(err, client.ErrTransfer) || !phone.PendingTransfer() {
		t.Fatalf("a withheld transfer: %v (pending %v)", err, phone.PendingTransfer())
	}
	// The phone holds alice's conversation with bob once she writes there.
	syncTexts(t, alice)
	if _, err := alice.Send(ctx, withBob, "still here"); err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, phone); !slices.Contains(got, "alice: still here") {
		t.Fatalf("the phone reads %q", got)
	}
	execDB(t, n, `DELETE FROM blocks`)
	fromBob := startedBy(t, bob, "alice")
	again := startedBy(t, dave, "alice")
	syncTexts(t, phone)
	for _, conv := range []protocol.ConversationID{fromBob, again} {
		if req, err := phone.IsRequest(conv); err != nil || !req {
			t.Fatalf("with the transfer withheld, %s is a request = %v, %v; want a request", conv, req, err)
		}
	}

	p.setLose(nil)
	if err := phone.ResumeTransfer(ctx); err != nil {
		t.Fatal(err)
	}
	if req, err := phone.IsRequest(fromBob); err != nil || !req {
		t.Fatalf("after the import, bob's conversation: request = %v, %v; want a request (he is blocked)", req, err)
	}
	if req, err := phone.IsRequest(again); err != nil || req {
		t.Fatalf("after the import, dave's conversation: request = %v, %v; want accepted (alice knows him)", req, err)
	}
}

// TestLinkNeedsTransferUpload: a server that refuses the archive of a link
// without history (the block list and the request state) gets no device
// linked, rather than one that decides requests without them.
func TestLinkNeedsTransferUpload(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	p := newProxy(t, n)
	alice := registerVia(t, p, "alice")
	p.setLose(func(r *http.Request) bool {
		return r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/api/archives/")
	})
	phone := newClient(t, n, t.TempDir())
	if err := phone.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	code, err := phone.StartLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ApproveLink(ctx, code); err == nil || !strings.Contains(err.Error(), "no device was linked") {
		t.Fatalf("approving with the archive refused: %v; want no device linked", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := phone.WaitLink(wctx, 10*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the phone's link: %v; want none", err)
	}
}

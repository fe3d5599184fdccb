//go:build !js

package client_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// receiptView syncs c and returns the DeliveredTo and ReadBy of each of
// refs, and the receipts the sync brought.
func receiptView(t *testing.T, c *client.Client, conv protocol.ConversationID, refs ...string) (dlv, read [][]string, got int) {
	t.Helper()
	res, err := c.Sync(context.Background())
	if err != nil || len(res.Failures) > 0 {
		t.Fatalf("%s: sync: %v %v", c.Username(), err, res.Failures)
	}
	for _, m := range res.Messages {
		if m.Type == client.ContentReceipt {
			t.Fatalf("%s: a receipt among the messages: %+v", c.Username(), m)
		}
	}
	hist, err := c.History(conv)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		i := slices.IndexFunc(hist, func(m client.Message) bool { return m.Ref == ref })
		if i < 0 {
			t.Fatalf("%s: no message %s", c.Username(), ref)
		}
		dlv, read = append(dlv, hist[i].DeliveredTo), append(read, hist[i].ReadBy)
	}
	for _, m := range hist {
		if m.Type == client.ContentReceipt {
			t.Fatalf("%s: a receipt in the history: %+v", c.Username(), m)
		}
	}
	return dlv, read, len(res.Receipts)
}

func sendReceipts(t *testing.T, c *client.Client, conv protocol.ConversationID) {
	t.Helper()
	if err := c.SendReceipts(context.Background(), conv); err != nil {
		t.Fatalf("%s: send receipts: %v", c.Username(), err)
	}
}

// Delivered and read receipts reach the sender, one per burst; they never
// count as unread; a read on one device of an account clears the unread
// count of its other devices; with read receipts off, only delivered ones
// leave; on both databases.
func TestReceipts(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice := register(t, n, "alice")
		bob := register(t, n, "bob")
		bob2 := linkDevice(t, n, bob, "password of bob")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		var refs []string
		for _, text := range []string{"one", "two", "three"} {
			m, err := alice.Send(ctx, conv, text)
			if err != nil {
				t.Fatal(err)
			}
			refs = append(refs, m.Ref)
		}
		if got := syncTexts(t, bob2); len(got) != 3 {
			t.Fatalf("bob's second device got %v", got)
		}
		if got := syncTexts(t, bob); len(got) != 3 {
			t.Fatalf("bob got %v", got)
		}
		for _, d := range []*client.Client{bob, bob2} { // alice is a stranger: a request sends no receipts
			if err := d.Accept(conv); err != nil {
				t.Fatal(err)
			}
		}
		sendReceipts(t, bob, conv)
		sendReceipts(t, bob, conv) // nothing new: nothing sent
		dlv, read, got := receiptView(t, alice, conv, refs...)
		if got != 1 || !slices.Equal(dlv[0], []string{"bob"}) || !slices.Equal(dlv[2], []string{"bob"}) || read[2] != nil {
			t.Fatalf("alice got %d receipts: delivered %v, read %v; want one delivered receipt", got, dlv, read)
		}
		if n := unread(t, alice, conv); n != 0 {
			t.Fatalf("alice's unread count %d after receipts", n)
		}

		// Bob reads the first two on one device: the other device's count
		// follows.
		hist, err := bob.History(conv)
		if err != nil {
			t.Fatal(err)
		}
		if err := bob.MarkReadThrough(conv, hist[1].Seq); err != nil {
			t.Fatal(err)
		}
		sendReceipts(t, bob, conv)
		_, read, got = receiptView(t, alice, conv, refs...)
		if got != 1 || !slices.Equal(read[1], []string{"bob"}) || read[2] != nil {
			t.Fatalf("alice got %d receipts, read %v; want the first two read by bob", got, read)
		}
		if n := unread(t, bob2, conv); n != 3 {
			t.Fatalf("bob's second device: unread %d before its sync, want 3", n)
		}
		if _, _, got := receiptView(t, bob2, conv, refs...); got != 2 {
			t.Fatalf("bob's second device got %d receipts, want 2 (delivered, read)", got)
		}
		if n := unread(t, bob2, conv); n != 1 {
			t.Fatalf("bob's second device: unread %d after the other read two, want 1", n)
		}
		// The second device, having seen the account's receipts, sends
		// none of them again.
		sendReceipts(t, bob2, conv)
		if _, _, got := receiptView(t, alice, conv, refs...); got != 0 {
			t.Fatalf("alice got %d receipts from bob's second device, want none", got)
		}

		// Read receipts off on one device: it acknowledges delivery only.
		if err := bob.SetReadReceipts(false); err != nil {
			t.Fatal(err)
		}
		if on, err := bob.ReadReceipts(); err != nil || on {
			t.Fatalf("read receipts %v %v after turning them off", on, err)
		}
		m4, err := alice.Send(ctx, conv, "four")
		if err != nil {
			t.Fatal(err)
		}
		syncTexts(t, bob)
		if err := bob.MarkRead(conv); err != nil {
			t.Fatal(err)
		}
		sendReceipts(t, bob, conv)
		dlv, read, _ = receiptView(t, alice, conv, refs[2], m4.Ref)
		if !slices.Equal(dlv[1], []string{"bob"}) || read[0] != nil || read[1] != nil {
			t.Fatalf("with read receipts off: delivered %v, read %v", dlv, read)
		}
	})
}

// receiptWorld starts a server, alice behind a rewriting proxy, and a
// conversation of alice with the users named, who talk to it directly.
func receiptWorld(t *testing.T, names ...string) (*proxy, *client.Client, protocol.ConversationID, []*client.Client) {
	t.Helper()
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	p := newProxy(t, n)
	alice := registerVia(t, p, "alice")
	var others []*client.Client
	for _, name := range names {
		others = append(others, register(t, n, name))
	}
	conv, err := alice.CreateConversation(ctx, "", names...)
	if err != nil {
		t.Fatal(err)
	}
	// alice is a stranger to them: they accept her conversation (a request
	// sends no receipts).
	for _, o := range others {
		syncTexts(t, o)
		if err := o.Accept(conv); err != nil {
			t.Fatal(err)
		}
	}
	return p, alice, conv, others
}

// A receipt makes no epoch: while the conversation needs one (a member
// was added), receipts wait for the next message to make it.
func TestReceiptsWaitForEpoch(t *testing.T) {
	ctx := context.Background()
	_, alice, conv, others := receiptWorld(t, "bob", "carol")
	bob, carol := others[0], others[1]
	m, err := alice.Send(ctx, conv, "one")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	if err := alice.RemoveMembers(ctx, conv, "carol"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, carol)
	sendReceipts(t, bob, conv)
	convs, err := bob.Conversations(ctx)
	if err != nil || len(convs) != 1 || !convs[0].RotationRequired {
		t.Fatalf("after bob's receipts: %+v %v; want the epoch still to be made", convs, err)
	}
	if _, _, got := receiptView(t, alice, conv, m.Ref); got != 0 {
		t.Fatalf("alice got %d receipts before the new epoch", got)
	}
	if _, err := alice.Send(ctx, conv, "two"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	sendReceipts(t, bob, conv)
	if dlv, _, got := receiptView(t, alice, conv, m.Ref); got != 1 || !slices.Equal(dlv[0], []string{"bob"}) {
		t.Fatalf("alice got %d receipts, delivered %v, after the new epoch", got, dlv)
	}
}

// A member cannot speak for another: a receipt is the signer's, and the
// server cannot give one to another member (the envelope's signature
// names the sender).
func TestReceiptForged(t *testing.T) {
	ctx := context.Background()
	p, alice, conv, others := receiptWorld(t, "bob", "mallory")
	bob, mallory := others[0], others[1]
	m1, err := alice.Send(ctx, conv, "hello")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, mallory)
	r, err := mallory.SendContent(ctx, conv, client.Content{Type: client.ContentReceipt, Text: client.ReceiptRead, Target: m1.Ref})
	if err != nil {
		t.Fatal(err)
	}
	// The server says bob sent mallory's receipt.
	p.set(func(r0 *http.Request, body map[string]any) {
		evs, _ := body["events"].([]any)
		for _, x := range evs {
			if m, ok := x.(map[string]any)["message"].(map[string]any); ok && m["seq"] == float64(r.Seq) {
				m["senderUser"] = bob.UserID().String()
			}
		}
	})
	res, err := alice.Sync(ctx)
	p.set(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 1 || res.Failures[0].Reason != "server_misbehaved" {
		t.Fatalf("failures %v, want the rewritten receipt refused", res.Failures)
	}
	hist, err := alice.History(conv)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].ReadBy != nil {
		t.Fatalf("alice's history %+v after a receipt given to bob", hist)
	}

	// Mallory's own receipt speaks for mallory only.
	if _, err := mallory.SendContent(ctx, conv, client.Content{Type: client.ContentReceipt, Text: client.ReceiptRead, Target: m1.Ref}); err != nil {
		t.Fatal(err)
	}
	if _, read, _ := receiptView(t, alice, conv, m1.Ref); !slices.Equal(read[0], []string{"mallory"}) {
		t.Fatalf("read by %v, want mallory only", read[0])
	}
}

// The server holds back a read receipt and delivers it after a newer one
// (or again): the reader's mark does not move back.
func TestReceiptReplay(t *testing.T) {
	ctx := context.Background()
	p, alice, conv, others := receiptWorld(t, "bob")
	bob := others[0]
	m1, err := alice.Send(ctx, conv, "one")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := alice.Send(ctx, conv, "two")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	if err := bob.MarkReadThrough(conv, m1.Seq); err != nil {
		t.Fatal(err)
	}
	sendReceipts(t, bob, conv) // read through one (seq m2+1), delivered two (m2+2)
	if err := bob.MarkRead(conv); err != nil {
		t.Fatal(err)
	}
	sendReceipts(t, bob, conv) // read through two (m2+3)

	var old any
	p.set(func(r *http.Request, body map[string]any) {
		evs, _ := body["events"].([]any)
		keep := evs[:0]
		for _, x := range evs {
			if m, ok := x.(map[string]any)["message"].(map[string]any); ok && m["seq"] == float64(m2.Seq+1) {
				old = x
				continue
			}
			keep = append(keep, x)
		}
		body["events"] = keep
	})
	_, read, got := receiptView(t, alice, conv, m1.Ref, m2.Ref)
	if old == nil || got != 2 || !slices.Equal(read[1], []string{"bob"}) {
		t.Fatalf("held back %v; alice got %d receipts, read %v", old != nil, got, read)
	}
	// Delivered late, under a new sequence number.
	p.set(func(r *http.Request, body map[string]any) {
		old.(map[string]any)["message"].(map[string]any)["seq"] = float64(m2.Seq + 10)
		body["events"] = []any{old}
	})
	_, read, got = receiptView(t, alice, conv, m1.Ref, m2.Ref)
	p.set(nil)
	if got != 1 || !slices.Equal(read[0], []string{"bob"}) || !slices.Equal(read[1], []string{"bob"}) {
		t.Fatalf("after the late receipt alice got %d receipts, read %v; want both still read", got, read)
	}
}

// A member's receipts mark nothing beyond what they may name: a receipt
// naming a message of another conversation, a receipt or an action (whose
// sequence numbers are past the messages they would cover) marks nothing;
// a malformed one is refused; a read receipt of another account does not
// clear this device's unread count; a receipt served again is a
// duplicate. Mallory's well-formed receipt then marks what it names.
func TestReceiptMaliciousMember(t *testing.T) {
	ctx := context.Background()
	p, alice, conv, others := receiptWorld(t, "bob", "mallory")
	bob, mallory := others[0], others[1]
	m1, err := alice.Send(ctx, conv, "one")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := alice.Send(ctx, conv, "two")
	if err != nil {
		t.Fatal(err)
	}
	// Another conversation of alice and mallory, whose messages' sequence
	// numbers are past m2's.
	conv2, err := alice.CreateConversation(ctx, "", "mallory")
	if err != nil {
		t.Fatal(err)
	}
	var elsewhere client.Message
	for range m2.Seq + 2 {
		if elsewhere, err = alice.Send(ctx, conv2, "elsewhere"); err != nil {
			t.Fatal(err)
		}
	}
	syncTexts(t, mallory)
	if elsewhere.Seq <= m2.Seq {
		t.Fatalf("the other conversation's message has seq %d, want it past %d", elsewhere.Seq, m2.Seq)
	}
	reaction, err := mallory.React(ctx, conv, m1.Ref, "👍")
	if err != nil {
		t.Fatal(err)
	}
	mr := func(text, target string) client.Message {
		t.Helper()
		r, err := mallory.SendContent(ctx, conv, client.Content{Type: client.ContentReceipt, Text: text, Target: target})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	onReaction := mr(client.ReceiptRead, reaction.Ref)
	mr(client.ReceiptRead, onReaction.Ref) // a receipt naming a receipt
	mr(client.ReceiptRead, elsewhere.Ref)
	seen := mr("seen", m2.Ref)

	res, err := alice.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 1 || res.Failures[0].Seq != seen.Seq || res.Failures[0].Reason != "bad_content" {
		t.Fatalf("alice's failures %v, want the receipt %q refused as bad content", res.Failures, "seen")
	}
	if dlv, read, _ := receiptView(t, alice, conv, m1.Ref, m2.Ref); dlv[0] != nil || dlv[1] != nil || read[0] != nil || read[1] != nil {
		t.Fatalf("alice sees delivered %v, read %v after receipts that name no message of hers", dlv, read)
	}

	// Bob has read nothing: mallory's read receipt of both does not make
	// them read on his device.
	if res, err := bob.Sync(ctx); err != nil || len(res.Failures) != 1 || len(res.Receipts) != 3 {
		t.Fatalf("bob's sync: %d receipts, failures %v, %v; want 3 and the malformed one refused", len(res.Receipts), res.Failures, err)
	}
	if n := unread(t, bob, conv); n != 2 {
		t.Fatalf("bob's unread count %d, want 2", n)
	}
	valid := mr(client.ReceiptRead, m2.Ref)
	var event any
	p.set(func(r *http.Request, body map[string]any) {
		evs, _ := body["events"].([]any)
		for _, x := range evs {
			if m, ok := x.(map[string]any)["message"].(map[string]any); ok && m["seq"] == float64(valid.Seq) {
				event = x
			}
		}
	})
	if _, read, got := receiptView(t, alice, conv, m1.Ref, m2.Ref); event == nil || got != 1 || !slices.Equal(read[0], []string{"mallory"}) || !slices.Equal(read[1], []string{"mallory"}) {
		t.Fatalf("after mallory's receipt of two, alice got %d receipts, read %v", got, read)
	}
	if _, _, got := receiptView(t, bob, conv, m1.Ref, m2.Ref); got != 1 || unread(t, bob, conv) != 2 {
		t.Fatalf("bob got %d receipts; his unread count is %d after mallory's read receipt, want 2", got, unread(t, bob, conv))
	}

	// The server serves mallory's receipt again, under a new seq.
	dups := alice.Stats().Duplicates
	p.set(func(r *http.Request, body map[string]any) {
		if r.URL.Path == "/api/sync" {
			event.(map[string]any)["message"].(map[string]any)["seq"] = float64(valid.Seq + 10)
			body["events"] = []any{event}
		}
	})
	_, read, got := receiptView(t, alice, conv, m1.Ref, m2.Ref)
	p.set(nil)
	if got != 0 || alice.Stats().Duplicates != dups+1 || !slices.Equal(read[1], []string{"mallory"}) {
		t.Fatalf("a receipt served again: %d receipts, %d duplicates, read %v", got, alice.Stats().Duplicates-dups, read)
	}
}

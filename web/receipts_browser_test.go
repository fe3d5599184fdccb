package web_test

import (
	"context"
	"testing"
	"time"
)

// receiptOf is a JS expression: the receipt state ("sent", "delivered",
// "read") of the open chat's own message with text.
func receiptOf(text string) string {
	return `(() => { const li = ` + msgWith(text) + `; return li ? li.dataset.receipt || "" : ""; })()`
}

// statusOf is a JS expression: the status line under the open chat's own
// message with text.
func statusOf(text string) string {
	return `(() => { const li = ` + msgWith(text) + `; return li ? li.querySelector(".status").innerText : ""; })()`
}

// TestBrowserReceiptsTyping: two browser users and a terminal user in one
// conversation. A message is shown delivered, then read by each, as the
// others' receipts come; a user typing is shown to the other as "NAME is
// typing…" until the message comes; with read receipts off, a user's
// reading is not told.
func TestBrowserReceiptsTyping(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	browser := startBrowser(t)
	ctx := context.Background()
	alice := newUserPage(t, browser, "alice", url)
	bob := newUserPage(t, browser, "bob", url)
	carol := newUser(t, url, "carol")
	// alice is then no stranger to them (a request sends no receipts).
	bob.createConversation("alice")
	if _, err := carol.c.CreateConversation(ctx, "", "alice"); err != nil {
		t.Fatal(err)
	}
	alice.createConversation("bob", "carol")
	alice.send("are you there?")
	alice.wait("the message delivered to bob's open page", receiptOf("are you there?")+` === "delivered"`)

	carol.waitTexts("alice: are you there?")
	convs, err := carol.c.Conversations(ctx)
	if err != nil || len(convs) != 2 {
		t.Fatalf("carol's conversations: %v %v", convs, err)
	}
	conv := convs[0].ID
	if len(convs[0].Members) != 3 {
		conv = convs[1].ID
	}
	if err := carol.c.MarkRead(conv); err != nil {
		t.Fatal(err)
	}
	if err := carol.c.SendReceipts(ctx, conv); err != nil {
		t.Fatal(err)
	}
	alice.wait("the message read by carol", statusOf("are you there?")+` === "Read by carol"`)
	bob.openConversation("alice, carol")
	bob.waitMessage("are you there?")
	alice.wait("the message read by bob and carol", statusOf("are you there?")+` === "Read by bob, carol"`)

	bob.typeInto("#composer-input", "yes I a")
	alice.waitText("#typing-line", "bob is typing…")
	alice.screenshot("typing", phoneWidth)
	bob.pressEnter()
	alice.waitMessage("yes I a")
	alice.wait("the typing line gone", `document.getElementById("typing-line").hidden`)

	// Bob turns read receipts off (with the keyboard): alice's next
	// message is shown delivered to him, never read.
	eval[bool](bob, `(location.hash = "#/devices", true)`)
	bob.wait("the devices pane", `!document.getElementById("pane-devices").hidden`)
	bob.tabTo("#read-receipts")
	bob.pressKey(" ", 32)
	bob.wait("the setting saved", `document.getElementById("read-receipts").dataset.saved === "false"`)
	bob.screenshot("read-receipts", phoneWidth)
	eval[bool](bob, `(location.hash = "#/", true)`)
	bob.openConversation("alice, carol")
	alice.send("and now?")
	bob.waitMessage("and now?")
	alice.wait("the message delivered", receiptOf("and now?")+` === "delivered"`)
	if alice.holdsWithin(2*time.Second, receiptOf("and now?")+` === "read"`) {
		t.Fatal("alice sees her message read by bob, whose read receipts are off")
	}
	alice.noProblems()
	bob.noProblems()
}

package web_test

import (
	"testing"
	"time"
)

// receiptOf is a JS expression: the receipt state ("sent", "delivered",
// "read") of the open chat's own message with text.
func receiptOf(text string) string {
	return `(() => { const li = ` + msgWith(text) + `; return li ? li.dataset.receipt || "" : ""; })()`
}

// TestBrowserReceiptsTyping: two browser users in one conversation. A
// message is shown delivered, then read, as the other's receipts come; a
// user typing is shown to the other as "NAME is typing…" until the
// message comes.
func TestBrowserReceiptsTyping(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	browser := startBrowser(t)
	alice := newUserPage(t, browser, "alice", url)
	bob := newUserPage(t, browser, "bob", url)
	alice.createConversation("bob")
	alice.send("are you there?")
	alice.wait("the message delivered to bob's open page", receiptOf("are you there?")+` === "delivered"`)
	bob.openConversation("alice")
	bob.waitMessage("are you there?")
	alice.wait("the message read by bob", receiptOf("are you there?")+` === "read"`)
	if got := eval[string](alice, `(`+msgWith("are you there?")+`).querySelector(".status").innerText`); got != "Read" {
		t.Fatalf("alice's status line %q, want Read", got)
	}

	bob.typeInto("#composer-input", "yes I a")
	alice.waitText("#typing-line", "bob is typing…")
	alice.screenshot("typing", 375)
	bob.pressEnter()
	alice.waitMessage("yes I a")
	alice.wait("the typing line gone", `document.getElementById("typing-line").hidden`)

	// Bob turns read receipts off (with the keyboard): alice's next
	// message is shown delivered, never read.
	eval[bool](bob, `(location.hash = "#/devices", true)`)
	bob.wait("the devices pane", `!document.getElementById("pane-devices").hidden`)
	bob.tabTo("#read-receipts")
	bob.pressKey(" ", 32)
	bob.wait("the setting saved", `document.getElementById("read-receipts").dataset.saved === "false"`)
	bob.screenshot("read-receipts", 375)
	eval[bool](bob, `(location.hash = "#/", true)`)
	bob.openConversation("alice")
	alice.send("and now?")
	bob.waitMessage("and now?")
	alice.wait("the message delivered", receiptOf("and now?")+` === "delivered"`)
	if alice.holdsWithin(2*time.Second, receiptOf("and now?")+` === "read"`) {
		t.Fatal("alice sees her message read by bob, whose read receipts are off")
	}
	alice.noProblems()
	bob.noProblems()
}

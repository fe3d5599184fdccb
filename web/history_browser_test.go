package web_test

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
)

// composerClosed is true when the open chat says this account is no
// longer a member and nothing can be sent from it.
const composerClosed = `!document.getElementById("chat-left").hidden && document.getElementById("composer-input").disabled && document.getElementById("send-button").disabled && document.getElementById("attach-button").disabled`

// TestBrowserRemovedKeepsHistory: alice removes bob from a conversation.
// Bob's browser keeps it in the list, marked "You were removed", with the
// messages he read as a member and the composer closed; a reload keeps it
// so.
func TestBrowserRemovedKeepsHistory(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	ctx := context.Background()
	bob := newUserPage(t, startBrowser(t), "bob", url)
	alice := newUser(t, url, "alice")
	conv := alice.startConversation("Book club", "chapter one", "bob")
	bob.openConversation("Book club")
	bob.waitMessage("chapter one")
	if err := alice.c.RemoveMembers(ctx, conv, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.waitText("#chat-left", "You were removed")
	bob.wait("the composer closed", composerClosed)
	bob.waitText("#conv-list", "You were removed")

	bob.do("reload", chromedp.Reload())
	bob.waitView("main")
	bob.waitText("#conv-list", "You were removed")
	bob.openConversation("Book club")
	bob.waitMessage("chapter one")
	bob.wait("the composer closed after a reload", composerClosed)
	bob.noProblems()
}

// TestBrowserLinkBrowserWithHistory: alice's browser approves a second
// browser of hers with its history: the new browser shows the
// conversation's title and earlier messages, in order with their senders,
// and reads what comes next.
func TestBrowserLinkBrowserWithHistory(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	ctx := context.Background()
	browser := startBrowser(t)
	alice := newUserPage(t, browser, "alice", url)
	bob := newUser(t, url, "bob")
	conv := bob.startConversation("Trip", "from bob", "alice")
	alice.openConversation("Trip")
	alice.waitMessage("from bob")
	alice.send("from alice's first browser")
	bob.waitTexts("alice: from alice's first browser")

	second := newPage(t, browser, "alice-second", url)
	second.login("alice")
	second.wait("the link code", `/^[A-Z2-7]{5}(-[A-Z2-7]{5}){3}-[A-Z2-7]{6}$/.test(document.getElementById("link-code").innerText.trim())`)
	code := eval[string](second, `document.getElementById("link-code").innerText.trim()`)
	alice.click("#devices-link")
	alice.typeInto("#approve-code", code)
	alice.click("#approve-history")
	alice.pressEnter()
	alice.waitText("#approve-status", "and this browser's history")
	second.waitView("main")
	second.openConversation("Trip")
	second.waitMessage("from alice's first browser")
	if got := second.texts(); len(got) != 2 || got[0] != "from bob" || got[1] != "from alice's first browser" {
		t.Fatalf("the second browser's history: %q", got)
	}
	senders := eval[[]string](second, `[...document.querySelectorAll("#messages .msg")].map(li => li.classList.contains("own") ? "own" : "other")`)
	if len(senders) != 2 || senders[0] != "other" || senders[1] != "own" {
		t.Fatalf("the second browser's senders: %q", senders)
	}
	if _, err := bob.c.Send(ctx, conv, "after the link"); err != nil {
		t.Fatal(err)
	}
	second.waitMessage("after the link")
	alice.noProblems()
	second.noProblems()
}

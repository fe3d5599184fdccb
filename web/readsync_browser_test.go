package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserReadOnOtherDevice: reading a conversation on another device
// of the account (a terminal linked from the browser) clears its unread
// count in the browser, live: the list's badge and the tab's title.
func TestBrowserReadOnOtherDevice(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	ctx := context.Background()
	alice := newUserPage(t, startBrowser(t), "alice", url)
	bob := newUser(t, url, "bob")

	term := newCLI(t, url, "")
	if err := term.c.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	code, err := term.c.StartLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eval[chromedp.Void](alice, `location.hash = "#/devices"`)
	alice.typeInto("#approve-code", code)
	alice.pressEnter()
	alice.waitText("#approve-status", "Linked")
	lctx, cancel := context.WithTimeout(ctx, stepTimeout)
	err = term.c.WaitLink(lctx, 100*time.Millisecond)
	cancel()
	if err != nil {
		t.Fatalf("the terminal linked from the browser: %v", err)
	}

	alice.createConversation("bob")
	conv := onlyConversation(t, bob)
	eval[chromedp.Void](alice, `location.hash = "#/devices"`) // the chat closed: what comes stays unread
	send(t, bob, conv, "one")
	send(t, bob, conv, "two")
	badge := `document.querySelector('#conv-list li[data-id="` + conv.String() + `"] .badge').dataset.count`
	alice.wait("two unread", badge+` === "2" && document.title === "(2) sandi"`)

	if _, err := term.c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := term.c.MarkRead(conv); err != nil {
		t.Fatal(err)
	}
	if err := term.c.SendReceipts(ctx, conv); err != nil { // as `sandi sync` does after printing
		t.Fatal(err)
	}
	alice.wait("read on the terminal, cleared in the browser", badge+` === "0" && document.title === "sandi"`)
	alice.noProblems()
}

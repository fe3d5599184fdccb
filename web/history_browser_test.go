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

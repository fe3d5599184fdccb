package web_test

import "testing"

// TestBrowserConversationState: a rename made in one browser shows in the
// other's list and chat header without a reload, and a member added later
// (a third browser) sees the title at once.
func TestBrowserConversationState(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	browser := startBrowser(t)
	alice, bob, carol := newUserPage(t, browser, "alice", url), newUserPage(t, browser, "bob", url), newUserPage(t, browser, "carol", url)

	alice.createConversation("bob")
	alice.send("hello bob")
	bob.openConversation("alice")
	bob.waitMessage("hello bob")

	alice.openMembers()
	alice.typeInto("#rename-input", "Lunch plans")
	alice.pressEnter()
	alice.waitText("#chat-title", "Lunch plans")
	bob.waitText("#chat-title", "Lunch plans")
	bob.waitText("#conv-list", "Lunch plans")

	alice.typeInto("#add-member-input", "carol")
	alice.pressEnter()
	alice.waitText("#member-list", "carol")
	carol.openConversation("Lunch plans")
	if got := carol.texts(); len(got) != 0 {
		carol.fail("carol, added later, reads %q", got)
	}
	bob.send("welcome carol")
	carol.waitMessage("welcome carol")
	for _, p := range []*page{alice, bob, carol} {
		p.noProblems()
	}
}

package web_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// composerClosed is true when the open chat says this account is no
// longer a member and nothing can be sent from it.
const composerClosed = `!document.getElementById("chat-left").hidden && document.getElementById("composer-input").disabled && document.getElementById("send-button").disabled && document.getElementById("attach-button").disabled`

// TestBrowserRemovedKeepsHistory: alice removes bob from a conversation.
// Bob's browser keeps it in the list, marked "You were removed", with the
// messages he read as a member and the composer closed (and no action
// menus on its messages); a reload keeps it so.
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

	bob.reload("main")
	bob.waitText("#conv-list", "You were removed")
	bob.openConversation("Book club")
	bob.waitMessage("chapter one")
	bob.wait("the composer closed after a reload", composerClosed)
	if n := eval[int](bob, `document.querySelectorAll("#messages .msg-actions").length`); n != 0 {
		t.Fatalf("a conversation bob was removed from offers %d message action menus", n)
	}
	bob.screenshot("removed-conversation", 1280)
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
	alice.approveWithHistory(second.linkCode())
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

// TestBrowserLinkTransferRetried: the history alice's browser hands over
// to her second browser cannot be fetched when the second one links (the
// archive's requests fail there). The second browser is linked all the
// same and says that the history is not imported yet; it says so again
// after a reload (it tried again at start-up), and once the archive can
// be fetched, "Try again" imports it: the earlier messages appear, in
// order.
func TestBrowserLinkTransferRetried(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	browser := startBrowser(t)
	alice := newUserPage(t, browser, "alice", url)
	bob := newUser(t, url, "bob")
	bob.startConversation("Trip", "from bob", "alice")
	alice.openConversation("Trip")
	alice.waitMessage("from bob")
	alice.send("from alice's first browser")
	bob.waitTexts("alice: from alice's first browser")

	second := newPage(t, browser, "alice-second", url)
	second.login("alice")
	code := second.linkCode()
	second.block(url + "/api/archives/*")
	alice.approveWithHistory(code)

	const failed = `!document.getElementById("transfer-banner").hidden && !document.getElementById("transfer-retry").disabled && document.getElementById("transfer-text").innerText.includes("not imported yet")`
	second.waitView("main")
	second.wait("the import said to have failed", failed)
	second.screenshot("transfer-not-imported", phoneWidth)
	second.reload("main")
	second.wait("the import failed again at start-up", failed)
	if strings.Contains(eval[string](second, `document.getElementById("conv-list").innerText`), "Trip") {
		t.Fatal("the second browser knows the conversation's title before the import")
	}

	second.block()
	second.click("#transfer-retry")
	second.wait("the banner gone", `document.getElementById("transfer-banner").hidden`)
	second.openConversation("Trip")
	second.waitMessage("from alice's first browser")
	if got := second.texts(); len(got) != 2 || got[0] != "from bob" || got[1] != "from alice's first browser" {
		t.Fatalf("the second browser's history: %q", got)
	}
	second.reload("main")
	if !eval[bool](second, `document.getElementById("transfer-banner").hidden`) {
		t.Fatal("the banner is back after a reload")
	}
	alice.noProblems()
	second.noProblems("ERR_BLOCKED_BY_CLIENT")
}

// TestBrowserLogoutKeepHistory: alice logs out of her browser keeping its
// history: the browser is removed from her account (no device, no keys,
// no account left here), and the sign-in screen shows the conversation
// and its messages, read only, across reloads, until "Delete everything
// from this browser" (clicked twice) deletes them for good.
func TestBrowserLogoutKeepHistory(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	ctx := context.Background()
	alice := newUserPage(t, startBrowser(t), "alice", url)
	bob := newUser(t, url, "bob")
	alice.createConversation("bob")
	alice.send("kept after logout")
	convs, err := bob.c.Conversations(ctx)
	if err != nil || len(convs) != 1 {
		t.Fatalf("bob's conversations: %+v %v", convs, err)
	}
	bob.waitTexts("alice: kept after logout")
	if _, err := bob.c.Send(ctx, convs[0].ID, "bob's reply"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("bob's reply")

	alice.openLogoutPanel()
	alice.waitText("#logout-backup", "no backup")
	alice.screenshot("logout-panel", 1280)
	alice.click("#logout-keep-history")
	alice.waitView("auth")
	if eval[bool](alice, `sandi.state().then(s => s.hasAccount || s.hasIdentity)`) {
		t.Fatal("the browser still holds an account after logging out")
	}
	// Of every IndexedDB database of the page, only the kept history holds
	// anything, and it holds no key.
	stored := eval[map[string][]string](alice, `(async () => {
		const out = {};
		for (const d of await indexedDB.databases()) {
			const db = await new Promise((ok, ko) => { const r = indexedDB.open(d.name); r.onsuccess = () => ok(r.result); r.onerror = () => ko(r.error); });
			const keys = db.objectStoreNames.contains("kv") ? await new Promise((ok) => { const r = db.transaction("kv").objectStore("kv").getAllKeys(); r.onsuccess = () => ok(r.result.map((k) => k[0])); }) : [];
			db.close();
			out[d.name] = keys;
		}
		return out;
	})()`)
	for name, keys := range stored {
		for _, k := range keys {
			if name != "sandi-kept" && k != "account" || name == "sandi-kept" && !strings.HasPrefix(k, "kept/") {
				t.Errorf("after logging out, IndexedDB %s holds %q", name, k)
			}
		}
	}
	if len(stored["sandi-kept"]) != 1 {
		t.Fatalf("the kept history's database: %v", stored)
	}
	other := newCLI(t, url, "")
	if err := other.c.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if ss, err := other.c.Sessions(ctx); err != nil || len(ss) != 1 || !ss[0].Current {
		t.Fatalf("alice's sessions after the logout: %+v %v", ss, err)
	}

	for _, when := range []string{"after the logout", "after a reload"} {
		if when == "after a reload" {
			alice.reload("auth")
		}
		alice.waitText("#kept-list", "bob")
		alice.click("#kept-list button")
		alice.waitText("#kept-messages", "bob's reply")
		got := eval[[]string](alice, `[...document.querySelectorAll("#kept-messages .msg")].map(li => li.querySelector(".sender").innerText + ": " + li.querySelector(".text").innerText)`)
		if len(got) != 2 || got[0] != "alice: kept after logout" || got[1] != "bob: bob's reply" {
			t.Fatalf("%s, the kept history shows %q", when, got)
		}
	}
	alice.screenshot("kept-history", 1280, 390)
	alice.click("#kept-delete")
	alice.click("#kept-delete")
	alice.wait("the kept history gone", `document.getElementById("kept").hidden`)
	alice.reload("auth")
	if !alice.holdsWithin(time.Second, `document.getElementById("kept").hidden && document.getElementById("kept-list").children.length === 0`) {
		t.Fatal("the kept history is back after a reload")
	}
	alice.noProblems()
}

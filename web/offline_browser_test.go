package web_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// TestBrowserOffline: with the server stopped the page says the connection
// is lost; a message sent meanwhile is kept; a reload opens the page from
// the service worker's copy with the conversation and its history; when
// the server is back, the kept message goes out by itself, and its
// receiver gets it once.
func TestBrowserOffline(t *testing.T) {
	requireBuilt(t)
	dir := t.TempDir()
	url, stop := serveAt(t, dir, "127.0.0.1:0", nil)
	t.Cleanup(func() { stop() })
	bob := newUser(t, url, "bob")
	alice := newUserPage(t, startBrowser(t), "alice", url)
	alice.createConversation("bob")
	alice.send("before the outage")
	alice.wait("the service worker", `navigator.serviceWorker.controller !== null`)
	alice.wait("the page's shell cached", `caches.open("sandi-shell").then(c => c.keys()).then(k => k.some(r => r.url.endsWith(".wasm")) && k.some(r => new URL(r.url).pathname === "/"))`)
	alice.wait("the connection shown as up", `document.getElementById("conn").hidden && window.sandiOffline.state() === "online"`)

	stop()
	alice.wait("the connection shown as lost", `!document.getElementById("conn").hidden && document.getElementById("conn").innerText.includes("Reconnecting")`)
	alice.typeInto("#composer-input", "sent while down")
	alice.pressEnter()
	alice.wait("the message kept", `sandi.outbox().then(o => o.length === 1 && o[0].text === "sent while down")`)
	// The page reads its outbox once it has started, and a message sent
	// from it before that read is in the outbox and pending alike: the
	// read does not pend it again (one bubble; later, one send).
	// The outbox is read again here (by the page's own composer module,
	// under its content-hashed name), as it is then.
	if n := eval[int](alice, `(async () => {
		const url = performance.getEntriesByType("resource").map((e) => e.name).find((n) => /\/web\/composer\.[0-9a-f]+\.js$/.test(n));
		if (!url) throw new Error("composer.js was not loaded");
		await (await import(url)).loadOutbox();
		return [...document.querySelectorAll("#messages .msg.own")].filter(li => li.querySelector(".text").innerText === "sent while down").length;
	})()`); n != 1 {
		alice.fail("“sent while down” shown %d times once the outbox was read with it pending", n)
	}

	alice.do("reload with the server down", chromedp.Reload())
	alice.waitView("main")
	alice.openConversation("bob")
	alice.waitMessage("before the outage")
	alice.waitText("#messages", "sent while down")
	alice.wait("the connection shown as lost", `!document.getElementById("conn").hidden`)

	_, stop = serveAt(t, dir, strings.TrimPrefix(url, "http://"), nil)
	alice.wait("“sent while down” sent", `[...document.querySelectorAll("#messages .msg.own")].some(li => li.querySelector(".text").innerText === "sent while down" && li.querySelector(".status").innerText === "Sent")`)
	alice.wait("the connection shown as up", `document.getElementById("conn").hidden`)
	alice.wait("the outbox emptied", `sandi.outbox().then(o => o.length === 0)`)

	got := bob.waitTexts("alice: before the outage", "alice: sent while down")
	got = append(got, bob.syncTexts()...)
	h, err := bob.c.History(onlyConversation(t, bob))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range h {
		if m.Type == client.ContentText && m.Text == "sent while down" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("bob has “sent while down” %d times (synced %q)", n, got)
	}

	// A message that went out while its outbox entry stayed (the page
	// reloaded between the two): after the reload it is sent again under
	// its client id, the server refuses the new envelope as another
	// message's (idempotency_conflict), and the page shows it once, sent.
	conv := onlyConversation(t, bob)
	again := "sent before the reload"
	alice.wait("a message sent with its outbox entry kept", `(async () => { const id = `+js(client.NewClientID())+`;
		await sandi.send(`+js(conv.String())+`, `+js(again)+`, id);
		await sandi.outboxPut(id, `+js(conv.String())+`, `+js(again)+`);
		return (await sandi.outbox()).length === 1; })()`)
	alice.reload("main")
	alice.openConversation("bob")
	alice.waitMessage(again)
	alice.wait("the outbox emptied after the reload", `sandi.outbox().then(o => o.length === 0)`)
	if n := eval[int](alice, `[...document.querySelectorAll("#messages .msg")].filter(li => li.querySelector(".text").innerText === `+js(again)+`).length`); n != 1 || eval[bool](alice, `document.getElementById("messages").innerText.includes("Not sent")`) {
		alice.fail("%q shown %d times, or shown as not sent", again, n)
	}

	// Read while the server is down: the read mark is told once the
	// connection is back (bob sees the message read; the account's other
	// devices would clear it), though a reload dropped the round of
	// receipts the page had started and the module had nothing new to say.
	eval[chromedp.Void](alice, `location.hash = "#/devices"`) // the chat closed: what comes stays unread
	send(t, bob, conv, "read while down")
	badge := `document.querySelector('#conv-list li[data-id="` + conv.String() + `"] .badge').dataset.count`
	alice.wait("one unread", badge+` === "1"`)
	stop()
	alice.wait("the connection shown as lost", `!document.getElementById("conn").hidden`)
	alice.openConversation("bob")
	alice.waitMessage("read while down")
	alice.wait("read in the browser", `sandi.markRead(`+js(conv.String())+`).then(() => true)`)
	eval[chromedp.Void](alice, `location.hash = "#/devices"`)
	alice.reload("main")
	_, stop = serveAt(t, dir, strings.TrimPrefix(url, "http://"), nil)
	alice.wait("the connection shown as up", `document.getElementById("conn").hidden`)
	waitReadBy(t, bob, conv, "read while down", "alice")
	alice.noProblems("Failed to load resource", "WebSocket connection", "ERR_CONNECTION_REFUSED")
}

// waitReadBy syncs u until its message text in conv shows as read by
// reader.
func waitReadBy(t *testing.T, u *cli, conv protocol.ConversationID, text, reader string) {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		u.syncTexts()
		h, err := u.c.History(conv)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range h {
			if m.Text == text && slices.Contains(m.ReadBy, reader) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q is not read by %s", u.c.Username(), text, reader)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// onlyConversation is the one conversation u is in.
func onlyConversation(t *testing.T, u *cli) protocol.ConversationID {
	t.Helper()
	list, err := u.c.Conversations(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("%s: conversations %v, %v", u.c.Username(), list, err)
	}
	return list[0].ID
}

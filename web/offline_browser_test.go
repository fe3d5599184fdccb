package web_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	alice.waitOfflineShell()

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

// TestBrowserOfflineFiles: a message with a file, sent while the server
// is down, is kept with the file itself; a reload with the server still
// down shows it pending with its file card; when the server is back it is
// uploaded and sent by itself, the receiver saves the file byte for byte
// from exactly one message, and the outbox is empty. An upload a reload
// cut off continues from the parts the server holds. A file message that
// went out while its outbox entry stayed (the page closed between the
// two) is sent again after a reload under its client id and stored once.
// One the browser refuses to keep is sent all the same, and says so.
func TestBrowserOfflineFiles(t *testing.T) {
	requireBuilt(t)
	dir := t.TempDir()
	url, stop := serveAt(t, dir, "127.0.0.1:0", nil)
	t.Cleanup(func() { stop() })
	bob := newUser(t, url, "bob")
	alice := newUserPage(t, startBrowser(t), "alice", url)
	alice.createConversation("bob")
	alice.waitOfflineShell()
	conv := onlyConversation(t, bob)

	data := make([]byte, 200<<10)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	file := filepath.Join(t.TempDir(), "report.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	own := func(name string) string {
		return `[...document.querySelectorAll("#messages .msg.own")].filter(li => [...li.querySelectorAll(".att-name")].some(e => e.innerText === ` + js(name) + `))`
	}
	stop()
	alice.wait("the connection shown as lost", `!document.getElementById("conn").hidden`)
	alice.do("pick a file", chromedp.SetUploadFiles(chromedp.CSS(`#attach-input`), []string{file}))
	alice.wait("the file message not sent", own("report.bin")+`.some(li => li.dataset.status === "failed")`)

	alice.do("reload with the server down", chromedp.Reload())
	alice.waitView("main")
	alice.openConversation("bob")
	alice.wait("the file message pending after the reload", own("report.bin")+`.length === 1`)

	_, stop = serveAt(t, dir, strings.TrimPrefix(url, "http://"), nil)
	alice.wait("the file message sent", own("report.bin")+`.some(li => li.dataset.status === "sent")`)
	alice.waitOutboxEmpty()
	if got := bob.save(conv, "report.bin"); !bytes.Equal(got, data) {
		t.Fatalf("bob saved %d bytes of report.bin, different from the %d sent", len(got), len(data))
	}
	if n := bob.countAttachments(conv, "report.bin"); n != 1 {
		t.Fatalf("bob has report.bin in %d messages", n)
	}

	// An upload cut off by a reload continues from the parts the server
	// holds: part 0 of this two-part file is not sent again.
	const partSize = 8 << 20
	parts := func(n string) string {
		return `performance.getEntriesByType("resource").filter(e => /\/api\/blobs\/[^/]+\/parts\/` + n + `$/.test(e.name)).length`
	}
	sent := eval[int](alice, parts("0")) // of this document, before
	alice.block(url + "/api/blobs/*/parts/1")
	alice.giveFiles("drop", pageFile("resume.bin", partSize+1000))
	alice.wait("part 0 sent, part 1 not", own("resume.bin")+`.some(li => li.dataset.status === "failed") && `+parts("0")+` === `+fmt.Sprint(sent+1))
	alice.reload("main")
	alice.openConversation("bob")
	alice.wait("the upload tried again after the reload", own("resume.bin")+`.some(li => li.dataset.status === "failed")`)
	alice.block()
	alice.do("retry", chromedp.Click(chromedp.JSPath(own("resume.bin")+`[0].querySelector(".retry")`), chromedp.NodeVisible))
	alice.wait("resume.bin sent", own("resume.bin")+`.some(li => li.dataset.status === "sent")`)
	if n := eval[int](alice, parts("0")); n != 0 {
		alice.fail("part 0 sent %d times again after the reload", n)
	}
	if got := bob.save(conv, "resume.bin"); !bytes.Equal(got, bytes.Repeat([]byte{7}, partSize+1000)) {
		t.Fatalf("bob saved %d bytes of resume.bin, not the file", len(got))
	}

	// Sent, with its entry kept: after the reload it is uploaded and sent
	// again under its client id; the server keeps the first (the page is
	// refused: idempotency_conflict), and the page shows it once.
	// A message kept by another device of this browser (a logout that
	// could not delete it, then a new login) is deleted, not sent.
	alice.wait("a file message sent with its outbox entry kept", `(async () => {
		const file = new File([new Uint8Array(1000).fill(9)], "again.bin", { type: "application/octet-stream" });
		const p = { clientId: `+js(client.NewClientID())+`, conv: `+js(conv.String())+`, text: "", at: Date.now(), files: [{ file, status: "waiting" }] };
		const h = await sandi.upload(p.conv, file, { name: file.name, type: file.type });
		await sandi.send(p.conv, "", p.clientId, [h]);
		await sandiOutbox.keep(p, (await sandi.state()).deviceId);
		const other = new File([new Uint8Array(1000).fill(5)], "foreign.bin", { type: "application/octet-stream" });
		await sandiOutbox.keep({ ...p, clientId: `+js(client.NewClientID())+`, files: [{ file: other, status: "waiting" }] }, "another device");
		return (await sandiOutbox.list()).length === 2; })()`)
	alice.reload("main")
	alice.openConversation("bob")
	alice.waitOutboxEmpty()
	if eval[bool](alice, `document.getElementById("messages").innerText.includes("foreign.bin")`) {
		alice.fail("another device's kept message is shown")
	}
	alice.wait("again.bin shown", own("again.bin")+`.length > 0`)
	if n := eval[int](alice, own("again.bin")+`.length`); n != 1 || eval[bool](alice, `document.getElementById("messages").innerText.includes("Not sent")`) {
		alice.fail("again.bin shown %d times, or shown as not sent", n)
	}
	bob.attachment(conv, "again.bin")
	if n := bob.countAttachments(conv, "again.bin"); n != 1 {
		t.Fatalf("bob has again.bin in %d messages", n)
	}
	if n := bob.countAttachments(conv, "foreign.bin"); n != 0 {
		t.Fatalf("bob has foreign.bin in %d messages", n)
	}

	// A browser that refuses to keep the file (as when its storage quota
	// is used up; here: the page's outbox database is at a version the
	// page cannot open): the message says, while it is not sent, that a
	// reload would lose it, and is sent all the same.
	eval[chromedp.Void](alice, `new Promise((resolve, reject) => { const r = indexedDB.open("sandi-outbox", 1000); r.onsuccess = () => { r.result.close(); resolve(); }; r.onerror = () => reject(r.error); })`)
	alice.block(url + "/api/conversations/*/blobs")
	alice.giveFiles("drop", pageFile("unkept.bin", 100<<10))
	alice.wait("the note that it is not kept", own("unkept.bin")+`.some(li => li.dataset.status === "failed" && !li.querySelector(".unkept").hidden)`)
	alice.screenshot("outbox-unkept", phoneWidth)
	alice.block()
	alice.do("retry", chromedp.Click(chromedp.JSPath(own("unkept.bin")+`[0].querySelector(".retry")`), chromedp.NodeVisible))
	alice.wait("unkept.bin sent, without the note", own("unkept.bin")+`.some(li => li.dataset.status === "sent" && li.querySelector(".unkept").hidden)`)
	bob.attachment(conv, "unkept.bin")
	if n := bob.countAttachments(conv, "unkept.bin"); n != 1 {
		t.Fatalf("bob has unkept.bin in %d messages", n)
	}

	// Logging out deletes the files of a message not sent.
	eval[chromedp.Void](alice, `new Promise((resolve) => { const r = indexedDB.deleteDatabase("sandi-outbox"); r.onsuccess = r.onerror = () => resolve(); })`)
	alice.block(url + "/api/conversations/*/blobs")
	alice.giveFiles("drop", pageFile("left.bin", 1000))
	alice.wait("left.bin kept, not sent", own("left.bin")+`.some(li => li.dataset.status === "failed") && sandiOutbox.list().then(l => l.length === 1)`)
	alice.block()
	alice.logout()
	alice.wait("the outbox deleted", `indexedDB.databases().then(d => !d.some(x => x.name === "sandi-outbox"))`)
	alice.noProblems("Failed to load resource", "WebSocket connection", "ERR_CONNECTION_REFUSED")
}

// waitOfflineShell waits until the page can open without the server: its
// service worker controls it and has cached the page and the module.
func (p *page) waitOfflineShell() {
	p.t.Helper()
	p.wait("the service worker", `navigator.serviceWorker.controller !== null`)
	p.wait("the page's shell cached", `caches.open("sandi-shell").then(c => c.keys()).then(k => k.some(r => r.url.endsWith(".wasm")) && k.some(r => new URL(r.url).pathname === "/"))`)
	p.wait("the connection shown as up", `document.getElementById("conn").hidden && window.sandiOffline.state() === "online"`)
}

// waitOutboxEmpty waits until neither outbox keeps a message: the
// module's (texts) and the page's (messages with files).
func (p *page) waitOutboxEmpty() {
	p.t.Helper()
	p.wait("the outbox emptied", `Promise.all([sandi.outbox(), sandiOutbox.list()]).then(([a, b]) => a.length === 0 && b.length === 0)`)
}

// countAttachments is how many messages of u's history carry an
// attachment named name.
func (u *cli) countAttachments(conv protocol.ConversationID, name string) int {
	u.t.Helper()
	u.syncTexts()
	h, err := u.c.History(conv)
	if err != nil {
		u.t.Fatal(err)
	}
	n := 0
	for _, m := range h {
		for _, a := range m.Attachments {
			if a.Name == name {
				n++
				break
			}
		}
	}
	return n
}

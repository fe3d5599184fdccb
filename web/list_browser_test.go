package web_test

import (
	"context"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"

	"sandi.dev/protocol"
)

// TestBrowserListAndNotifications: the list puts the conversation with the
// latest message first, live, with unread counts and their sum in the tab's
// title; the search box filters by name and finds messages of the local
// history; a message that arrives while the tab is hidden makes a desktop
// notification that shows what the setting allows.
func TestBrowserListAndNotifications(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	bob, carol := newUser(t, url, "bob"), newUser(t, url, "carol")
	alice := newUserPage(t, startBrowser(t), "alice", url)
	bobConv := bob.startConversation("Bob chat", "the pineapple question", "alice")
	carol.startConversation("Carol chat", "hello from carol", "alice")

	order := `[...document.querySelectorAll("#conv-list li:not([hidden]) .conv-name")].map(e => e.innerText).join(",")`
	alice.wait("carol's conversation first", order+` === "Carol chat,Bob chat"`)
	alice.wait("two unread in the title", `document.title === "(2) sandi"`)
	send(t, bob, bobConv, "bob again")
	alice.wait("bob's conversation first, live", order+` === "Bob chat,Carol chat"`)
	alice.wait("three unread in the title", `document.title === "(3) sandi"`)
	alice.waitText(`#conv-list li[data-id="`+bobConv.String()+`"] .badge`, "2")

	alice.typeInto("#conv-search", "carol")
	alice.wait("only carol's conversation", order+` === "Carol chat"`)
	eval[chromedp.Void](alice, `(() => { const i = document.getElementById("conv-search"); i.value = "PINEAPPLE"; i.dispatchEvent(new Event("input")); })()`)
	alice.wait("the message found", `[...document.querySelectorAll("#search-hits .hit")].map(a => a.innerText).join("|").includes("the pineapple question")`)
	alice.wait("no conversation named so", order+` === ""`)
	alice.click("#search-hits .hit")
	alice.wait("bob's conversation open", `document.getElementById("chat-title").innerText === "Bob chat"`)
	alice.wait("the title counts carol's only", `document.title === "(1) sandi"`)
	eval[chromedp.Void](alice, `(() => { const i = document.getElementById("conv-search"); i.value = "zzz"; i.dispatchEvent(new Event("input")); })()`)
	alice.wait("nothing found", `!document.getElementById("search-none").hidden`)

	// Notifications: the browser grants the permission; the page records
	// the notifications it makes and believes its tab hidden.
	alice.do("grant notifications", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		c := chromedp.FromContext(ctx)
		_, err := cdp.Call(ctx, c.Browser, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: browser.PermissionSettingGranted,
			Origin: url, BrowserContextID: c.BrowserContextID,
		})
		return err
	}))
	eval[chromedp.Void](alice, `(() => {
		window.__notes = [];
		window.Notification = class extends Notification {
			constructor(title, opts) { super(title, opts); window.__notes.push({ title, body: opts.body }); }
		};
		Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
		const s = document.getElementById("notify-setting");
		s.value = "full";
		s.dispatchEvent(new Event("change"));
	})()`)
	alice.wait("the setting kept", `localStorage.getItem("sandi-notify") === "full"`)
	send(t, bob, bobConv, "are you there?")
	alice.wait("a notification with sender and text", `window.__notes.some(n => n.title === "bob in Bob chat" && n.body === "are you there?")`)
	alice.wait("the open conversation counts while hidden", `document.title === "(2) sandi"`)
	eval[chromedp.Void](alice, `(() => { const s = document.getElementById("notify-setting"); s.value = "sender"; s.dispatchEvent(new Event("change")); })()`)
	alice.wait("the setting kept", `localStorage.getItem("sandi-notify") === "sender"`)
	send(t, bob, bobConv, "secret plans")
	alice.wait("a notification without the text", `window.__notes.some(n => n.title === "bob in Bob chat" && n.body === "New message")`)
	if eval[bool](alice, `window.__notes.some(n => (n.title + n.body).includes("secret plans"))`) {
		alice.fail("the sender-only notification shows the text: %v", eval[any](alice, `window.__notes`))
	}
	// No details: neither the sender nor the conversation nor the text.
	eval[chromedp.Void](alice, `(() => { window.__notes = []; const s = document.getElementById("notify-setting"); s.value = "nothing"; s.dispatchEvent(new Event("change")); })()`)
	alice.wait("the setting kept", `localStorage.getItem("sandi-notify") === "nothing"`)
	send(t, bob, bobConv, "the surprise party")
	alice.wait("a notification without details", `window.__notes.length === 1 && window.__notes[0].title === "sandi" && window.__notes[0].body === "New message"`)
	// Off: none.
	eval[chromedp.Void](alice, `(() => { const s = document.getElementById("notify-setting"); s.value = "off"; s.dispatchEvent(new Event("change")); })()`)
	alice.wait("the setting kept", `localStorage.getItem("sandi-notify") === "off"`)
	send(t, bob, bobConv, "one more")
	alice.wait("the message counted", `document.title === "(5) sandi"`)
	if n := eval[int](alice, `window.__notes.length`); n != 1 {
		alice.fail("%d notifications with notifications off, want none after the first", n-1)
	}
	alice.noProblems()
}

// send sends text in conv from the terminal client u.
func send(t *testing.T, u *cli, conv protocol.ConversationID, text string) {
	t.Helper()
	if _, err := u.c.Send(context.Background(), conv, text); err != nil {
		t.Fatal(err)
	}
}

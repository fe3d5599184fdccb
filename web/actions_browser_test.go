package web_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"sandi.dev/client"
	"sandi.dev/protocol"
)

// msgWith is a JS expression for the open chat's message whose text is text.
func msgWith(text string) string {
	return `[...document.querySelectorAll("#messages .msg")].find(li => li.querySelector(".text").innerText === ` + js(text) + `)`
}

// menuAction opens the actions menu of the message with text from the
// keyboard (focus its button, Enter), walks to the item label with the
// arrow keys and presses Enter on it.
func (p *page) menuAction(text, label string) {
	p.t.Helper()
	p.wait("the actions button of “"+text+"”", `(() => { const li = `+msgWith(text)+`; const b = li && li.querySelector(".msg-actions"); if (b) b.focus(); return !!b && document.activeElement === b; })()`)
	p.pressEnter()
	p.wait("the menu", `document.activeElement.getAttribute("role") === "menuitem"`)
	for range 10 {
		if eval[bool](p, `(document.activeElement.getAttribute("aria-label") || document.activeElement.innerText) === `+js(label)) {
			p.pressEnter()
			return
		}
		p.pressKey("ArrowDown", 40)
	}
	p.fail("no menu item %q in %q", label, eval[string](p, `document.querySelector(".msg-menu").innerText`))
}

// TestBrowserActions: two browser users and a terminal user reply, react,
// edit and delete in one conversation, with the keyboard, and each sees
// what the others did; a browser offers edit and delete on its own
// messages only.
func TestBrowserActions(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	browser := startBrowser(t)
	ctx := context.Background()
	alice := newUserPage(t, browser, "alice", url)
	bob := newUserPage(t, browser, "bob", url)
	carol := newUser(t, url, "carol")
	alice.createConversation("bob", "carol")
	alice.send("lunch at noon?")
	bob.openConversation("alice, carol")
	bob.waitMessage("lunch at noon?")
	carol.waitTexts("alice: lunch at noon?")
	convs, err := carol.c.Conversations(ctx)
	if err != nil || len(convs) != 1 {
		t.Fatalf("carol's conversations: %v %v", convs, err)
	}
	conv := convs[0].ID
	hist, err := carol.c.History(conv)
	if err != nil || len(hist) == 0 {
		t.Fatalf("carol's history: %v %v", hist, err)
	}
	target := hist[len(hist)-1]

	// Bob: no edit or delete on alice's message; a reply, then a reaction.
	bob.menuAction("lunch at noon?", "Reply")
	if n := eval[int](bob, `document.querySelectorAll(".msg-menu").length`); n != 0 {
		bob.fail("the menu stayed open")
	}
	bob.wait("the reply context", `document.getElementById("composer-context-text").innerText.includes("Replying to alice: lunch at noon?") && document.activeElement.id === "composer-input"`)
	bob.screenshot("actions-reply")
	bob.typeInto("#composer-input", "yes, noon")
	bob.pressEnter()
	bob.waitMessage("yes, noon")
	alice.waitMessage("yes, noon")
	alice.wait("the reply quote", `(() => { const li = `+msgWith("yes, noon")+`; return !!li && li.querySelector(".reply-quote").innerText === "↳ You: lunch at noon?"; })()`)
	bob.menuAction("lunch at noon?", "React with 👍")
	alice.wait("bob's 👍", `(() => { const li = `+msgWith("lunch at noon?")+`; return !!li && li.querySelector(".reactions") && li.querySelector(".reactions").innerText.includes("👍 1"); })()`)
	bob.wait("bob's own 👍", msgWith("lunch at noon?")+`.querySelector(".reaction.mine") !== null`)
	if eval[bool](bob, `(() => { const b = `+msgWith("lunch at noon?")+`.querySelector(".msg-actions"); b.click(); return [...document.querySelectorAll(".msg-menu [role=menuitem]")].some(i => /Edit|Delete/.test(i.innerText)); })()`) {
		bob.fail("bob's menu offers edit or delete on alice's message")
	}
	bob.fits("#messages", phoneWidth)
	bob.screenshot("actions-menu")
	bob.do("focus the menu", chromedp.Focus(chromedp.CSS(".msg-menu [role=menuitem]")))
	bob.pressKey("Escape", 27)
	bob.wait("the menu closed, focus back on its button", `document.querySelectorAll(".msg-menu").length === 0 && document.activeElement.classList.contains("msg-actions")`)

	// Carol, from the terminal: a reaction, and a message she edits.
	carol.waitHistory(conv, "bob's reply", func(h []client.Message) bool {
		return slices.ContainsFunc(h, func(m client.Message) bool {
			return m.Type == client.ContentReply && m.ReplyTo == target.Ref && m.Text == "yes, noon"
		})
	})
	if _, err := carol.c.React(ctx, conv, target.Ref, "🎉"); err != nil {
		t.Fatal(err)
	}
	own, err := carol.c.Send(ctx, conv, "I may be late")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.c.Edit(ctx, conv, own.Ref, "I will be late"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*page{alice, bob} {
		p.wait("carol's 🎉", msgWith("lunch at noon?")+`.querySelector(".reactions").innerText.includes("🎉 1")`)
		p.wait("carol's edit", `(() => { const li = `+msgWith("I will be late")+`; return !!li && li.querySelector(".edited") !== null; })()`)
	}

	// Alice edits and then deletes her message, from the keyboard.
	alice.menuAction("lunch at noon?", "Edit")
	alice.wait("the edit in the composer", `document.getElementById("composer-input").value === "lunch at noon?"`)
	eval[chromedp.Void](alice, `document.getElementById("composer-input").value = ""`)
	alice.typeInto("#composer-input", "lunch at one?")
	alice.pressEnter()
	for _, p := range []*page{alice, bob} {
		p.wait("the edited text", `(() => { const li = `+msgWith("lunch at one?")+`; return !!li && li.querySelector(".edited") !== null && li.querySelector(".reactions").innerText.includes("👍"); })()`)
		p.wait("the reply quoting the new text", msgWith("yes, noon")+`.querySelector(".reply-quote").innerText.endsWith("lunch at one?")`)
	}
	alice.screenshot("actions-edited")
	alice.menuAction("lunch at one?", "Delete for everyone")
	for _, p := range []*page{alice, bob} {
		p.wait("the tombstone", `(() => { const li = document.querySelector("#messages li.deleted"); return !!li && li.querySelector(".text").innerText === "This message was deleted." && !li.querySelector(".reactions") && !li.querySelector(".msg-actions"); })()`)
		p.wait("the reply quoting a deleted message", msgWith("yes, noon")+`.querySelector(".reply-quote").innerText.endsWith("deleted message")`)
		if eval[bool](p, `document.getElementById("messages").innerText.includes("lunch at")`) {
			p.fail("the deleted text is still shown")
		}
	}
	bob.screenshot("actions-deleted")
	carol.waitHistory(conv, "the delete", func(h []client.Message) bool {
		i := slices.IndexFunc(h, func(m client.Message) bool { return m.Ref == target.Ref })
		return i >= 0 && h[i].Deleted && h[i].Text == ""
	})
	alice.noProblems()
	bob.noProblems()
}

// waitHistory syncs until the folded history of conv satisfies ok.
func (u *cli) waitHistory(conv protocol.ConversationID, what string, ok func([]client.Message) bool) {
	u.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		u.syncTexts()
		h, err := u.c.History(conv)
		if err != nil {
			u.t.Fatal(err)
		}
		if ok(h) {
			return
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("%s: waited for %s: %+v", u.c.Username(), what, h)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

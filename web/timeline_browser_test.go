package web_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"sandi.dev/client"
)

// lineShown is the expression: the open chat shows a timeline line with
// text.
func lineShown(text string) string {
	return `[...document.querySelectorAll("#messages li.line span")].some(e => e.innerText === ` + js(text) + `)`
}

// TestBrowserTimeline: two browser users and a terminal user in one
// conversation. The browsers show a day
// separator, the full date on hover, and links that open in a new tab
// with noopener; a timer set in one browser's members panel is a line in
// the other browser, live, and reaches the terminal user; a message sent
// with a short timer disappears from the page, and from the module's
// storage; a reader scrolled up gets the new-messages marker and the
// jump-down button; the composer grows with its text.
func TestBrowserTimeline(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	browser := startBrowser(t)
	alice, bob := newUserPage(t, browser, "alice", url), newUserPage(t, browser, "bob", url)
	carol := newUser(t, url, "carol")
	ctx := context.Background()
	conv := carol.startConversation("Trip", "see https://example.org/plan?day=1, then reply", "alice", "bob")

	alice.openConversation("Trip")
	alice.waitMessage("see https://example.org/plan?day=1, then reply")
	alice.wait("the new-messages marker before carol's unread message", `document.querySelector("#messages li.new-marker + li.msg") !== null`)
	if !eval[bool](alice, `(() => { const a = document.querySelector("#messages .msg .text a");
		return !!a && a.href === "https://example.org/plan?day=1" && a.target === "_blank" && a.rel.split(" ").includes("noopener") && a.rel.split(" ").includes("noreferrer"); })()`) {
		alice.fail("the link is not an anchor to https://example.org/plan?day=1 opened with noopener")
	}
	if !eval[bool](alice, `document.querySelectorAll("#messages li.day").length === 1 &&
		/\d{4}/.test(document.querySelector("#messages .msg time").title)`) {
		alice.fail("no day separator, or no full date on hover")
	}

	bob.openConversation("Trip")
	bob.waitMessage("see https://example.org/plan?day=1, then reply")
	alice.openMembers()
	eval[string](alice, `document.getElementById("timer-select").value = "3600"`)
	alice.click("#timer-form button[type=submit]")
	alice.wait("alice's timer line", lineShown("You set disappearing messages to 1 hour"))
	bob.wait("bob's timer line, live", lineShown("alice set disappearing messages to 1 hour"))
	bob.screenshot("timeline", phoneWidth)
	alice.screenshot("timeline-panel", phoneWidth)
	carol.syncTexts()
	if tm, err := carol.c.Timer(conv); err != nil || tm != 3600 {
		t.Fatalf("carol's timer: %d, %v; want 3600", tm, err)
	}
	lines, err := carol.c.Lines(conv)
	if err != nil || !slices.ContainsFunc(lines, func(l client.Line) bool { return l.Kind == client.LineTimer && l.Actor == "alice" && l.Timer == 3600 }) {
		t.Fatalf("carol's lines: %+v, %v", lines, err)
	}

	// A two-second timer: carol's message shows, then goes.
	if err := carol.c.SetTimer(ctx, conv, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.c.Send(ctx, conv, "this goes in two seconds"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("this goes in two seconds")
	bob.wait("the list's preview", `document.getElementById("conv-list").innerText.includes("this goes in two seconds")`)
	bob.waitWithin(10*time.Second, "the message to disappear", `![...document.querySelectorAll("#messages .msg .text")].some(e => e.innerText === "this goes in two seconds")`)
	bob.wait("the list's preview to forget it", `!document.getElementById("conv-list").innerText.includes("this goes in two seconds")`)
	if got := eval[[]string](bob, `sandi.history(`+js(conv.String())+`).then(h => h.messages.map(m => m.text))`); slices.Contains(got, "this goes in two seconds") {
		bob.fail("the module still holds the expired message: %q", got)
	}
	if err := carol.c.SetTimer(ctx, conv, 0); err != nil {
		t.Fatal(err)
	}

	// Scrolled up, bob gets the marker and the jump-down button.
	for i := range 25 {
		if _, err := carol.c.Send(ctx, conv, fmt.Sprintf("filler %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	bob.waitMessage("filler 24")
	eval[bool](bob, `(() => { const l = document.getElementById("messages"); l.scrollTop = 0; l.dispatchEvent(new Event("scroll")); return true; })()`)
	if _, err := carol.c.Send(ctx, conv, "below the fold"); err != nil {
		t.Fatal(err)
	}
	bob.wait("the jump-down button", `!document.getElementById("jump-down").hidden &&
		document.querySelector("#messages li.new-marker + li.msg .text")?.innerText === "below the fold"`)
	if s := eval[string](bob, `document.getElementById("jump-down").innerText`); s != "↓ 1 new" {
		bob.fail("the jump-down button says %q", s)
	}
	bob.screenshot("timeline-jump", phoneWidth)
	bob.click("#jump-down")
	bob.wait("the button hidden, at the bottom", `(() => { const l = document.getElementById("messages");
		return document.getElementById("jump-down").hidden && l.scrollHeight - l.scrollTop - l.clientHeight < 80; })()`)

	// The composer grows with its text.
	grew := eval[bool](alice, `(() => { const i = document.getElementById("composer-input"); const h = i.offsetHeight;
		i.value = "one\ntwo\nthree\nfour"; i.dispatchEvent(new Event("input")); return i.offsetHeight > h; })()`)
	if !grew {
		alice.fail("the composer did not grow with four lines")
	}
	alice.noProblems()
	bob.noProblems()
}

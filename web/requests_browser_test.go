package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sandi.dev/client"
)

// TestBrowserRequests: a conversation from a stranger (a terminal user) is
// marked as a request in alice's list and opens with the request bar, its
// image loaded only when she clicks;
// Block removes it and the server refuses the stranger's next
// conversation; a request from bob (another browser) is accepted. Removing
// a member asks for confirmation, and Escape closes the members panel.
func TestBrowserRequests(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	browser := startBrowser(t)
	alice, bob := newUserPage(t, browser, "alice", url), newUserPage(t, browser, "bob", url)
	mallory := newUser(t, url, "mallory")
	newUser(t, url, "carol")

	prize := mallory.startConversation("Prize", "you won", "alice")
	mallory.sendFile(prize, "prize.png", "image/png", testPNG(t, 40, 30))
	alice.waitText("#conv-list", "Request")
	alice.waitText("#requests-count", "1 message request")
	alice.openConversation("Prize")
	alice.waitMessage("you won")
	// The request's image is not downloaded until alice asks: a download
	// would tell the server (and mallory, with it) that she looked.
	att := `[...document.querySelectorAll("#messages .att[data-kind=image]")].find(a => a.querySelector("img").alt === "prize.png")`
	alice.wait("the request's image drawn", `(() => { const a = `+att+`; if (a) a.scrollIntoView(); return !!a && !!a.querySelector(".att-show"); })()`)
	if alice.holdsWithin(2*time.Second, att+`.dataset.state !== "idle"`) {
		alice.fail("the image of a request was downloaded without a click")
	}
	eval[chromedp.Void](alice, att+`.querySelector(".att-show").click()`)
	if w := alice.waitImage("prize.png"); w != 40 {
		alice.fail("the request's image shown %d pixels wide, want 40", w)
	}
	alice.waitText("#chat-request-text", "mallory started this conversation")
	alice.screenshot("request", phoneWidth)
	alice.click("#request-block")
	alice.wait("the request gone", `![...document.querySelectorAll("#conv-list .conv-name")].some(n => n.innerText === "Prize") && document.getElementById("requests-count").hidden`)
	if _, err := mallory.c.CreateConversation(context.Background(), "Again", "alice"); !client.IsCode(err, "blocked") {
		t.Fatalf("mallory after the block: %v; want blocked", err)
	}

	bob.createConversation("alice")
	bob.send("hi, it's bob")
	alice.openConversation("bob")
	alice.waitMessage("hi, it's bob")
	alice.wait("the request bar", `!document.getElementById("chat-request").hidden`)
	alice.click("#request-accept")
	alice.wait("the bar gone once accepted", `document.getElementById("chat-request").hidden && !document.getElementById("conv-list").innerText.includes("Request")`)

	// Remove asks first; Escape closes the panel.
	alice.createConversation("bob", "carol")
	alice.removeMember("carol")
	alice.pressKey("Escape", 27)
	alice.wait("the members panel closed by Escape", `document.getElementById("members-panel").hidden && document.activeElement.id === "members-button"`)
	// Devices: a default name that says which browser, and a rename.
	eval[chromedp.Void](alice, `location.hash = "#/devices"`)
	alice.waitText("#device-list", "Chromium on Linux")
	alice.click("#device-list .rename-device")
	alice.wait("the rename form", `document.activeElement.classList.contains("rename-device-input")`)
	eval[chromedp.Void](alice, `document.activeElement.value = ""`)
	alice.typeInto(".rename-device-input", "work")
	// A background refresh (here: the tab shown again) leaves the form
	// and what is typed in it alone.
	eval[chromedp.Void](alice, `document.dispatchEvent(new Event("visibilitychange"))`)
	if alice.holdsWithin(2*time.Second, `(() => { const i = document.querySelector(".rename-device-input"); return !i || i.value !== "work"; })()`) {
		alice.fail("a refresh threw away the rename form")
	}
	alice.typeInto(".rename-device-input", " laptop")
	alice.pressEnter()
	alice.waitText("#device-list", "work laptop")
	eval[chromedp.Void](alice, `window.__devs = null; sandi.devices().then((l) => { window.__devs = l; })`)
	alice.wait("the new name signed", `!!window.__devs && window.__devs.some((d) => d.current && d.name === "work laptop" && d.nameSigned)`)
	for _, p := range []*page{alice, bob} {
		p.noProblems()
	}
}

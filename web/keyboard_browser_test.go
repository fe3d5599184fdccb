package web_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserKeyboard: the main flows with the keyboard alone, on a
// phone-sized screen: sign in, open a conversation, send, a message's
// actions, the members panel, back to the list, the devices pane, the new
// conversation pane and the logout panel, each closed with Escape. The
// focus goes where the user is, is shown, and comes back to what opened a
// pane; every control is named, distinctly within a list; each view fits
// 375 px and is photographed there.
func TestBrowserKeyboard(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	browser := startBrowser(t)
	bob := newUser(t, url, "bob")

	alice := newPage(t, browser, "alice", url)
	alice.do("phone", chromedp.EmulateViewport(phoneWidth, 740))
	view := func(name, css string) {
		t.Helper()
		if bad := alice.unnamed(css); len(bad) > 0 {
			alice.fail("%s: %q", name, bad)
		}
		alice.fits(css, phoneWidth) // leaves the desktop width
		alice.screenshot("keyboard-"+name, phoneWidth)
		alice.do("phone", chromedp.EmulateViewport(phoneWidth, 740))
	}

	// Sign in: the username field has the focus; Tab goes to the password.
	alice.waitView("auth")
	alice.focused("#auth-username")
	view("auth", "#view-auth")
	alice.typeKeys("alice")
	alice.tabTo("#auth-password")
	alice.focused("#auth-password")
	alice.typeKeys("password of alice")
	alice.pressEnter()
	alice.waitView("main")

	// Open a conversation from the list: the composer has the focus.
	conv := bob.startConversation("Keys", "hello alice", "alice")
	row := `#conv-list a[href="#/c/` + conv.String() + `"]`
	alice.waitText("#conv-list", "Keys")
	view("list", "#sidebar")
	alice.tabTo(row)
	alice.focused(row)
	alice.pressEnter()
	alice.waitMessage("hello alice")
	alice.focused("#composer-input")

	// Send with Enter.
	alice.typeKeys("typed on a keyboard")
	alice.pressEnter()
	alice.wait("the message sent", `[...document.querySelectorAll("#messages .msg.own")].some(li => li.innerText.includes("typed on a keyboard") && /^(Sent|Delivered|Read)/.test(li.querySelector(".status").innerText))`)
	bob.waitTexts("alice: typed on a keyboard")
	alice.focused("#composer-input")
	view("chat", "#pane-chat")

	// A message's actions: Shift+Tab back to its button, Enter opens the
	// menu on its first item, the arrows move, Enter reacts and the focus
	// is back on the message's button; Escape closes the menu.
	actionsOf := `#messages li.own .msg-actions`
	alice.tabBackTo(actionsOf)
	alice.focused(actionsOf)
	alice.pressEnter()
	alice.focused(`.msg-menu [role=menuitem]:first-child`)
	view("actions", "#pane-chat")
	alice.pressKey("ArrowRight", 39)
	alice.focused(`.msg-menu [aria-label="React with 👍"]`)
	alice.pressEnter()
	alice.wait("the reaction", `(() => { const r = document.querySelector("#messages li.own .reactions"); return !!r && r.innerText.includes("👍 1"); })()`)
	alice.focused(actionsOf)
	alice.pressEnter()
	alice.focused(`.msg-menu [role=menuitem]`)
	alice.pressKey("Escape", 27)
	alice.focused(actionsOf)
	if eval[bool](alice, `!!document.querySelector(".msg-menu")`) {
		alice.fail("Escape left the actions menu open")
	}

	// The members panel: Enter opens it on its close button, Escape
	// closes it and the focus is back on the Members button.
	alice.tabBackTo("#members-button")
	alice.pressEnter()
	alice.focused("#members-close")
	alice.waitText("#member-list", "bob")
	view("members", "#members-panel")
	alice.pressKey("Escape", 27)
	alice.focused("#members-button")
	if !eval[bool](alice, `document.getElementById("members-panel").hidden`) {
		alice.fail("Escape left the members panel open")
	}

	// Back to the list: the focus is on the conversation's row again.
	alice.tabBackTo(`#pane-chat a.back`)
	alice.pressEnter()
	alice.focused(row)

	// The devices pane: its heading has the focus; Escape goes back to
	// the list, onto the Devices link.
	alice.tabTo("#devices-link")
	alice.pressEnter()
	alice.waitText("#device-list", "this browser")
	alice.focused("#devices-heading")
	view("devices", "#pane-devices")
	alice.pressKey("Escape", 27)
	alice.focused("#devices-link")
	if !eval[bool](alice, `document.getElementById("pane-devices").hidden`) {
		alice.fail("Escape left the devices pane open")
	}

	// The new-conversation pane: its field has the focus; Escape goes
	// back onto the New conversation button.
	alice.tabBackTo("#new-button")
	alice.pressEnter()
	alice.focused("#new-user")
	view("new", "#pane-new")
	alice.pressKey("Escape", 27)
	alice.focused("#new-button")

	// The logout panel: Enter opens it, Escape closes it and nothing is
	// logged out.
	alice.tabTo("#logout-button")
	alice.pressEnter()
	alice.wait("the logout panel", `!document.getElementById("logout-panel").hidden`)
	view("logout", "#sidebar")
	alice.pressKey("Escape", 27)
	alice.focused("#logout-button")
	if eval[bool](alice, `!document.getElementById("logout-panel").hidden || document.getElementById("logout-button").textContent !== "Log out"`) {
		alice.fail("Escape left the logout panel open or the logout armed")
	}

	// The safety number and the alarms, reached by their links elsewhere:
	// named and fitting too.
	alice.do("safety", chromedp.Navigate(url+"/#/safety/bob"))
	alice.wait("the safety number", `document.querySelectorAll("#safety-number span").length === 12`)
	view("safety", "#pane-safety")
	alice.do("alarms", chromedp.Navigate(url+"/#/alarms"))
	alice.wait("the alarms pane", `!document.getElementById("pane-alarms").hidden`)
	view("alarms", "#pane-alarms")
	alice.noProblems()
}

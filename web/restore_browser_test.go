package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// TestBrowserRestore: alice, whose backups are on (made by the SDK, as the
// CLI's `sandi backup enable` does), loses her device and logs in on a
// browser: on the set-up screen a mistyped recovery key is refused with a
// sentence; the right one (typed in lower case) brings back her account,
// the conversation's title and history, with the same identity, and says
// when the backup was made: bob's next message reads, and bob sees no key
// change.
func TestBrowserRestore(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	ctx := context.Background()
	alice, bob := newUser(t, url, "alice"), newUser(t, url, "bob")
	conv := alice.startConversation("Plans", "before the backup", "bob")
	key, err := alice.c.EnableBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}

	browser := startBrowser(t)
	p := newPage(t, browser, "alice-web", url)
	p.login("alice")
	typo := []byte(key.String())
	typo[0] = map[bool]byte{true: 'B', false: 'A'}[typo[0] == 'A']
	p.typeInto("#restore-key", string(typo))
	p.click("#restore-button")
	p.waitText("#restore-error", "not a recovery key")
	p.waitText("#link-status", "Waiting for your other device")
	eval[bool](p, `(document.getElementById("restore-key").value = "", true)`)
	p.typeInto("#restore-key", strings.ToLower(key.String()))
	p.click("#restore-button")
	p.waitView("main")
	p.waitText("#restored", "Restored from the backup made on")
	p.openConversation("Plans")
	p.waitMessage("before the backup")
	if _, err := bob.c.Send(ctx, conv, "welcome back"); err != nil {
		t.Fatal(err)
	}
	p.waitMessage("welcome back")
	bob.waitTexts("alice: before the backup")
	noKeyChange(t, bob)
	p.noProblems()
}

// TestBrowserApproveWithHistory: alice approves a new device from her
// browser with "also give it this browser's history" ticked; the new
// device (the SDK, as the CLI) holds the conversation's title and
// messages, in order, and reads what comes next.
func TestBrowserApproveWithHistory(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	ctx := context.Background()
	browser := startBrowser(t)
	alice := newUserPage(t, browser, "alice", url)
	bob := newUser(t, url, "bob")
	alice.createConversation("bob")
	alice.send("first from the browser")
	convs, err := bob.c.Conversations(ctx)
	if err != nil || len(convs) != 1 {
		t.Fatalf("bob's conversations: %+v %v", convs, err)
	}
	conv := convs[0].ID
	bob.waitTexts("alice: first from the browser")
	if _, err := bob.c.Send(ctx, conv, "reply from bob"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("reply from bob")

	phone := newCLI(t, url, "")
	if err := phone.c.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	code, err := phone.c.StartLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alice.approveWithHistory(code)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := phone.c.WaitLink(wctx, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	h, err := phone.c.History(conv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range h {
		if m.Type == client.ContentText {
			got = append(got, m.Sender+": "+m.Text)
		}
	}
	if strings.Join(got, "|") != "alice: first from the browser|bob: reply from bob" {
		t.Fatalf("the new device's history: %q", got)
	}
	if _, err := bob.c.Send(ctx, conv, "after the link"); err != nil {
		t.Fatal(err)
	}
	phone.waitTexts("bob: after the link")
	// Expected: a send of alice's page (a receipt) that the server
	// refuses with 409 rotation_required once the phone joined her
	// account, before the page rotated (it rotates and sends again).
	alice.noProblems("/messages:1: error: Failed to load resource: the server responded with a status of 409")
}

// TestBrowserLogoutWithBackup: logging out first says what will be lost
// and that there is no backup, and offers one; alice makes it, notes the
// recovery key shown, logs out (this browser's data wiped), and restores
// in a fresh browser profile with the same identity: her history is back,
// bob's next message reads, and bob is shown no key change.
func TestBrowserLogoutWithBackup(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	ctx := context.Background()
	alice := newPage(t, startBrowser(t), "alice", url)
	alice.register("alice")
	bob := newUser(t, url, "bob")
	alice.createConversation("bob")
	alice.send("kept by the backup")
	bob.waitTexts("alice: kept by the backup")

	alice.openLogoutPanel()
	alice.waitText("#logout-backup", "no backup")
	alice.click("#logout-backup-button")
	alice.wait("the recovery key", `/^[A-Z2-7]{4}(-[A-Z2-7]{4}){7}$/.test(document.getElementById("logout-key").innerText.trim())`)
	key := eval[string](alice, `document.getElementById("logout-key").innerText.trim()`)
	alice.logout()

	fresh := newPage(t, startBrowser(t), "alice-fresh", url)
	fresh.login("alice")
	fresh.typeInto("#restore-key", key)
	fresh.click("#restore-button")
	fresh.waitView("main")
	fresh.openConversation("bob")
	fresh.waitMessage("kept by the backup")
	convs, err := bob.c.Conversations(ctx)
	if err != nil || len(convs) != 1 {
		t.Fatalf("bob's conversations: %+v %v", convs, err)
	}
	if _, err := bob.c.Send(ctx, convs[0].ID, "hello again"); err != nil {
		t.Fatal(err)
	}
	fresh.waitMessage("hello again")
	noKeyChange(t, bob)
	fresh.noProblems()
}

// login signs the page in to an existing account of username (the
// password the harness gives every account) and waits for the set-up view
// of a browser without keys.
func (p *page) login(username string) {
	p.t.Helper()
	p.waitView("auth")
	p.click(`label[for="auth-mode-login"]`)
	p.typeInto("#auth-username", username)
	p.typeInto("#auth-password", "password of "+username)
	p.pressEnter()
	p.waitView("setup")
}

// noKeyChange fails unless u raised no alarm and sees its one contact
// with the key it first met.
func noKeyChange(t *testing.T, u *cli) {
	t.Helper()
	if a, _ := u.c.Alarms(protocol.ConversationID{}); len(a) != 0 {
		t.Fatalf("%s's alarms: %+v", u.c.Username(), a)
	}
	if cs, _ := u.c.Contacts(); len(cs) != 1 || cs[0].Changed != 0 || cs[0].Pending != nil {
		t.Fatalf("%s's contacts: %+v", u.c.Username(), cs)
	}
}

package web_test

import (
	"context"
	"strings"
	"testing"

	"sandi.dev/protocol"
)

// TestBrowserRestore: alice, whose backups are on (made by the SDK, as the
// CLI's `sandi backup enable` does), loses her device and logs in on a
// browser: on the set-up screen a mistyped recovery key is refused with a
// sentence; the right one (typed in lower case) brings back her account,
// the conversation's title and history, with the same identity: bob's
// next message reads, and bob sees no key change.
func TestBrowserRestore(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	ctx := context.Background()
	alice, bob := newCLI(t, url, ""), newCLI(t, url, "")
	if err := alice.c.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if err := bob.c.Register(ctx, "bob", "password of bob"); err != nil {
		t.Fatal(err)
	}
	conv, err := alice.c.CreateConversation(ctx, "Plans", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, conv, "before the backup"); err != nil {
		t.Fatal(err)
	}
	key, err := alice.c.EnableBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}

	browser := startBrowser(t)
	p := newPage(t, browser, "alice-web", url)
	p.waitView("auth")
	p.click(`label[for="auth-mode-login"]`)
	p.typeInto("#auth-username", "alice")
	p.typeInto("#auth-password", "password of alice")
	p.pressEnter()
	p.waitView("setup")
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
	p.openConversation("Plans")
	p.waitMessage("before the backup")
	if _, err := bob.c.Send(ctx, conv, "welcome back"); err != nil {
		t.Fatal(err)
	}
	p.waitMessage("welcome back")
	bob.waitTexts("alice: before the backup")
	if a, _ := bob.c.Alarms(protocol.ConversationID{}); len(a) != 0 {
		t.Fatalf("bob's alarms: %+v", a)
	}
	if cs, _ := bob.c.Contacts(); len(cs) != 1 || cs[0].Changed != 0 || cs[0].Pending != nil {
		t.Fatalf("bob's view of alice: %+v", cs)
	}
	p.noProblems()
}

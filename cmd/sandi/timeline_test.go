package main_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCLITimerAndLines: `sandi timer` sets the disappearing-message timer
// and turns it off; the other member's sync and history show those
// changes, an addition and a rename as lines between the messages; the
// message sent while the timer is on carries it; a
// duration that is not one is refused with a sentence, changing nothing.
func TestCLITimerAndLines(t *testing.T) {
	addr, data := freeAddr(t), t.TempDir()
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", data)
	waitHealthy(t, srv, base)
	alice, bob := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob")
	carol := filepath.Join(t.TempDir(), "carol")
	cliOK(t, base, alice, "pw of alice!\n", "register", "alice", "--password-stdin")
	cliOK(t, base, bob, "pw of bob!!!\n", "register", "bob", "--password-stdin")
	cliOK(t, base, carol, "pw of carol!\n", "register", "carol", "--password-stdin")
	conv := strings.TrimSpace(cliOK(t, base, alice, "", "new", "--title", "Lunch", "bob"))
	cliOK(t, base, bob, "", "sync")

	for _, bad := range []string{"soon", "0.5s", "-1h", "10000000w", "1d2"} {
		_, errs, code := cliRun(t, base, alice, "", "timer", conv[:8], bad)
		if code != 2 || !strings.Contains(errs, "a timer is off or a whole number of seconds") {
			t.Fatalf("timer %q: exit %d, %q", bad, code, errs)
		}
	}
	if out := cliOK(t, base, alice, "", "timer", conv[:8], "1h"); !strings.Contains(out, "1 hour") {
		t.Fatalf("timer: %q", out)
	}
	// The server keeps a conversation's latest state only: bob follows
	// along, syncing after each change, to see each one.
	var out string
	for _, step := range [][]string{{"send", conv, "while the timer is on"}, {"add", conv, "carol"}, {"rename", conv, "Dinner"}, {"timer", conv, "off"}} {
		cliOK(t, base, alice, "", step...)
		out += cliOK(t, base, bob, "", "sync")
	}
	want := []string{
		"-- alice set disappearing messages to 1 hour",
		"alice: while the timer is on",
		"-- alice added carol",
		`-- alice renamed the conversation to "Dinner"`,
		"-- alice turned off disappearing messages",
	}
	last := -1
	for _, w := range want {
		i := strings.Index(out, w)
		if i <= last {
			t.Fatalf("bob's sync lacks %q after the previous line:\n%s", w, out)
		}
		last = i
	}
	hist := cliOK(t, base, bob, "", "history", conv[:8])
	if !strings.Contains(hist, "-- alice added carol") || !strings.Contains(hist, "-- alice turned off disappearing messages") {
		t.Fatalf("bob's history:\n%s", hist)
	}
	js := cliOK(t, base, bob, "", "--json", "history", conv[:8])
	if !strings.Contains(js, `"text":"while the timer is on"`) || strings.Count(js, `"expiresAt":`) != 1 {
		t.Fatalf("bob's history as JSON: the message sent with the timer on has no expiry, or another has one:\n%s", js)
	}
	if js := cliOK(t, base, bob, "", "--json", "history", conv[:8], "--limit", "1"); strings.Count(js, "\n") != 4 || !strings.Contains(js, `"kind":"timer"`) {
		t.Fatalf("bob's history as JSON: %s", js)
	}
}

package main_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cliWorld starts a server and registers users on it, each with a home
// directory; it returns the server's URL and the homes by username.
func cliWorld(t *testing.T, users ...string) (string, map[string]string) {
	t.Helper()
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
	waitHealthy(t, srv, base)
	homes := map[string]string{}
	for _, u := range users {
		homes[u] = filepath.Join(t.TempDir(), u)
		cliOK(t, base, homes[u], "password of "+u+"\n", "register", u, "--password-stdin")
	}
	return base, homes
}

// newConv creates a conversation from home with users and returns its id.
func newConv(t *testing.T, base, home string, args ...string) string {
	t.Helper()
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(cliOK(t, base, home, "", append([]string{"--json", "new"}, args...)...)), &created); err != nil || len(created.ID) != 32 {
		t.Fatalf("new %q: %v %q", args, err, created.ID)
	}
	return created.ID
}

// TestCLIChatLongLine: a line of piped input longer than a message may be
// is refused with a sentence naming the limit, and the lines after it are
// still sent; the exit status says that a line was not sent. A line of
// exactly the limit is sent.
func TestCLIChatLongLine(t *testing.T) {
	base, homes := cliWorld(t, "alice", "bob")
	conv := newConv(t, base, homes["alice"], "bob")
	full := strings.Repeat("y", 32*1024)
	stdin := "before\n" + strings.Repeat("x", 70<<10) + "\nafter\n" + full + "\n"
	_, errs, code := cliRun(t, base, homes["alice"], stdin, "chat", conv)
	want := "sandi: line 2 has 71680 bytes, more than a message may have (32768 bytes): not sent"
	if code != 1 || !strings.Contains(errs, want) || !strings.Contains(errs, "1 line of standard input was not sent") {
		t.Fatalf("chat: exit %d, stderr %q; want exit 1 and %q", code, errs, want)
	}
	if got := syncJSON(t, base, homes["bob"]); !slices.Equal(got, []string{"alice: before", "alice: after", "alice: " + full}) {
		t.Fatalf("bob received %d messages: %.80q", len(got), got)
	}
}

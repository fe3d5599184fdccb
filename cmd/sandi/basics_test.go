package main_test

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// cliWorld starts a server and registers users on it, each with a home
// directory; it returns the server's URL and the homes by username.
func cliWorld(t *testing.T, users ...string) (string, map[string]string) {
	t.Helper()
	return cliWorldServe(t, nil, users...)
}

// cliWorldServe is cliWorld with a server run with the flags serve adds.
func cliWorldServe(t *testing.T, serve []string, users ...string) (string, map[string]string) {
	t.Helper()
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), append([]string{"serve", "--addr", addr, "--data", t.TempDir()}, serve...)...)
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

// unread returns the unread counts of `sandi list`, by conversation id.
func unread(t *testing.T, base, home string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for line := range strings.Lines(cliOK(t, base, home, "", "--json", "list")) {
		var cv struct {
			ID     string
			Unread int
		}
		if err := json.Unmarshal([]byte(line), &cv); err != nil {
			t.Fatalf("list printed %q: %v", line, err)
		}
		out[cv.ID] = cv.Unread
	}
	return out
}

// TestCLIReadState: `sync` marks what it printed as read (in the
// conversations it printed, up to the newest message printed), `sync
// --peek` leaves it unread, and a title is not an unread message.
func TestCLIReadState(t *testing.T) {
	base, homes := cliWorld(t, "alice", "bob")
	a, b := homes["alice"], homes["bob"]
	newConv(t, base, b, "alice") // alice is then no stranger to bob: no requests
	friends := newConv(t, base, a, "--title", "friends", "bob")
	other := newConv(t, base, a, "bob")
	cliOK(t, base, a, "", "send", friends, "one")
	cliOK(t, base, a, "", "send", friends, "two")
	cliOK(t, base, a, "", "send", other, "elsewhere")
	if got := syncJSON(t, base, b, "--peek"); len(got) != 3 {
		t.Fatalf("sync --peek printed %q", got)
	}
	if got := unread(t, base, b); got[friends] != 2 || got[other] != 1 {
		t.Fatalf("after sync --peek: unread %v; want 2 in friends (the title is not a message) and 1 in the other", got)
	}
	cliOK(t, base, a, "", "send", other, "more")
	if got := syncJSON(t, base, b, other[:6]); !slices.Equal(got, []string{"alice: more"}) {
		t.Fatalf("sync of one conversation printed %q", got)
	}
	// The newest message printed marks the one peeked at before it too;
	// the conversation not printed keeps its count.
	if got := unread(t, base, b); got[friends] != 2 || got[other] != 0 {
		t.Fatalf("after sync OTHER: unread %v; want 2 in friends and 0 in the other", got)
	}
	cliOK(t, base, a, "", "send", friends, "three")
	if got := syncJSON(t, base, b); !slices.Equal(got, []string{"alice: three"}) {
		t.Fatalf("sync printed %q", got)
	}
	if got := unread(t, base, b); got[friends] != 0 || got[other] != 0 {
		t.Fatalf("after sync: unread %v; want none", got)
	}
	// Alice's own messages are not unread for her.
	cliOK(t, base, b, "", "send", friends, "from bob")
	if got := syncJSON(t, base, a, "--peek"); !slices.Equal(got, []string{"bob: from bob"}) {
		t.Fatalf("alice synced %q", got)
	}
	if got := unread(t, base, a); got[friends] != 1 || got[other] != 0 {
		t.Fatalf("alice's unread %v; want 1 in friends", got)
	}
}

// TestCLIHistoryAndSearch: `history` prints the local history (the newest
// --limit messages, oldest first, with their time) and `search` finds
// messages by a case-insensitive substring, in every conversation or one;
// both work from the device's own state, also in a conversation this
// account was removed from.
func TestCLIHistoryAndSearch(t *testing.T) {
	base, homes := cliWorld(t, "alice", "bob")
	a, b := homes["alice"], homes["bob"]
	friends := newConv(t, base, a, "--title", "friends", "bob")
	other := newConv(t, base, a, "bob")
	cliOK(t, base, a, "", "send", friends, "Hello Bob")
	cliOK(t, base, b, "", "send", friends, "hi alice\nhow are you?")
	cliOK(t, base, a, "", "send", other, "HELLO again, elsewhere")
	cliOK(t, base, a, "", "send", friends, "fine")
	syncJSON(t, base, b)
	cliOK(t, base, a, "", "remove", friends, "bob")
	syncJSON(t, base, b)
	if list := cliOK(t, base, b, "", "list"); !strings.Contains(list, friends+"  friends") || !strings.Contains(list, "[removed, read-only]") {
		t.Fatalf("bob, removed, does not list the conversation as removed: %q", list)
	}

	type line struct {
		Conversation, Sender, Text, Title, Ref string
		ReceivedAt                             int64
	}
	parse := func(out string) []line {
		var ls []line
		for s := range strings.Lines(out) {
			var l line
			if err := json.Unmarshal([]byte(s), &l); err != nil {
				t.Fatalf("printed %q: %v", s, err)
			}
			if !strings.Contains(s, `"line":{`) { // a timeline line is not a message
				ls = append(ls, l)
			}
		}
		return ls
	}
	all := parse(cliOK(t, base, b, "", "--json", "history", "friends"))
	if len(all) != 3 || all[0].Text != "Hello Bob" || all[1].Sender != "bob" || all[2].Text != "fine" { // the title is state, not a message
		t.Fatalf("history: %+v", all)
	}
	stamp := func(l line) string { return time.UnixMilli(l.ReceivedAt).Format("2006-01-02 15:04") }
	want := "[" + friends[:8] + "] " + stamp(all[1]) + " #" + all[1].Ref[:8] + " bob: hi alice\n" + "           | how are you?\n" +
		"[" + friends[:8] + "] " + stamp(all[2]) + " #" + all[2].Ref[:8] + " alice: fine\n"
	if out := cliOK(t, base, b, "", "history", friends[:4], "--limit", "2"); !strings.HasPrefix(out, want) || !strings.HasSuffix(out, " -- alice removed bob\n") {
		t.Fatalf("history --limit 2:\n%s\nwant:\n%s[time] -- alice removed bob", out, want)
	}

	found := parse(cliOK(t, base, b, "", "--json", "search", "hello"))
	if len(found) != 2 || found[0].Text != "Hello Bob" || found[0].Conversation != friends || found[1].Text != "HELLO again, elsewhere" || found[1].Conversation != other {
		t.Fatalf("search hello: %+v", found)
	}
	want = "[" + other[:8] + "] " + stamp(found[1]) + " #" + found[1].Ref[:8] + " alice: HELLO again, elsewhere\n"
	if out := cliOK(t, base, b, "", "search", "--conv", other, "Hello"); out != want {
		t.Fatalf("search --conv: %q; want %q", out, want)
	}
	if out := cliOK(t, base, b, "", "search", "nothing like it"); out != "" {
		t.Fatalf("search for nothing printed %q", out)
	}
	if _, errs, code := cliRun(t, base, b, "", "search"); code != 2 || !strings.Contains(errs, "usage: sandi search TEXT") {
		t.Fatalf("search without text: %d %q", code, errs)
	}
}

// TestCLIVersion: --version (and `version`) print the version, which a
// release build sets with -ldflags, and the Go version and platform; a
// build that does not set it names what the toolchain recorded.
func TestCLIVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}, {"--home", t.TempDir(), "--version"}} {
		out, err := exec.Command(sandiBinary(t), args...).Output()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil || !strings.HasPrefix(lines[0], "sandi ") || len(lines[0]) <= len("sandi ") ||
			lines[len(lines)-1] != runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
			t.Fatalf("sandi %q: %v, %q", args, err, out)
		}
	}
	bin := filepath.Join(t.TempDir(), "sandi")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "sandi v9.8.7-test\n") {
		t.Fatalf("a release build's --version: %v, %q", err, out)
	}
}

// TestCLIErrorMessages: each mistake gets a sentence that says what to do,
// and its exit status; none changes anything.
func TestCLIErrorMessages(t *testing.T) {
	base, homes := cliWorld(t, "alice", "bob", "carol")
	a := homes["alice"]
	one := newConv(t, base, a, "--title", "friends", "bob")
	two := newConv(t, base, a, "--title", "friends", "carol")
	var carol struct{ User string }
	if err := json.Unmarshal([]byte(cliOK(t, base, homes["carol"], "", "--json", "whoami")), &carol); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	hostPort := strings.TrimPrefix(base, "http://")
	for _, c := range []struct {
		home, server, stdin string
		args                []string
		code                int
		says                []string
	}{
		// A conversation prefix too short, or a title that two have.
		{a, base, "", []string{"send", "abc", "hi"}, 1, []string{`no conversation is titled "abc", and an id prefix has at least 4 characters ("abc" has 3)`}},
		{a, base, "", []string{"send", "friends", "hi"}, 1, []string{`"friends" matches 2 conversations; give more characters of the id`, "\n       | " + one + "  friends\n", "\n       | " + two + "  friends\n"}},
		// A server URL without a scheme: http:// on loopback, https:// elsewhere.
		{fresh, "example.invalid:8443", "", []string{"whoami"}, 1, []string{"sandi: the server URL example.invalid:8443 has no scheme: using https://example.invalid:8443 (the address is not a loopback one)\n"}},
		{fresh, "ftp://" + hostPort, "", []string{"whoami"}, 2, []string{"the server URL ftp://" + hostPort + " is not one sandi can use: give it as https://HOST[:PORT] (or http://HOST:PORT on a loopback address)"}},
		// No server, no account.
		{fresh, "", "password of dave\n", []string{"login", "dave", "--password-stdin"}, 2, []string{"no server given: name it with --server URL or in the SANDI_SERVER environment variable"}},
		{fresh, base, "", []string{"whoami"}, 1, []string{"no account on this device (home directory " + fresh + "): run 'sandi register' or 'sandi login', or name the home directory of another with --home DIR"}},
		// Membership: usernames, not ids; leave is how one goes.
		{a, base, "", []string{"remove", one, "alice"}, 1, []string{"you cannot remove yourself from a conversation; to leave it, use 'sandi leave CONV'"}},
		{homes["bob"], base, "", []string{"remove", one, "alice"}, 1, []string{"only an admin of this conversation can remove members, and you are not one (its admins: alice)"}},
		{a, base, "", []string{"add", one, "bob"}, 1, []string{"sandi: bob is already a member of this conversation\n"}},
		{a, base, "", []string{"remove", one, carol.User}, 1, []string{"sandi: carol is not a member of this conversation\n"}},
		// The password rule counts characters: "éééé" is 4 in 8 bytes.
		{fresh, base, "éééé\n", []string{"register", "dave", "--password-stdin"}, 1, []string{"a password has 8 to 1024 characters"}},
	} {
		out, errs, code := cliRun(t, c.server, c.home, c.stdin, c.args...)
		for _, s := range c.says {
			if code != c.code || !strings.Contains(errs, s) {
				t.Errorf("sandi %q: exit %d, stdout %q, stderr %q; want exit %d saying %q", c.args, code, out, errs, c.code, s)
			}
		}
	}
	if list := cliOK(t, base, homes["bob"], "", "list"); !strings.Contains(list, "alice, bob") {
		t.Fatalf("bob's conversation after the refusals: %q", list)
	}
	// host:port on loopback is http://, said once and remembered; a
	// password of 1024 two-byte characters is allowed.
	_, errs, code := cliRun(t, hostPort, fresh, strings.Repeat("é", 1024)+"\n", "register", "dave", "--password-stdin")
	if want := "sandi: the server URL " + hostPort + " has no scheme: using " + base + " (a loopback address)\n"; code != 0 || errs != want {
		t.Fatalf("register with host:port: exit %d, stderr %q; want %q", code, errs, want)
	}
	if out, errs, code := cliRun(t, "", fresh, "", "--json", "whoami"); code != 0 || errs != "" || !strings.Contains(out, `"server":"`+base+`"`) {
		t.Fatalf("whoami after register: %d %q %q", code, out, errs)
	}
}

// TestCLIChatMarksRead: what the line chat printed while it ran is read
// once it ends.
func TestCLIChatMarksRead(t *testing.T) {
	base, homes := cliWorld(t, "alice", "bob")
	newConv(t, base, homes["bob"], "alice") // no request: bob knows alice
	conv := newConv(t, base, homes["alice"], "bob")
	chat, in, out := startChat(t, homes["bob"], conv)
	cliOK(t, base, homes["alice"], "", "send", conv, "while you chat")
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.HasSuffix(line, "alice: while you chat\n") {
		t.Fatalf("chat printed %q, %v", line, err)
	}
	io.WriteString(in, "/quit\n")
	if err := chat.Wait(); err != nil {
		t.Fatalf("chat: %v", err)
	}
	if got := unread(t, base, homes["bob"])[conv]; got != 0 {
		t.Fatalf("unread %d after the chat printed the message", got)
	}
}

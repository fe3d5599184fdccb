package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliRun runs one client command of the built binary with a home directory
// and standard input, and returns its output and exit status.
func cliRun(t *testing.T, server, home, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(sandiBinary(t), append([]string{"--home", home, "--server", server}, args...)...)
	cmd.Env = childEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func cliOK(t *testing.T, server, home, stdin string, args ...string) string {
	t.Helper()
	out, errs, code := cliRun(t, server, home, stdin, args...)
	if code != 0 {
		t.Fatalf("sandi %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// startChat starts `sandi chat conv` in home and waits for its prompt on
// standard error; it returns the running chat, its standard input and its
// standard output.
func startChat(t *testing.T, home, conv string) (*exec.Cmd, io.WriteCloser, io.Reader) {
	t.Helper()
	chat := exec.Command(sandiBinary(t), "--home", home, "chat", conv)
	chat.Env = childEnv()
	in, err := chat.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := chat.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errp, err := chat.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := chat.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chat.Process.Kill(); chat.Wait() })
	if line, err := bufio.NewReader(errp).ReadString('\n'); err != nil || !strings.Contains(line, "type a message") {
		t.Fatalf("chat said %q, %v", line, err)
	}
	return chat, in, out
}

// chatLines reads a running chat's standard output line by line; the
// function it returns waits (at most 20 s) for a line that contains want,
// passing over the others, and fails the test if none comes.
func chatLines(t *testing.T, out io.Reader) func(want string) {
	lines := make(chan string, 16)
	go func() {
		r := bufio.NewReader(out)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- l
		}
	}()
	return func(want string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("chat ended before printing %q", want)
				}
				if strings.Contains(l, want) {
					return
				}
			case <-timeout:
				t.Fatalf("chat did not print %q", want)
			}
		}
	}
}

// startLink starts `sandi --json link` in home and reads the code it shows;
// the returned scanner reads its further lines, errb collects its standard
// error.
func startLink(t *testing.T, home string) (cmd *exec.Cmd, sc *bufio.Scanner, errb *strings.Builder, code string) {
	t.Helper()
	cmd = exec.Command(sandiBinary(t), "--home", home, "--json", "link")
	cmd.Env = childEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errb = new(strings.Builder)
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	sc = bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("link printed nothing; stderr %q", errb.String())
	}
	var shown struct{ Code string }
	if err := json.Unmarshal(sc.Bytes(), &shown); err != nil || shown.Code == "" {
		t.Fatalf("link printed %q", sc.Text())
	}
	return cmd, sc, errb, shown.Code
}

type syncLine struct {
	Conversation string `json:"conversation"`
	Sender       string `json:"sender"`
	Text         string `json:"text"`
}

// syncJSON runs `sandi --json sync` and returns "sender: text" lines.
func syncJSON(t *testing.T, server, home string, args ...string) []string {
	t.Helper()
	out := cliOK(t, server, home, "", append([]string{"--json", "sync"}, args...)...)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var l syncLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("sync printed %q: %v", line, err)
		}
		if l.Text != "" {
			got = append(got, l.Sender+": "+l.Text)
		}
	}
	return got
}

// TestCLIGroupChat is the quick start as a new user would type it: a
// server, three people, a group, a removal, a server restart; nothing lost.
func TestCLIGroupChat(t *testing.T) {
	addr, data := freeAddr(t), t.TempDir()
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", data)
	waitHealthy(t, srv, base)
	homes := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		homes[u] = filepath.Join(t.TempDir(), u)
		out := cliOK(t, base, homes[u], "secret password of "+u+"\n", "register", u, "--password-stdin")
		if !strings.Contains(out, "registered "+u) {
			t.Fatalf("register printed %q", out)
		}
	}
	// The server URL is remembered: later commands need no --server.
	out, _, code := cliRun(t, "", homes["alice"], "", "--json", "whoami")
	if code != 0 || !strings.Contains(out, `"username":"alice"`) {
		t.Fatalf("whoami: %d %q", code, out)
	}
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(cliOK(t, base, homes["alice"], "", "--json", "new", "--title", "friends", "bob", "carol")), &created); err != nil || len(created.ID) != 32 {
		t.Fatalf("new: %v %q", err, created.ID)
	}
	conv := created.ID
	cliOK(t, base, homes["alice"], "", "send", conv, "hi", "all")
	cliOK(t, base, homes["bob"], "", "send", conv, "hi alice")
	cliOK(t, base, homes["carol"], "", "send", conv[:8], "hello from carol") // by id prefix
	if got := syncJSON(t, base, homes["bob"]); !slices.Equal(got, []string{"alice: hi all", "carol: hello from carol"}) {
		t.Fatalf("bob synced %q", got)
	}
	if got := syncJSON(t, base, homes["carol"], conv[:8]); !slices.Equal(got, []string{"alice: hi all", "bob: hi alice"}) {
		t.Fatalf("carol synced %q", got)
	}
	list := cliOK(t, base, homes["bob"], "", "list")
	if !strings.Contains(list, conv) || !strings.Contains(list, "friends") || !strings.Contains(list, "alice, bob, carol") {
		t.Fatalf("list: %q", list)
	}

	cliOK(t, base, homes["alice"], "", "remove", conv, "carol")
	cliOK(t, base, homes["bob"], "", "send", conv, "carol is gone")
	// The server restarts in the middle.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	srv = startSandi(t, childEnv(), "serve", "--addr", addr, "--data", data)
	waitHealthy(t, srv, base)
	cliOK(t, base, homes["alice"], "", "send", conv, "after the restart")
	if got := syncJSON(t, base, homes["alice"]); !slices.Equal(got, []string{"bob: hi alice", "carol: hello from carol", "bob: carol is gone"}) {
		t.Fatalf("alice synced %q", got)
	}
	if got := syncJSON(t, base, homes["bob"]); !slices.Equal(got, []string{"alice: after the restart"}) {
		t.Fatalf("bob synced %q", got)
	}
	if got := syncJSON(t, base, homes["carol"]); len(got) != 0 {
		t.Fatalf("carol, removed, synced %q", got)
	}
	_, errs, code := cliRun(t, base, homes["carol"], "", "send", conv, "let me back")
	if code != 1 || !strings.Contains(errs, "sandi:") {
		t.Fatalf("removed member sending: exit %d, %q", code, errs)
	}
	// Safety numbers: the same 60 digits on both sides.
	a := strings.TrimSpace(cliOK(t, base, homes["alice"], "", "safety-number", "bob"))
	b := strings.TrimSpace(cliOK(t, base, homes["bob"], "", "safety-number", "alice"))
	if a != b || len(strings.ReplaceAll(a, " ", "")) != 60 {
		t.Fatalf("safety numbers %q %q", a, b)
	}
}

// TestCLILink links a second device of alice with a code confirmed on her
// first device.
func TestCLILink(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
	waitHealthy(t, srv, base)
	first, second, bob := filepath.Join(t.TempDir(), "a1"), filepath.Join(t.TempDir(), "a2"), filepath.Join(t.TempDir(), "b")
	cliOK(t, base, first, "pw of alice!\n", "register", "alice", "--password-stdin")
	cliOK(t, base, bob, "pw of bob!!\n", "register", "bob", "--password-stdin")
	out := cliOK(t, base, second, "pw of alice!\n", "login", "alice", "--password-stdin")
	if !strings.Contains(out, "sandi link") {
		t.Fatalf("login printed %q", out)
	}
	// `sandi link` shows a code and waits for it to be confirmed.
	cmd, sc, errb, code := startLink(t, second)
	for _, wrong := range [][]string{{"AAAA-BBBB-CCCC-DDDD-EEEE"}, {"AAAAA-BBBBB-CCCCC-DDDDD-EEEEEE"}, {"AAAAA", "BBBBB", "CCCCC"}} {
		if _, errs, code := cliRun(t, base, first, "", append([]string{"link"}, wrong...)...); code == 0 || errs == "" {
			t.Fatalf("a wrong code %q was confirmed", wrong)
		}
	}
	// The code may be typed in lower case, in groups as separate words.
	cliOK(t, base, first, "", append([]string{"link"}, strings.Fields(strings.ToLower(strings.ReplaceAll(code, "-", " ")))...)...)
	if !sc.Scan() || !strings.Contains(sc.Text(), `"linked":true`) {
		t.Fatalf("link ended with %q; stderr %q", sc.Text(), errb.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("link: %v; stderr %q", err, errb.String())
	}
	devs := cliOK(t, base, second, "", "devices")
	if strings.Count(devs, "\n") != 2 || !strings.Contains(devs, "(this device)") {
		t.Fatalf("devices: %q", devs)
	}
	// The linked device talks with bob like the first.
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(cliOK(t, base, second, "", "--json", "new", "bob")), &created); err != nil {
		t.Fatal(err)
	}
	cliOK(t, base, bob, "", "send", created.ID, "hi both alices")
	if got := syncJSON(t, base, first); !slices.Equal(got, []string{"bob: hi both alices"}) {
		t.Fatalf("first device synced %q", got)
	}
	if got := syncJSON(t, base, second); !slices.Equal(got, []string{"bob: hi both alices"}) {
		t.Fatalf("second device synced %q", got)
	}

	// Both devices are in the account's signed list; the first removes the
	// second, which is revoked at once.
	var ids []string
	for line := range strings.Lines(cliOK(t, base, first, "", "devices")) {
		if !strings.Contains(line, "  signed") {
			t.Fatalf("devices: %q is not marked signed", line)
		}
		ids = append(ids, strings.Fields(line)[0])
	}
	secondID := strings.TrimSpace(cliOK(t, base, second, "", "--json", "whoami"))
	var who struct{ Device string }
	if err := json.Unmarshal([]byte(secondID), &who); err != nil || !slices.Contains(ids, who.Device) {
		t.Fatalf("whoami %q, devices %q", secondID, ids)
	}
	if _, errs, code := cliRun(t, base, first, "", "devices", "remove"); code != 2 || !strings.Contains(errs, "usage: sandi devices remove") {
		t.Fatalf("devices remove without an id: %d %q", code, errs)
	}
	if _, errs, code := cliRun(t, base, first, "", "devices", "remove", "zzzz"); code != 1 || !strings.Contains(errs, "no device") {
		t.Fatalf("devices remove zzzz: %d %q", code, errs)
	}
	cliOK(t, base, first, "", "devices", "remove", who.Device[:8])
	if _, errs, code := cliRun(t, base, second, "", "sync"); code != 1 || !strings.Contains(errs, "token") {
		t.Fatalf("the removed device synced: %d %q", code, errs)
	}
	if devs := cliOK(t, base, first, "", "devices"); strings.Count(devs, "\n") != 1 || strings.Contains(devs, who.Device) {
		t.Fatalf("devices after the removal: %q", devs)
	}
	// Logout removes the last device and leaves a state that can register
	// or log in again.
	if out := cliOK(t, base, first, "", "logout"); !strings.Contains(out, "signed out") {
		t.Fatalf("logout: %q", out)
	}
	if _, errs, code := cliRun(t, base, first, "", "whoami"); code != 1 || !strings.Contains(errs, "not logged in") || !strings.Contains(errs, first) {
		t.Fatalf("whoami after logout: %d %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join(first, "identity")); !os.IsNotExist(err) {
		t.Fatalf("the identity key survived the logout: %v", err)
	}
	cliOK(t, base, first, "pw of alice!\n", "login", "alice", "--password-stdin")
}

// TestCLIErrors: mistakes get a sentence on stderr and a non-zero status,
// and change nothing.
func TestCLIErrors(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
	waitHealthy(t, srv, base)
	home := filepath.Join(t.TempDir(), "h")
	for _, c := range []struct {
		stdin string
		args  []string
		code  int
		says  string
	}{
		{"", []string{"whoami"}, 1, "not logged in"},
		{"", []string{"register", "alice", "--password-stdin"}, 2, "no password"},
		{"short\n", []string{"register", "alice", "--password-stdin"}, 1, "password"},
		{"", []string{"send"}, 2, "usage: sandi send"},
		{"", []string{"frobnicate"}, 2, "unknown command"},
	} {
		out, errs, code := cliRun(t, base, home, c.stdin, c.args...)
		if code != c.code || !strings.Contains(errs, c.says) {
			t.Errorf("sandi %v: exit %d, stdout %q, stderr %q; want exit %d saying %q", c.args, code, out, errs, c.code, c.says)
		}
	}
	cliOK(t, base, home, "good password\n", "register", "alice", "--password-stdin")
	_, errs, code := cliRun(t, base, filepath.Join(t.TempDir(), "x"), "good password\n", "register", "alice", "--password-stdin")
	if code != 1 || !strings.Contains(errs, "taken") {
		t.Fatalf("taken username: %d %q", code, errs)
	}
	_, errs, code = cliRun(t, base, home, "", "send", "0123456789abcdef0123456789abcdef", "hello")
	if code != 1 || !strings.Contains(errs, "sandi:") {
		t.Fatalf("send to an unknown conversation: %d %q", code, errs)
	}
	if _, errs, code = cliRun(t, base, home, "", "new", "nobody"); code != 1 || !strings.Contains(errs, "no such user") {
		t.Fatalf("new with an unknown user: %d %q", code, errs)
	}
	if out := cliOK(t, base, home, "", "list"); out != "" {
		t.Fatalf("failed commands left conversations: %q", out)
	}
}

// TestCLIOneProcessPerHome: while `sandi chat` runs on a home directory,
// `sandi send` on the same directory is refused with a sentence naming the
// directory and the chat's pid (exit status 1), so two processes never send
// from one cached chain; once the chat ends, send works.
func TestCLIOneProcessPerHome(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
	waitHealthy(t, srv, base)
	home := filepath.Join(t.TempDir(), "alice")
	cliOK(t, base, home, "password of alice\n", "register", "alice", "--password-stdin")
	cliOK(t, base, filepath.Join(t.TempDir(), "bob"), "password of bob\n", "register", "bob", "--password-stdin")
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(cliOK(t, base, home, "", "--json", "new", "bob")), &created); err != nil {
		t.Fatal(err)
	}
	chat, in, _ := startChat(t, home, created.ID)
	_, errs, code := cliRun(t, base, home, "", "send", created.ID, "from a second process")
	want := fmt.Sprintf("sandi: another sandi process (pid %d) is using %s: close it first\n", chat.Process.Pid, home)
	if code != 1 || errs != want {
		t.Fatalf("send while chat runs: exit %d, stderr %q; want exit 1, %q", code, errs, want)
	}
	if _, err := io.WriteString(in, "/quit\n"); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := chat.Wait(); err != nil {
		t.Fatalf("chat: %v", err)
	}
	cliOK(t, base, home, "", "send", created.ID, "after the chat")
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"sandi.dev/client"
)

// startTestServer runs `sandi serve` in this process on a free loopback
// port with a fresh SQLite database, and returns its URL.
func startTestServer(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, []string{"--addr", addr, "--data", t.TempDir(), "--log-level", "error"}, io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-served })
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr
}

// runCLI runs one client command as the binary would, in this process.
func runCLI(t *testing.T, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb strings.Builder
	err = run(context.Background(), args, stdin, &out, &errb)
	return out.String(), errb.String(), err
}

func mustCLI(t *testing.T, stdin io.Reader, args ...string) string {
	t.Helper()
	out, errs, err := runCLI(t, stdin, args...)
	if err != nil {
		t.Fatalf("sandi %q: %v\nstderr: %s", args, err, errs)
	}
	return out
}

// rewritingProxy is a malicious server: a proxy in front of a real one that
// rewrites the bodies of its answers with rewrite (answers that switch
// protocols, the WebSocket, pass as they are).
func rewritingProxy(t *testing.T, target string, rewrite func(r *http.Request, status int, body []byte) []byte) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) },
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return nil
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			b = rewrite(resp.Request, resp.StatusCode, b)
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
			resp.Header.Del("Content-Encoding")
			return nil
		},
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

// badRunes returns what in s could drive a terminal or reorder or break
// what it shows: C0 controls but the line feed, DEL, C1 controls, the
// bidirectional controls, line and paragraph separators, bytes that are not
// UTF-8. (Written out here, not taken from safe.go.)
func badRunes(s string) []string {
	var bad []string
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1,
			r < 0x20 && r != '\n', r == 0x7f, r >= 0x80 && r <= 0x9f,
			r == '\u061c', r == '\u200e', r == '\u200f', r >= '\u202a' && r <= '\u202e',
			r >= '\u2066' && r <= '\u2069', r == '\u2028', r == '\u2029':
			bad = append(bad, s[i:i+n])
		}
		i += n
	}
	return bad
}

func wantClean(t *testing.T, what, s string) {
	t.Helper()
	if bad := badRunes(s); len(bad) > 0 {
		t.Errorf("%s printed %q raw:\n%s", what, bad, s)
	}
}

// TestUntrustedTextShownSafely: a member sends a message, a title and a
// device name made to drive the terminal and to fake a line of another
// user; the server renames her for bob with the same. Nothing of it reaches
// the terminal raw in sync, list, devices, the line chat or the chat view,
// no line of it starts like another user's, and --json keeps it exact.
func TestUntrustedTextShownSafely(t *testing.T) {
	base := startTestServer(t)
	var mu sync.Mutex
	fakeName := "" // what the server calls alice when bob asks; set below
	proxy := rewritingProxy(t, base, func(r *http.Request, status int, b []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if fakeName == "" {
			return b
		}
		j, _ := json.Marshal(fakeName)
		return bytes.ReplaceAll(b, []byte(`"username":"alice"`), append([]byte(`"username":`), j...))
	})
	homes := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		homes[u] = filepath.Join(t.TempDir(), u)
	}
	const (
		title  = "plans\x1b[2J\x1b]0;pwned\x07\u202egnp.exe"
		device = "phone\x1b]52;c;cm0gLXJmIH4=\x07\u2066x\u2069"
	)
	// alice's device bears the name she chose.
	st, err := client.NewDirStorage(homes["alice"])
	if err != nil {
		t.Fatal(err)
	}
	ac, err := client.Open(client.Options{Server: base, Storage: st, DeviceName: device})
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.Register(context.Background(), "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if err := ac.Close(); err != nil { // the CLI below uses alice's state
		t.Fatal(err)
	}
	mustCLI(t, strings.NewReader("password of bob\n"), "--home", homes["bob"], "--server", proxy, "register", "bob", "--password-stdin")
	mustCLI(t, strings.NewReader("password of carol\n"), "--home", homes["carol"], "--server", base, "register", "carol", "--password-stdin")
	conv := strings.TrimSpace(mustCLI(t, nil, "--home", homes["alice"], "new", "--title", title, "bob", "carol"))
	c8 := conv[:8]
	text := "see\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;pwned\x07 \u202eevil\u202c\rover\n[" + c8 + "] bob: fake\n\u2028x\u0085y \\x1b"
	mustCLI(t, nil, "--home", homes["alice"], "send", conv, text)
	mu.Lock()
	fakeName = "alice\x1b[31m\n[" + c8 + "] carol: fake too"
	mu.Unlock()

	// sync: each message one head line, its further lines under it (the
	// title is the conversation's state, shown by list and the chat view).
	shownName := `?"alice\x1b[31m\x0a[` + c8 + `] carol: fake too"` // not a username's form: quoted
	wantSync := "[" + c8 + "] " + shownName + `: see\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;pwned\x07 \u{202e}evil\u{202c}\x0dover` + "\n" +
		"           | [" + c8 + "] bob: fake\n" +
		`           | \u{2028}x\u{0085}y \\x1b` + "\n"
	out := mustCLI(t, nil, "--home", homes["bob"], "sync")
	wantClean(t, "sync", out)
	if out != wantSync {
		t.Errorf("sync printed\n%s\nwant\n%s", out, wantSync)
	}
	// --json is exact.
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(mustCLI(t, nil, "--home", homes["carol"], "--json", "sync")), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("--json sync printed %q: %v", l, err)
		}
		got = append(got, m)
	}
	if len(got) != 1 || got[0]["text"] != text || got[0]["sender"] != "alice" {
		t.Errorf("--json sync changed the texts: %q", got)
	}

	// list: one line per conversation.
	out = mustCLI(t, nil, "--home", homes["bob"], "list")
	wantClean(t, "list", out)
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, conv+"  "+`plans\x1b[2J\x1b]0;pwned\x07\u{202e}gnp.exe  `) || !strings.Contains(out, shownName) {
		t.Errorf("list printed %q", out)
	}
	var cv client.Conversation
	if err := json.Unmarshal([]byte(mustCLI(t, nil, "--home", homes["bob"], "--json", "list")), &cv); err != nil {
		t.Fatal(err)
	}
	if cv.Title != title || !slices.Contains(cv.Members, fakeName) {
		t.Errorf("--json list changed the texts: %q %q", cv.Title, cv.Members)
	}

	// devices
	out = mustCLI(t, nil, "--home", homes["alice"], "devices")
	wantClean(t, "devices", out)
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `  phone\x1b]52;c;cm0gLXJmIH4=\x07\u{2066}x\u{2069}  `) {
		t.Errorf("devices printed %q", out)
	}
	var dev client.Device
	if err := json.Unmarshal([]byte(mustCLI(t, nil, "--home", homes["alice"], "--json", "devices")), &dev); err != nil || dev.Name != device {
		t.Errorf("--json devices: %v %q", err, dev.Name)
	}

	// The line chat prints the history like sync, and /members' answer.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.WriteString(w, "/members\n/quit\n")
		w.Close()
	}()
	out, errs, err := runCLI(t, r, "--home", homes["bob"], "chat", conv)
	r.Close()
	if err != nil {
		t.Fatalf("chat: %v\n%s", err, errs)
	}
	wantClean(t, "chat", out+errs)
	if out != wantSync || !strings.Contains(errs, "members: "+shownName+", ") {
		t.Errorf("chat printed\n%s\n%s", out, errs)
	}

	// The chat view, from bob's state.
	bst, err := client.NewDirStorage(homes["bob"])
	if err != nil {
		t.Fatal(err)
	}
	bc, err := client.Open(client.Options{Storage: bst})
	if err != nil {
		t.Fatal(err)
	}
	id, err := bc.FindConversation(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := bc.History(id)
	if err != nil {
		t.Fatal(err)
	}
	convs, err := bc.Conversations(context.Background())
	if err != nil || len(convs) != 1 {
		t.Fatalf("conversations: %v %d", err, len(convs))
	}
	m := newChatModel(context.Background(), bc, id, bc.Username())
	m.setConversation(convs[0])
	for _, h := range hist {
		m.addMessage(h)
	}
	m.Update(chatWarningsMsg{{Kind: client.WarnIdentityChanged, User: hist[0].SenderID, Username: fakeName}})
	for _, width := range []int{200, 47} {
		m.Update(tea.WindowSizeMsg{Width: width, Height: 30})
		v := m.View()
		wantClean(t, "the chat view's title", v.WindowTitle)
		// The view's own styling is the only escape sequence.
		sgr := regexp.MustCompile("\x1b\\[[0-9;]*m")
		wantClean(t, "the chat view", sgr.ReplaceAllString(v.Content, ""))
		lines := strings.Split(ansi.Strip(v.Content), "\n")
		heads := 0
		stamp := regexp.MustCompile(`^(\w\w\w \d+ )?\d\d:\d\d `)
		for _, l := range lines {
			if stamp.MatchString(l) {
				heads++
				if !strings.Contains(l, ` ?"alice\x1b[31m`) {
					t.Errorf("a line of the view at %d columns passes for another sender's: %q", width, l)
				}
			}
		}
		if heads != 1 { // the message; the title is in the view's header
			t.Errorf("the view at %d columns shows %d message heads, want 1:\n%s", width, heads, strings.Join(lines, "\n"))
		}
		if width == 200 && !slices.Contains(lines, "      ["+c8+"] bob: fake") {
			t.Errorf("the second line of the message is not under its head:\n%s", strings.Join(lines, "\n"))
		}
	}
}

// TestUntrustedWarningShownSafely: the server names a contact whose
// identity key changed with a name made to fake a line; the warning sync
// prints shows it escaped.
func TestUntrustedWarningShownSafely(t *testing.T) {
	base := startTestServer(t)
	const fakeName = "alice\x1b]0;pwned\x07\nsandi: all is well"
	proxy := rewritingProxy(t, base, func(r *http.Request, status int, b []byte) []byte {
		j, _ := json.Marshal(fakeName)
		return bytes.ReplaceAll(b, []byte(`"username":"alice"`), append([]byte(`"username":`), j...))
	})
	alice, alice2, bob := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "a2"), filepath.Join(t.TempDir(), "b")
	mustCLI(t, strings.NewReader("password of alice\n"), "--home", alice, "--server", base, "register", "alice", "--password-stdin")
	mustCLI(t, strings.NewReader("password of bob\n"), "--home", bob, "--server", proxy, "register", "bob", "--password-stdin")
	mustCLI(t, nil, "--home", bob, "safety-number", "alice")
	mustCLI(t, strings.NewReader("password of alice\n"), "--home", alice2, "--server", base, "login", "alice", "--password-stdin", "--reset")
	mustCLI(t, nil, "--home", bob, "safety-number", "alice") // sees the new key
	out, errs, err := runCLI(t, nil, "--home", bob, "sync")
	if err != nil {
		t.Fatalf("sync: %v\n%s", err, errs)
	}
	wantClean(t, "sync", out+errs)
	shown := `?"alice\x1b]0;pwned\x07\x0asandi: all is well"`
	if want := "sandi: WARNING: the identity key of " + shown + " changed; compare safety numbers ('sandi safety-number " + shown + "') before trusting it\n"; errs != want {
		t.Fatalf("sync warned\n%q\nwant\n%q", errs, want)
	}
}

package main_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"
)

// rawRune returns the first thing in s that could drive a terminal: a C0
// control but the line feed, DEL, a C1 control, a bidirectional override or
// a byte that is not UTF-8; "" if none.
func rawRune(s string) string {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r <= 0x9f || r >= '\u202a' && r <= '\u202e' {
			return s[i : i+n]
		}
		i += n
	}
	return ""
}

// TestCLIServerErrorShownSafely: the server answers an error whose code and
// text are made to drive the terminal and to fake a line of another user;
// the binary's error message shows them escaped, their further lines under
// "sandi:".
func TestCLIServerErrorShownSafely(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
	waitHealthy(t, srv, base)
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	evil := map[string]any{"code": "not_found\x1b[2J", "detail": "gone\x1b]52;c;cm0gLXJmIH4=\x07\u202e\n[0123abcd] alice: fake\r"}
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode < 400 {
				return nil
			}
			b, _ := json.Marshal(evil)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
			return nil
		},
	})
	defer proxy.Close()
	home := filepath.Join(t.TempDir(), "bob")
	cliOK(t, proxy.URL, home, "password of bob\n", "register", "bob", "--password-stdin")
	out, errs, code := cliRun(t, proxy.URL, home, "", "send", "0123456789abcdef0123456789abcdef", "hello")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	if raw := rawRune(errs); raw != "" {
		t.Fatalf("stderr has %q raw: %q", raw, errs)
	}
	lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "sandi: ") || lines[1] != `       | [0123abcd] alice: fake\x0d (not_found\x1b[2J)` ||
		!strings.Contains(lines[0], `gone\x1b]52;c;cm0gLXJmIH4=\x07\u{202e}`) {
		t.Fatalf("stderr %q", errs)
	}
}

// TestCLIWrapsOnATerminal: on a terminal 40 columns wide, a message padded
// with spaces to the edge would have the terminal put its rest at column 0,
// where it passes for another user's line. sync wraps it itself, the rest
// under the message. (The terminal is a pseudo-terminal of script(1).)
func TestCLIWrapsOnATerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to run sandi on a terminal")
	}
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
	waitHealthy(t, srv, base)
	alice, bob := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	cliOK(t, base, alice, "password of alice\n", "register", "alice", "--password-stdin")
	cliOK(t, base, bob, "password of bob\n", "register", "bob", "--password-stdin")
	cliOK(t, base, bob, "", "new", "alice") // bob knows alice: no request note on the terminal
	conv := strings.TrimSpace(cliOK(t, base, alice, "", "new", "bob"))
	fake := "[" + conv[:8] + "] carol: fake"
	head := "[" + conv[:8] + "] alice: "
	cliOK(t, base, alice, "", "send", conv, "look"+strings.Repeat(" ", 40-len(head)-len("look"))+fake)
	cmd := exec.Command(script, "-qec", "stty cols 40 rows 24; exec "+sandiBinary(t)+" --home "+bob+" sync", "/dev/null")
	cmd.Env = childEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sync on a terminal: %v\n%q", err, out)
	}
	// What the terminal shows: each line cut into rows of 40 columns.
	var rows []string
	for _, l := range strings.Split(strings.TrimRight(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n"), "\n") {
		for len(l) > 40 {
			rows, l = append(rows, l[:40]), l[40:]
		}
		rows = append(rows, l)
	}
	want := []string{"[" + conv[:8] + "] alice: look", "           | " + fake}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the terminal shows\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
}

// TestCLIBackupErrorShownSafely: when the hourly backup after a command
// fails, the server's error text is shown escaped in the warning, and the
// command still succeeds.
func TestCLIBackupErrorShownSafely(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
	waitHealthy(t, srv, base)
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() && r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/api/archives/") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			json.NewEncoder(w).Encode(map[string]any{"code": "too_large\x1b[2J", "detail": "full\x1b]52;c;cm0gLXJmIH4=\x07\u202e\n[0123abcd] alice: fake\r"})
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	home := filepath.Join(t.TempDir(), "bob")
	cliOK(t, proxy.URL, home, "password of bob\n", "register", "bob", "--password-stdin")
	cliOK(t, proxy.URL, home, "", "backup", "enable")
	// The last backup is made an hour old, so the next command makes one.
	b, err := os.ReadFile(filepath.Join(home, "backup"))
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil || st["last"] == nil {
		t.Fatalf("backup state %q: %v", b, err)
	}
	st["last"] = 0
	delete(st, "index") // nothing changed since: without its index the device uploads a whole backup
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "backup"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	_, errs, code := cliRun(t, proxy.URL, home, "", "list")
	if code != 0 || !strings.Contains(errs, "the backup was not updated") || !strings.Contains(errs, "fake") {
		t.Fatalf("list: exit %d, stderr %q", code, errs)
	}
	if raw := rawRune(errs); raw != "" || !strings.Contains(errs, "\n       | [0123abcd] alice: fake\\x0d") {
		t.Fatalf("the backup warning has %q raw or is not framed: %q", raw, errs)
	}
}

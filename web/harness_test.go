package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"sandi.dev/client"
	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/protocol"
	"sandi.dev/web"
)

// chromiumPath is Debian's Chromium, which scripts/test.sh installs.
const chromiumPath = "/usr/bin/chromium"

// outDir receives the screenshots (gitignored).
var outDir = filepath.Join("..", "test-output", "web")

// phoneWidth is the width of the phone layout the tests check and
// photograph (a small phone's, in CSS pixels).
const phoneWidth = 375

// stepTimeout bounds one wait in the browser.
const stepTimeout = 30 * time.Second

// requireBuilt fails (never skips) when the pieces the browser tests need
// are missing.
func requireBuilt(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("static", "sandi.wasm")); err != nil {
		t.Fatalf("web/static/sandi.wasm is missing: run `go generate ./web` before the browser tests (scripts/test.sh does)")
	}
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("Chromium is missing at %s: install it with `apt-get install -y chromium` (scripts/test.sh does)", chromiumPath)
	}
}

// startServer runs a sandi server with the web client on a loopback port,
// over a fresh SQLite database, and returns its URL.
func startServer(t *testing.T) string {
	t.Helper()
	url, _ := startServerIn(t, "", nil)
	return url
}

// startServerIn is startServer with its data (the database and the blobs
// directory) in dir, a fresh directory if dir is "", and its configuration
// changed by config if not nil. It returns the URL and the directory.
func startServerIn(t *testing.T, dir string, config func(*server.Config)) (url, data string) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	url, stop := serveAt(t, dir, "127.0.0.1:0", config)
	t.Cleanup(stop)
	return url, dir
}

// serveAt runs a server over the data in dir on addr (host:port) until
// stop, which may be called again: a test stops a server and starts
// another on the same address and data, as a restart does.
func serveAt(t *testing.T, dir, addr string, config func(*server.Config)) (url string, stop func()) {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), filepath.Join(dir, "sandi.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := fsblob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	var logw io.Writer = io.Discard
	if os.Getenv("SANDI_TEST_LOG") != "" {
		logw = os.Stderr
	}
	cfg := server.Config{
		Argon2Time: 1, Argon2MemKiB: 64, Argon2Threads: 1,
		RegisterPerMinute: -1, LoginPerMinute: -1, ClaimPerMinute: -1,
		Blobs: blobs,
	}
	if config != nil {
		config(&cfg)
	}
	srv := server.New(st, slog.New(slog.NewTextHandler(logw, nil)), cfg)
	h := web.Handler()
	srv.Mount("GET /{$}", h)
	srv.Mount("GET "+web.Prefix, h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(ln)
	}()
	var once sync.Once
	return "http://" + ln.Addr().String(), func() {
		once.Do(func() {
			hs.Close()
			<-done
			srv.Close()
			st.Close()
		})
	}
}

// startBrowser starts one headless Chromium for a test and returns its
// root context; each user gets a browser context of its own (newPage).
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// A fake microphone that needs no permission prompt (voice notes).
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start Chromium (%s): %v", chromiumPath, err)
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

// page is one browser tab of one user.
type page struct {
	t      *testing.T
	name   string
	url    string
	ctx    context.Context
	cancel context.CancelFunc
	owner  context.Context // of the browser context

	mu       sync.Mutex
	problems []string // uncaught exceptions and console errors
}

// newUserPage opens a page of its own for name and registers name in it.
func newUserPage(t *testing.T, browser context.Context, name, url string) *page {
	t.Helper()
	p := newPage(t, browser, name, url)
	p.register(name)
	return p
}

// newPage opens a tab in a new browser context (its own IndexedDB, as a
// separate browser profile would have) at url.
func newPage(t *testing.T, browser context.Context, name, url string) *page {
	t.Helper()
	// The context that owns the browser context keeps a blank tab of its
	// own, so the user's tabs can close without disposing of it.
	owner, cancelOwner := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancelOwner)
	if err := chromedp.Do(owner); err != nil {
		t.Fatalf("%s: new browser context: %v", name, err)
	}
	ctx, cancel := chromedp.NewContext(owner)
	t.Cleanup(cancel)
	p := openTab(t, ctx, cancel, name, url)
	p.owner = owner
	return p
}

// newTab opens another tab in the browser context of p.
func (p *page) newTab(name string) *page {
	ctx, cancel := chromedp.NewContext(p.owner)
	p.t.Cleanup(cancel)
	q := openTab(p.t, ctx, cancel, name, p.url)
	q.owner = p.owner
	return q
}

// close closes the tab.
func (p *page) close() { p.cancel() }

func openTab(t *testing.T, ctx context.Context, cancel context.CancelFunc, name, url string) *page {
	p := &page{t: t, name: name, url: url, ctx: ctx, cancel: cancel}
	if err := chromedp.Do(ctx); err != nil { // attach the tab, without a timeout
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				p.mu.Lock()
				p.problems = append(p.problems, fmt.Sprintf("%s %s:%d: %s", m.Type, m.URL, m.Line+1, m))
				p.mu.Unlock()
			}
		}
	}()
	p.do("open the page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(url))
	return p
}

// noProblems fails the test if the page logged an uncaught exception or a
// console error other than the expected ones (expect: substrings).
func (p *page) noProblems(expect ...string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
next:
	for _, pr := range p.problems {
		for _, e := range expect {
			if strings.Contains(pr, e) {
				continue next
			}
		}
		p.t.Errorf("%s: the page logged: %s", p.name, pr)
	}
	p.problems = nil
}

// do runs steps with a timeout and fails the test on error.
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.fail("%s: %v", what, err)
	}
}

// fail saves a screenshot and the page's text, then fails the test.
func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	shot := "FAILED-" + strings.ReplaceAll(p.t.Name(), "/", "-") + "-" + p.name
	if b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		os.MkdirAll(outDir, 0o755)
		os.WriteFile(filepath.Join(outDir, shot+".png"), b, 0o644)
	}
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	p.mu.Lock()
	problems := strings.Join(p.problems, "\n  ")
	p.mu.Unlock()
	p.t.Fatalf("%s: %s\n--- page text ---\n%s\n--- console problems ---\n  %s\n(screenshot %s.png in %s)", p.name, msg, body, problems, shot, outDir)
}

// wait polls a JavaScript expression until it is truthy. A navigation
// (a reload) interrupts a poll; it starts again in the new document.
func (p *page) wait(what, expr string) {
	p.t.Helper()
	p.waitWithin(stepTimeout, what, expr)
}

// holdsWithin reports whether expr becomes true within d.
func (p *page) holdsWithin(d time.Duration, expr string) bool {
	p.t.Helper()
	for deadline := time.Now().Add(d); ; {
		if eval[bool](p, expr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitWithin is wait with its own timeout.
func (p *page) waitWithin(d time.Duration, what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		ctx, cancel := context.WithTimeout(p.ctx, left+5*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(left), chromedp.WithPollingInterval(50*time.Millisecond)))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || p.ctx.Err() != nil {
			p.fail("waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eval evaluates expr (awaiting a Promise) and decodes its value into T.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// js quotes s as a JavaScript string.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitView waits for the app to show a view (loading, auth, setup, main…).
func (p *page) waitView(view string) {
	p.t.Helper()
	p.wait("the "+view+" view", `document.documentElement.dataset.ready === `+js(view)+` && document.getElementById("app").dataset.view === `+js(view))
}

// reload reloads the page and waits for view (the device's state kept).
func (p *page) reload(view string) {
	p.t.Helper()
	p.do("reload", chromedp.Reload())
	p.waitView(view)
}

// waitText waits until the element selected by css contains text.
func (p *page) waitText(css, text string) {
	p.t.Helper()
	p.wait(fmt.Sprintf("%q in %s", text, css), `(() => { const e = document.querySelector(`+js(css)+`); return !!e && e.innerText.includes(`+js(text)+`); })()`)
}

// typeInto focuses an input and types text as key presses.
func (p *page) typeInto(css, text string) {
	p.t.Helper()
	p.do("type into "+css, chromedp.Focus(chromedp.CSS(css), chromedp.NodeVisible), chromedp.SendKeys(chromedp.CSS(css), text, chromedp.NodeVisible))
}

// pressEnter presses Enter in the focused element the way a keyboard does:
// one keydown that carries the text "\r" (so a cancelled keydown inserts
// nothing and an input's form is submitted), then keyup.
func (p *page) pressEnter() {
	p.t.Helper()
	p.do("press Enter", keyPress(input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter",
		Text: "\r", UnmodifiedText: "\r", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}))
}

// pressKey presses a key without text (an arrow, Escape, Tab) in the
// focused element.
func (p *page) pressKey(key string, code int64) {
	p.t.Helper()
	p.do("press "+key, rawKey(key, code))
}

func rawKey(key string, code int64) chromedp.Action[chromedp.Void] {
	return keyPress(input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeRawKeyDown, Key: key, Code: key, WindowsVirtualKeyCode: code, NativeVirtualKeyCode: code})
}

// keyPress dispatches down, then the keyup that matches it (no text).
func keyPress(down input.DispatchKeyEventParams) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		up := down
		up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
		for _, ev := range []input.DispatchKeyEventParams{down, up} {
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// tabTo presses Tab until the element selected by css has the focus:
// it must be reachable with the keyboard.
func (p *page) tabTo(css string) {
	p.t.Helper()
	p.tabUntil(css, false)
}

// tabBackTo is tabTo with Shift+Tab.
func (p *page) tabBackTo(css string) {
	p.t.Helper()
	p.tabUntil(css, true)
}

func (p *page) tabUntil(css string, back bool) {
	p.t.Helper()
	tab := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeRawKeyDown, Key: "Tab", Code: "Tab", WindowsVirtualKeyCode: 9, NativeVirtualKeyCode: 9}
	if back {
		tab.Modifiers = 8 // Shift
	}
	for range 40 {
		if eval[bool](p, `!!document.activeElement && document.activeElement.matches(`+js(css)+`)`) {
			return
		}
		p.do("press Tab", keyPress(tab))
	}
	p.fail("%s is not reachable with the Tab key", css)
}

// focused waits until the element selected by css has the focus, and
// fails if it does not show it (no outline, or not on the screen).
func (p *page) focused(css string) {
	p.t.Helper()
	p.wait("the focus on "+css, `!!document.activeElement && document.activeElement.matches(`+js(css)+`)`)
	const shown = `(() => {
		const e = document.activeElement, s = getComputedStyle(e), r = e.getBoundingClientRect();
		return e.matches(":focus-visible") && s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2 &&
			r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
	})()`
	if !eval[bool](p, shown) {
		p.fail("%s has the focus but does not show it", css)
	}
}

// typeKeys types text into the focused element, as a keyboard does.
func (p *page) typeKeys(text string) {
	p.t.Helper()
	p.do("type "+text, chromedp.KeyEvent(text))
}

// unnamed returns the visible controls under css that have no accessible
// name (no label, aria-label, aria-labelledby or text), and the names that
// two controls of one list share (a screen reader could not tell them
// apart).
func (p *page) unnamed(css string) []string {
	p.t.Helper()
	return eval[[]string](p, `(() => {
		const name = (e) => (e.getAttribute("aria-label") || "").trim() ||
			(e.getAttribute("aria-labelledby") || "").split(" ").map((id) => (document.getElementById(id) || {}).textContent || "").join(" ").trim() ||
			[...(e.labels || [])].map((l) => l.textContent).join(" ").trim() ||
			(e.matches("button, a, summary") ? e.textContent.trim() : "") || (e.getAttribute("title") || "").trim();
		const controls = [...document.querySelectorAll(`+js(css)+`)].flatMap((root) => [...root.querySelectorAll("button, a[href], input, select, textarea, summary, [tabindex]")])
			.filter((e) => e.getClientRects().length > 0 && e.type !== "hidden" && e.tabIndex >= 0);
		const out = controls.filter((e) => !name(e)).map((e) => "no name: " + e.outerHTML.slice(0, 120));
		for (const list of document.querySelectorAll("ul, ol")) {
			const seen = new Map();
			for (const e of controls.filter((c) => c.closest("ul, ol") === list || c.closest("li") && c.closest("li").parentElement === list)) {
				const n = name(e);
				if (n && seen.has(n) && seen.get(n) !== e) out.push("same name " + JSON.stringify(n) + " in #" + list.id);
				seen.set(n, e);
			}
		}
		return [...new Set(out)];
	})()`)
}

// click clicks the element css names with the mouse, at its centre, once
// a click there hits it: the element is visible, in view, and the layout
// has held for two frames with nothing over it. A pane that draws a list
// when it opens moves what is below it; a click aimed before the move
// landed beside the element (a flake of the backup settings' test).
func (p *page) click(css string) {
	p.t.Helper()
	if !p.aimClick(css, stepTimeout) {
		p.fail("click %s: not shown where a click would hit it", css)
	}
}

// aimClick clicks css as click does once a click there hits it, trying
// for at most d; it reports whether it clicked.
func (p *page) aimClick(css string, d time.Duration) bool {
	p.t.Helper()
	aim := `new Promise((res) => {
		const el = document.querySelector(` + js(css) + `);
		if (!el) return res(null);
		if (el.scrollIntoViewIfNeeded) el.scrollIntoViewIfNeeded(); else el.scrollIntoView({ block: "center" });
		requestAnimationFrame(() => requestAnimationFrame(() => {
			const r = el.getBoundingClientRect();
			const x = r.left + r.width / 2, y = r.top + r.height / 2;
			const hit = r.width > 0 && r.height > 0 ? document.elementFromPoint(x, y) : null;
			res(hit && (hit === el || el.contains(hit)) ? [x, y] : null);
		}));
	})`
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if xy := eval[[]float64](p, aim); len(xy) == 2 {
			p.do("click "+css, chromedp.MouseClickXY(xy[0], xy[1]))
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// screenshot saves the viewport at the given width as NAME-WIDTH.png and
// restores the desktop width.
func (p *page) screenshot(name string, widths ...int) {
	p.t.Helper()
	if len(widths) == 0 {
		widths = []int{1280, phoneWidth}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	for _, w := range widths {
		h := int64(800)
		if w < 600 {
			h = 844
		}
		p.do("resize", chromedp.EmulateViewport(int64(w), h), chromedp.Sleep(150*time.Millisecond))
		ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
		b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			p.fail("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(outDir, fmt.Sprintf("%s-%d.png", name, w)), b, 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	p.do("resize", chromedp.EmulateViewport(1280, 800))
}

// register creates an account in the page's auth view.
func (p *page) register(username string) {
	p.t.Helper()
	p.waitView("auth")
	p.typeInto("#auth-username", username)
	p.typeInto("#auth-password", "password of "+username)
	p.pressEnter()
	p.waitView("main")
}

// openConversation opens the conversation whose list row shows name.
// clickTaken clicks css and waits for taken, the sign that the page took
// the click; if it has not within 5 s (a redraw moved the element between
// the aim and the click), it clicks once more if the element is still
// there to click, and waits as wait does.
func (p *page) clickTaken(css, what, taken string) {
	p.t.Helper()
	p.click(css)
	if p.holdsWithin(5*time.Second, taken) {
		return
	}
	p.aimClick(css, time.Second) // not there any more: the first was taken
	p.wait(what, taken)
}

// acceptRequest accepts the open chat's message request.
func (p *page) acceptRequest() {
	p.t.Helper()
	p.wait("the request bar", `!document.getElementById("chat-request").hidden`)
	p.click("#request-accept")
	p.wait("the request accepted", `document.getElementById("chat-request").hidden`)
}

func (p *page) openConversation(name string) {
	p.t.Helper()
	p.waitText("#conv-list", name)
	p.do("open "+name, chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll("#conv-list .conv")].find(a => a.querySelector(".conv-name").innerText === `+js(name)+`)`), chromedp.NodeVisible))
	p.wait("the chat of "+name, `document.getElementById("chat-title").innerText === `+js(name)+` && !document.getElementById("pane-chat").hidden`)
}

// send types a message in the open chat, presses Enter and waits until it
// is marked sent (or already delivered or read: receipts.js).
func (p *page) send(text string) {
	p.t.Helper()
	p.typeInto("#composer-input", text)
	p.pressEnter()
	p.wait("“"+text+"” sent", `[...document.querySelectorAll("#messages .msg.own")].some(li => li.querySelector(".text").innerText === `+js(text)+` && /^(Sent|Delivered|Read)/.test(li.querySelector(".status").innerText))`)
}

// texts returns the texts of the messages in the open chat, in order.
func (p *page) texts() []string {
	p.t.Helper()
	return eval[[]string](p, `[...document.querySelectorAll("#messages .msg .text")].map(e => e.innerText)`)
}

// waitMessage waits until the open chat shows a message with text.
func (p *page) waitMessage(text string) {
	p.t.Helper()
	p.wait("message “"+text+"”", `[...document.querySelectorAll("#messages .msg .text")].some(e => e.innerText === `+js(text)+`)`)
}

// cli is a user of the Go SDK, as the command-line client is.
type cli struct {
	t   *testing.T
	c   *client.Client
	dir string
}

func newCLI(t *testing.T, url, dir string) *cli {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := client.NewDirStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Open(client.Options{Server: url, Storage: st, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return &cli{t: t, c: c, dir: dir}
}

// newUser registers name from a terminal client in a fresh directory;
// its password is "password of " + name.
func newUser(t *testing.T, url, name string) *cli {
	t.Helper()
	u := newCLI(t, url, "")
	if err := u.c.Register(context.Background(), name, "password of "+name); err != nil {
		t.Fatal(err)
	}
	return u
}

// startConversation creates a conversation titled title with members
// and sends first in it.
func (u *cli) startConversation(title, first string, members ...string) protocol.ConversationID {
	u.t.Helper()
	ctx := context.Background()
	conv, err := u.c.CreateConversation(ctx, title, members...)
	if err != nil {
		u.t.Fatal(err)
	}
	if _, err := u.c.Send(ctx, conv, first); err != nil {
		u.t.Fatal(err)
	}
	return conv
}

// syncTexts syncs and returns "sender: text" of the new text messages;
// a message that does not decrypt fails the test.
func (u *cli) syncTexts() []string {
	u.t.Helper()
	res, err := u.c.Sync(context.Background())
	if err != nil {
		u.t.Fatalf("%s: sync: %v", u.c.Username(), err)
	}
	if len(res.Failures) > 0 {
		u.t.Fatalf("%s: a message did not decrypt: %v", u.c.Username(), res.Failures[0])
	}
	var out []string
	for _, m := range res.Messages {
		if m.Type == client.ContentText {
			out = append(out, m.Sender+": "+m.Text)
		}
	}
	return out
}

// waitTexts syncs until every one of want has arrived, and returns all
// that arrived.
func (u *cli) waitTexts(want ...string) []string {
	u.t.Helper()
	var got []string
	deadline := time.Now().Add(stepTimeout)
	for {
		got = append(got, u.syncTexts()...)
		missing := false
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			missing = missing || !found
		}
		if !missing {
			return got
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("%s: waited for %q, got %q", u.c.Username(), want, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pickPeople adds users to the new-conversation form, which it opens.
func (p *page) pickPeople(users ...string) {
	p.t.Helper()
	eval[chromedp.Void](p, `location.hash = "#/new"`)
	for _, u := range users {
		p.wait("the new-conversation form", `!document.getElementById("pane-new").hidden`)
		eval[chromedp.Void](p, `document.getElementById("new-user").value = ""`)
		p.typeInto("#new-user", u)
		p.pressEnter()
		p.waitText("#new-picked", u)
	}
}

// createConversation creates a conversation with users from the
// new-conversation form and waits until it is open.
func (p *page) createConversation(users ...string) {
	p.t.Helper()
	p.pickPeople(users...)
	p.click("#new-create")
	p.wait("the new chat", `!document.getElementById("pane-chat").hidden`)
}

// openMembers opens the open chat's members panel, if it is closed, and
// waits until it lists the members.
func (p *page) openMembers() {
	p.t.Helper()
	if eval[bool](p, `document.getElementById("members-panel").hidden`) {
		p.click("#members-button")
	}
	p.wait("the members panel", `!document.getElementById("members-panel").hidden && document.querySelectorAll("#member-list li").length > 0`)
}

// removeMember removes user from the open chat in the members panel,
// past its confirmation.
func (p *page) removeMember(user string) {
	p.t.Helper()
	p.openMembers()
	remove := `#member-list [data-user=` + js(user) + `] .remove`
	p.click(remove)
	p.waitText(remove, "Remove "+user+"?")
	p.click(remove)
	p.wait(user+" removed", `!document.querySelector('#member-list [data-user=`+js(user)+`]')`)
}

// safetyNumber waits until the safety-number view shows its 12 groups,
// and returns them.
func (p *page) safetyNumber() string {
	p.t.Helper()
	p.wait("the safety number", `!document.getElementById("pane-safety").hidden && document.querySelectorAll("#safety-number span").length === 12`)
	return eval[string](p, `[...document.querySelectorAll("#safety-number span")].map(s => s.innerText).join(" ")`)
}

// openLogoutPanel clicks Log out once: the panel says what a logout
// loses, and whether the account has a backup.
func (p *page) openLogoutPanel() {
	p.t.Helper()
	p.click("#logout-button")
	p.wait("the logout panel", `!document.getElementById("logout-panel").hidden && !document.getElementById("logout-backup").innerText.startsWith("Checking")`)
}

// logout logs out past the confirmation, deleting the browser's data,
// and waits for the sign-in view.
func (p *page) logout() {
	p.t.Helper()
	if eval[bool](p, `document.getElementById("logout-button").dataset.confirm !== "1"`) {
		p.openLogoutPanel() // not asked yet, or the confirmation timed out
	}
	p.click("#logout-button")
	p.waitView("auth")
}

// openVerify opens the safety-number view of user from the open chat's
// members panel, with the keyboard, and returns the number it shows once
// the verify form is there.
func (p *page) openVerify(user string) string {
	p.t.Helper()
	p.openMembers()
	p.waitText("#member-list", user)
	// The member list is drawn again when the conversation changes (a
	// sync, a state event); an Enter on a link that was replaced just
	// before opens nothing, so the keyboard path is tried again then.
	for try := 0; ; try++ {
		p.tabTo(`#member-list a[aria-label="Safety number with ` + user + `"]`)
		p.pressEnter()
		if try == 2 || p.holdsWithin(5*time.Second, `!document.getElementById("pane-safety").hidden`) {
			break
		}
	}
	p.wait("the verify form for "+user, `!document.getElementById("verify-card").hidden && document.getElementById("verify-peer").innerText === `+js(user))
	return p.safetyNumber()
}

// submitNumber types number into the open verify form, with the keyboard,
// and presses Enter; it waits until the form has answered (an error, or
// the contact verified).
func (p *page) submitNumber(number string) {
	p.t.Helper()
	p.tabTo("#verify-input")
	if !eval[bool](p, `getComputedStyle(document.activeElement).outlineStyle !== "none"`) {
		p.fail("the focused number field has no visible focus")
	}
	eval[chromedp.Void](p, `document.getElementById("verify-input").value = ""`)
	p.typeInto("#verify-input", number)
	p.pressEnter()
	p.wait("the verify answer", `document.getElementById("verify-error").innerText !== "" || document.getElementById("verify-card").dataset.state === "verified"`)
}

// memberState returns the trust state the open chat's members panel shows
// for user ("verified", "unverified", "changed"), waiting for want if set.
func (p *page) memberState(user, want string) string {
	p.t.Helper()
	p.openMembers()
	expr := `(() => { const t = document.querySelector('#member-list li[data-user=` + js(user) + `] .trust-tag'); return t ? t.dataset.state : ""; })()`
	if want != "" {
		p.wait(user+" shown "+want, expr+` === `+js(want))
	}
	return eval[string](p, expr)
}

// waitBlocked waits until the open chat says that sending waits for the
// new key of user, with the composer disabled, and returns the old and new
// safety numbers it shows.
func (p *page) waitBlocked(user string) (old, fresh string) {
	p.t.Helper()
	p.wait("sending blocked by "+user+"'s new key", `(() => { const b = document.getElementById("chat-trust"); return !b.hidden && b.dataset.kind === "pending" && b.innerText.includes("The identity key of `+user+` changed") && document.getElementById("composer-input").disabled && document.getElementById("send-button").disabled && !document.getElementById("composer-blocked").hidden; })()`)
	nums := eval[[]string](p, `[...document.querySelectorAll("#chat-trust .safety-number")].map(n => [...n.querySelectorAll("span")].map(s => s.innerText).join(" "))`)
	if len(nums) != 2 {
		p.fail("the banner shows %d safety numbers, want the old and the new", len(nums))
	}
	return nums[0], nums[1]
}

// waitChatAlarm waits until the open chat lists an alarm of kind whose
// detail contains text.
func (p *page) waitChatAlarm(kind, text string) {
	p.t.Helper()
	p.wait("a "+kind+" alarm in the chat", `!document.getElementById("chat-alarms").hidden && [...document.querySelectorAll("#chat-alarm-list li.alarm")].some(li => li.dataset.kind === `+js(kind)+` && li.innerText.includes(`+js(text)+`))`)
}

// fits fails the test if a visible element under css reaches past width
// CSS pixels, at a viewport that wide (phone layout).
func (p *page) fits(css string, width int) {
	p.t.Helper()
	p.do("resize", chromedp.EmulateViewport(int64(width), 740), chromedp.Sleep(150*time.Millisecond))
	over := eval[[]string](p, fmt.Sprintf(`[...document.querySelectorAll(%s)].filter(e => e.offsetParent !== null || e.getClientRects().length > 0).filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.right > %d + 0.5 || r.left < -0.5); }).map(e => e.tagName + "#" + e.id + "." + e.className)`, js(css+", "+css+" *"), width))
	p.do("resize", chromedp.EmulateViewport(1280, 800))
	if len(over) > 0 {
		p.fail("at %d px, these overflow: %v", width, over)
	}
}

// rewriteProxy forwards everything (the page, the API, WebSockets) to a
// server, letting a test rewrite JSON answers as a malicious server would.
type rewriteProxy struct {
	mu      sync.Mutex
	rewrite func(r *http.Request, body map[string]any)
	url     string
}

func startRewriteProxy(t *testing.T, target string) *rewriteProxy {
	t.Helper()
	u, err := neturl.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &rewriteProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		rw := p.rewrite
		p.mu.Unlock()
		if rw == nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			return nil
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var body map[string]any
		if json.Unmarshal(data, &body) == nil {
			rw(resp.Request, body)
			if data, err = json.Marshal(body); err != nil {
				return err
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(data))
		resp.ContentLength = int64(len(data))
		resp.Header.Del("Content-Length")
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *rewriteProxy) set(f func(r *http.Request, body map[string]any)) {
	p.mu.Lock()
	p.rewrite = f
	p.mu.Unlock()
}

// waitTrue evaluates expr (which may be a Promise) until it is true.
func (p *page) waitTrue(what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for !eval[bool](p, expr) {
		if time.Now().After(deadline) {
			p.fail("waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// critical waits for the prominent critical-alarm notice, which is shown
// in the list view of a phone too.
func (p *page) critical() {
	p.t.Helper()
	p.wait("the critical alarm notice", `!document.getElementById("critical-alarm").hidden && document.getElementById("critical-alarm-text").innerText.length > 0`)
	p.do("phone", chromedp.EmulateViewport(375, 740), chromedp.Navigate(p.url+"/#/"))
	p.wait("the critical notice on a phone's list", `(() => { const r = document.getElementById("critical-alarm").getBoundingClientRect(); return r.height > 0 && r.width <= 375; })()`)
	p.screenshot("critical-alarm", phoneWidth)
}

// testPNG encodes a w×h PNG of a gradient.
func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sendFile sends data as an attachment named name, as `sandi send --file`
// does.
func (u *cli) sendFile(conv protocol.ConversationID, name, typ string, data []byte) client.Message {
	u.t.Helper()
	ctx := context.Background()
	meta := client.AttachmentMeta{Name: name, Type: typ}
	if cfg, err := png.DecodeConfig(bytes.NewReader(data)); err == nil {
		meta.Width, meta.Height = cfg.Width, cfg.Height
	}
	att, err := u.c.UploadAttachment(ctx, conv, bytes.NewReader(data), int64(len(data)), meta, nil)
	if err != nil {
		u.t.Fatalf("%s: upload %s: %v", u.c.Username(), name, err)
	}
	m, err := u.c.SendMessage(ctx, conv, "", []client.Attachment{att})
	if err != nil {
		u.t.Fatalf("%s: send %s: %v", u.c.Username(), name, err)
	}
	return m
}

// attachment syncs until a message with an attachment named name has
// arrived, and returns the attachment.
func (u *cli) attachment(conv protocol.ConversationID, name string) client.Attachment {
	u.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		u.syncTexts()
		if att, ok := u.findAttachment(conv, name); ok {
			return att
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("%s: no attachment %s arrived", u.c.Username(), name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// findAttachment looks for an attachment named name in the history.
func (u *cli) findAttachment(conv protocol.ConversationID, name string) (client.Attachment, bool) {
	u.t.Helper()
	h, err := u.c.History(conv)
	if err != nil {
		u.t.Fatal(err)
	}
	for i := len(h) - 1; i >= 0; i-- {
		for _, att := range h[i].Attachments {
			if att.Name == name {
				return att, true
			}
		}
	}
	return client.Attachment{}, false
}

// save downloads, verifies and decrypts the attachment named name once it
// has arrived, as `sandi save` does.
func (u *cli) save(conv protocol.ConversationID, name string) []byte {
	u.t.Helper()
	var buf bytes.Buffer
	if err := u.c.DownloadAttachment(context.Background(), conv, u.attachment(conv, name), &buf, nil); err != nil {
		u.t.Fatalf("%s: save %s: %v", u.c.Username(), name, err)
	}
	return buf.Bytes()
}

// attachFiles picks files with the attach button's file input and waits
// until the message that carries them is sent.
func (p *page) attachFiles(paths ...string) {
	p.t.Helper()
	before := eval[int](p, `document.querySelectorAll("#messages .msg.own[data-status=sent]").length`)
	p.do("pick files", chromedp.SetUploadFiles(chromedp.CSS(`#attach-input`), paths))
	p.wait("the files sent", fmt.Sprintf(`document.querySelectorAll("#messages .msg.own[data-status=sent]").length > %d`, before))
}

// giveFiles hands the open chat the files that the JavaScript expression
// files (an array of File, or a Promise of one) makes, the way how says:
// "drop" (dragged onto the chat) or "paste" (into the message field).
func (p *page) giveFiles(how, files string) {
	p.t.Helper()
	eval[chromedp.Void](p, `(async () => {
		const dt = new DataTransfer();
		for (const f of await (`+files+`)) dt.items.add(f);
		if (`+js(how)+` === "paste") {
			document.getElementById("composer-input").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
			return;
		}
		for (const type of ["dragenter", "dragover", "drop"]) {
			document.querySelector("#messages").dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
		}
	})()`)
}

// pageFile is a JavaScript expression of a File of size bytes.
func pageFile(name string, size int) string {
	return fmt.Sprintf(`[new File([new Uint8Array(%d).fill(7)], %s, { type: "application/octet-stream" })]`, size, js(name))
}

// waitImage waits until the open chat shows the image named name at its
// full size (decoded), scrolled into view (media load when seen), and
// returns its natural width.
func (p *page) waitImage(name string) int {
	p.t.Helper()
	sel := `[...document.querySelectorAll("#messages .att[data-kind=image]")].find(a => a.querySelector("img").alt === ` + js(name) + `)`
	p.wait(name+" shown", `(() => { const a = `+sel+`; if (a) a.scrollIntoView(); return !!a && a.dataset.state === "full" && a.querySelector("img").complete; })()`)
	return eval[int](p, sel+`.querySelector("img").naturalWidth`)
}

// recordVoice records a voice note of at least d with the record button
// (Chromium's fake microphone), with a screenshot (voice-recording-375),
// and waits until it is sent.
func (p *page) recordVoice(d time.Duration) {
	p.t.Helper()
	before := eval[int](p, `document.querySelectorAll("#messages .msg.own[data-status=sent]").length`)
	p.click("#record-button")
	p.wait("recording", `document.getElementById("record-button").dataset.recording === "1" && document.getElementById("record-status").innerText.startsWith("Recording")`)
	start := time.Now()
	p.screenshot("voice-recording", phoneWidth)
	time.Sleep(d - time.Since(start))
	p.click("#record-button")
	p.wait("the voice note sent", fmt.Sprintf(`document.querySelectorAll("#messages .msg.own[data-status=sent]").length > %d`, before))
}

// waitAudio waits until the open chat's last voice note, scrolled into
// view, can play, and returns its duration in seconds.
func (p *page) waitAudio() float64 {
	p.t.Helper()
	const last = `[...document.querySelectorAll("#messages .att[data-kind=audio] audio")].pop()`
	p.wait("a playable voice note", `(() => { const a = `+last+`; if (a) a.scrollIntoView(); return !!a && a.readyState >= 1 && isFinite(a.duration) && a.duration > 0; })()`)
	return eval[float64](p, last+`.duration`)
}

// tamperNewestBlob changes one byte in the middle of the blob stored last
// under the server's data directory, as a malicious server would.
func tamperNewestBlob(t *testing.T, data string) {
	t.Helper()
	var newest string
	var at time.Time
	filepath.WalkDir(filepath.Join(data, "blobs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil && info.ModTime().After(at) {
			newest, at = path, info.ModTime()
		}
		return nil
	})
	if newest == "" {
		t.Fatal("no blob under the server's data directory")
	}
	b, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(newest, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// frameCount is what frames measures.
type frameCount struct {
	Seconds float64 `json:"seconds"`
	Frames  int     `json:"frames"`
	Longest float64 `json:"longestFrameMs"`
}

// frames runs the JavaScript start and counts the animation frames the
// page draws until the expression done is true (checked every frame): how
// long it took, how many frames, the longest gap between two.
func (p *page) frames(what, start, done string) frameCount {
	p.t.Helper()
	eval[chromedp.Void](p, `(() => {
		const b = window.__frames = { frames: 0, longest: 0, start: performance.now() };
		const tick = (now) => {
			if (b.end) return;
			if (b.last) b.longest = Math.max(b.longest, now - b.last);
			b.last = now;
			b.frames++;
			if (`+done+`) b.end = now;
			requestAnimationFrame(tick);
		};
		requestAnimationFrame(tick);
		`+start+`;
	})()`)
	p.waitWithin(10*time.Minute, "the "+what, `!!window.__frames.end`)
	r := eval[struct {
		Frames              int
		Longest, Start, End float64
	}](p, `window.__frames`)
	return frameCount{Seconds: (r.End - r.Start) / 1000, Frames: r.Frames, Longest: r.Longest}
}

// linkCode waits for the code a page that is linking shows and returns it.
func (p *page) linkCode() string {
	p.t.Helper()
	p.wait("the link code", `/^[A-Z2-7]{5}(-[A-Z2-7]{5}){3}-[A-Z2-7]{6}$/.test(document.getElementById("link-code").innerText.trim())`)
	return eval[string](p, `document.getElementById("link-code").innerText.trim()`)
}

// approveWithHistory approves, on a signed-in page, the new device that
// shows code, handing it this browser's history.
func (p *page) approveWithHistory(code string) {
	p.t.Helper()
	p.click("#devices-link")
	p.typeInto("#approve-code", code)
	// A banner that appears meanwhile (the new device's sign-in) moves the
	// box: a click that landed beside it is made again.
	const chosen = `document.getElementById("approve-history").checked`
	for range 3 {
		if eval[bool](p, chosen) {
			break
		}
		p.click("#approve-history")
	}
	p.wait("the history chosen", chosen)
	p.pressEnter()
	p.waitText("#approve-status", "and this browser's history")
}

// hold pauses the page's requests to URLs matching patterns (DevTools
// Fetch domain) and never lets them go on: a request held stays under
// way until the page gives it up, whatever the time. hold() with no
// pattern lets every request through again.
func (p *page) hold(patterns ...string) {
	p.t.Helper()
	p.do("hold "+strings.Join(patterns, " "), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if len(patterns) == 0 {
			_, err := cdp.Call(ctx, tg, fetch.Disable, cdp.Empty{})
			return err
		}
		var rp []*fetch.RequestPattern
		for _, u := range patterns {
			rp = append(rp, &fetch.RequestPattern{URLPattern: u})
		}
		_, err := cdp.Call(ctx, tg, fetch.Enable, fetch.EnableParams{Patterns: rp})
		return err
	}))
}

// block makes the page's requests to URLs matching patterns fail, as a
// network that drops them does; block() lets everything through again.
func (p *page) block(patterns ...string) {
	p.t.Helper()
	p.do("block "+strings.Join(patterns, " "), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		bp := []*network.BlockPattern{}
		for _, u := range patterns {
			bp = append(bp, &network.BlockPattern{URLPattern: u, Block: true})
		}
		_, err := cdp.Call(ctx, tg, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: bp})
		return err
	}))
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// fakeBackend stands in for the client: Send fails while fail is set.
type fakeBackend struct {
	mu      sync.Mutex
	conv    protocol.ConversationID
	members []string
	fail    error
	sent    []string
	ids     []string // client message ids of every attempt
	seq     uint64
	added   []string
}

func (f *fakeBackend) SendWithID(ctx context.Context, conv protocol.ConversationID, clientID, text string) (client.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, clientID)
	if f.fail != nil {
		return client.Message{}, f.fail
	}
	f.seq++
	f.sent = append(f.sent, text)
	return client.Message{Conversation: conv, Seq: f.seq, Sender: "alice", Text: text, Own: true,
		ReceivedAt: testNow.Add(time.Duration(f.seq) * time.Second).UnixMilli()}, nil
}

func (f *fakeBackend) Conversations(ctx context.Context) ([]client.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []client.Conversation{{ID: f.conv, Title: "friends", Members: slices.Clone(f.members)}}, nil
}

func (f *fakeBackend) AddMembers(ctx context.Context, conv protocol.ConversationID, users ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = append(f.members, users...)
	slices.Sort(f.members)
	f.added = append(f.added, users...)
	return nil
}

func (f *fakeBackend) RemoveMembers(ctx context.Context, conv protocol.ConversationID, users ...string) error {
	return errors.New("not an admin")
}

func (f *fakeBackend) SafetyNumber(ctx context.Context, user string) (string, []byte, error) {
	return "12345 67890", nil, nil
}

var testNow = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

func newTestChat(t *testing.T, w, h int) (*chatModel, *fakeBackend) {
	t.Helper()
	conv := protocol.NewConversationID()
	b := &fakeBackend{conv: conv, members: []string{"alice", "bob"}}
	m := newChatModel(context.Background(), b, conv, "alice")
	m.loc, m.now = time.UTC, func() time.Time { return testNow }
	m.setConversation(client.Conversation{ID: conv, Title: "friends", Members: []string{"alice", "bob"}})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m, b
}

func msgAt(m *chatModel, seq uint64, sender, text string, minutes int) client.Message {
	return client.Message{Conversation: m.conv, Seq: seq, Sender: sender, Text: text, Type: client.ContentText,
		ReceivedAt: testNow.Add(time.Duration(minutes) * time.Minute).UnixMilli()}
}

// screen is the rendered view as plain text lines.
func screen(t *testing.T, m *chatModel) []string {
	t.Helper()
	v := m.View()
	if !v.AltScreen {
		t.Fatal("the view is not full-screen")
	}
	lines := strings.Split(ansi.Strip(v.Content), "\n")
	if len(lines) != m.height {
		t.Fatalf("the view has %d lines, the window %d:\n%s", len(lines), m.height, strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if w := ansi.StringWidth(l); w > m.width {
			t.Fatalf("line %q is %d wide, the window %d", l, w, m.width)
		}
	}
	return lines
}

func hasLine(lines []string, want string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.TrimRight(l, " ") == want })
}

func wantLine(t *testing.T, m *chatModel, want string) {
	t.Helper()
	if lines := screen(t, m); !hasLine(lines, want) {
		t.Fatalf("no line %q on the screen:\n%s", want, strings.Join(lines, "\n"))
	}
}

func noLine(t *testing.T, m *chatModel, text string) {
	t.Helper()
	lines := screen(t, m)
	if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, text) }) {
		t.Fatalf("%q is on the screen:\n%s", text, strings.Join(lines, "\n"))
	}
}

func press(m *chatModel, keys ...string) tea.Cmd {
	var cmds []tea.Cmd
	for _, k := range keys {
		var key tea.KeyPressMsg
		switch k {
		case "enter":
			key = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "esc":
			key = tea.KeyPressMsg{Code: tea.KeyEscape}
		case "backspace":
			key = tea.KeyPressMsg{Code: tea.KeyBackspace}
		case "pgup":
			key = tea.KeyPressMsg{Code: tea.KeyPgUp}
		case "pgdown":
			key = tea.KeyPressMsg{Code: tea.KeyPgDown}
		case "left":
			key = tea.KeyPressMsg{Code: tea.KeyLeft}
		case "ctrl+c":
			key = tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
		case "ctrl+r":
			key = tea.KeyPressMsg{Code: 'r', Mod: tea.ModCtrl}
		default:
			r := []rune(k)[0]
			key = tea.KeyPressMsg{Code: r, Text: k}
		}
		_, cmd := m.Update(key)
		cmds = append(cmds, cmd)
	}
	return tea.Batch(cmds...)
}

func typeText(m *chatModel, s string) tea.Cmd {
	var keys []string
	for _, r := range s {
		keys = append(keys, string(r))
	}
	return press(m, keys...)
}

// run runs a command as the program would, feeding what it returns back to
// the model until nothing is left; it reports whether the model quit.
func drain(m *chatModel, cmd tea.Cmd) (quit bool) {
	if cmd == nil {
		return false
	}
	switch msg := cmd().(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			quit = drain(m, c) || quit
		}
	case tea.QuitMsg:
		return true
	default:
		_, next := m.Update(msg)
		return drain(m, next)
	}
	return quit
}

func TestChatViewHistoryAndInput(t *testing.T) {
	m, _ := newTestChat(t, 60, 12)
	m.addMessage(msgAt(m, 1, "bob", "hi alice", 0))
	own := msgAt(m, 2, "alice", "hello bob", 1)
	own.Own = true
	m.addMessage(own)
	m.addMessage(client.Message{Conversation: m.conv, Seq: 3, Sender: "bob", Type: client.ContentTitle, Text: "old friends",
		ReceivedAt: testNow.Add(2 * time.Minute).UnixMilli()})
	m.addMessage(msgAt(m, 1, "bob", "hi alice", 0)) // a duplicate is shown once
	old := msgAt(m, 4, "bob", "from yesterday?", -24*60)
	m.addMessage(old)
	press(m, "h", "e", "y", " ", "y", "o", "u")

	lines := screen(t, m)
	if !strings.Contains(lines[0], "sandi · old friends · alice, bob · you: alice") {
		t.Fatalf("header %q", lines[0])
	}
	wantLine(t, m, "10:00 bob: hi alice")
	wantLine(t, m, "10:01 alice (you): hello bob  · sent")
	wantLine(t, m, `10:02 * bob set the title to "old friends"`)
	wantLine(t, m, "Mar 13 10:00 bob: from yesterday?")
	if n := strings.Count(strings.Join(lines, "\n"), "hi alice"); n != 1 {
		t.Fatalf("the duplicate is shown %d times", n)
	}
	// The input is the last line and the cursor is at its end.
	if got := lines[len(lines)-1]; got != "> hey you" {
		t.Fatalf("input line %q", got)
	}
	if c := m.View().Cursor; c == nil || c.Y != 11 || c.X != len("> hey you") {
		t.Fatalf("cursor %+v", c)
	}
	// Editing: backspace, then typing in the middle.
	press(m, "backspace", "left", "left", "X")
	if got := screen(t, m)[11]; got != "> hey Xyo" {
		t.Fatalf("after editing: %q", got)
	}
	// The newest line sits right above the status line and the input.
	if !strings.Contains(lines[len(lines)-3], "from yesterday?") || !strings.Contains(lines[len(lines)-2], "Enter send") {
		t.Fatalf("bottom of the screen:\n%s", strings.Join(lines, "\n"))
	}
}

func TestChatViewSendFailRetry(t *testing.T) {
	m, b := newTestChat(t, 100, 12)
	b.fail = errors.New("connection refused")
	typeText(m, "first try")
	cmd := press(m, "enter")
	if got := screen(t, m)[11]; got != "> " {
		t.Fatalf("the input was not cleared: %q", got)
	}
	wantLine(t, m, "10:00 alice (you): first try  · sending…")
	drain(m, cmd)
	wantLine(t, m, "10:00 alice (you): first try  · failed: connection refused (press Ctrl+R to retry)")
	if !strings.Contains(screen(t, m)[10], "Ctrl+R retry failed messages") {
		t.Fatalf("status line %q", screen(t, m)[10])
	}
	// Something arrives after the failure; the retry goes to the end.
	m.Update(chatReceivedMsg{msgAt(m, 5, "bob", "are you there?", 2)})
	b.fail = nil
	m.now = func() time.Time { return testNow.Add(3 * time.Minute) }
	cmd = press(m, "ctrl+r")
	wantLine(t, m, "10:03 alice (you): first try  · sending…")
	noLine(t, m, "failed")
	drain(m, cmd)
	lines := screen(t, m)
	wantLine(t, m, "10:00 alice (you): first try  · sent") // the server's time
	if i, j := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "are you there") }),
		slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "first try") }); i < 0 || j < i {
		t.Fatalf("the retried message is not after the later one:\n%s", strings.Join(lines, "\n"))
	}
	if !slices.Equal(b.sent, []string{"first try"}) {
		t.Fatalf("sent %q", b.sent)
	}
	// The retry carried the first attempt's client id: stored at most once.
	if len(b.ids) != 2 || b.ids[0] != b.ids[1] || len(b.ids[0]) < 8 {
		t.Fatalf("client ids of the attempts: %q", b.ids)
	}
	// Ctrl+R with nothing failed does nothing.
	if cmd := press(m, "ctrl+r"); drain(m, cmd) || len(b.sent) != 1 {
		t.Fatal("ctrl+r resent a sent message")
	}
}

// Messages typed quickly are sent one at a time, in order.
func TestChatViewSendOrder(t *testing.T) {
	m, b := newTestChat(t, 60, 12)
	typeText(m, "one")
	c1 := press(m, "enter")
	typeText(m, "two")
	if c2 := press(m, "enter"); drain(m, c2) {
		t.Fatal("quit")
	}
	if len(b.sent) != 0 {
		t.Fatalf("the second message went before the first finished: %q", b.sent)
	}
	wantLine(t, m, "10:00 alice (you): two  · sending…")
	drain(m, c1) // the first finishes and starts the second
	if !slices.Equal(b.sent, []string{"one", "two"}) {
		t.Fatalf("sent %q", b.sent)
	}
	wantLine(t, m, "10:00 alice (you): one  · sent")
	wantLine(t, m, "10:00 alice (you): two  · sent")
}

func TestChatViewLiveFailuresWarnings(t *testing.T) {
	m, _ := newTestChat(t, 110, 14)
	m.addMessage(msgAt(m, 1, "bob", "history", 0))
	typeText(m, "half typed")
	m.Update(chatReceivedMsg{msgAt(m, 2, "bob", "live one", 1)})
	other := msgAt(m, 3, "carol", "elsewhere", 1)
	other.Conversation = protocol.NewConversationID()
	m.Update(chatReceivedMsg{other})
	m.Update(chatUndecryptableMsg{&client.DecryptError{Conversation: m.conv, Seq: 7, Reason: "no_session", Err: errors.New("x")}})
	m.Update(chatUndecryptableMsg{&client.DecryptError{Conversation: other.Conversation, Seq: 9, Reason: "bad_signature", Err: errors.New("x")}})
	bob := protocol.UserID{1, 2, 3}
	// The chain's warning (no name) and the contact's (named) are one.
	m.Update(chatWarningsMsg{{Kind: client.WarnIdentityChanged, User: bob, Conversation: m.conv}, {Kind: client.WarnIdentityChanged, User: bob, Username: "bob"}})
	m.Update(chatWarningsMsg{{Kind: client.WarnIdentityChanged, User: bob}})

	lines := screen(t, m)
	wantLine(t, m, "10:01 bob: live one")
	noLine(t, m, "elsewhere")
	wantLine(t, m, "! message 7 could not be decrypted: no_session")
	wantLine(t, m, fmt.Sprintf("! message 9 in conversation %s could not be decrypted: bad_signature", other.Conversation.String()[:8]))
	warning := "!! WARNING: the identity key of bob changed; compare safety numbers (/safety bob) before trusting it"
	wantLine(t, m, warning)
	// The warning also stays under the header, whatever is scrolled.
	if strings.TrimRight(lines[1], " ") != "!! WARNING: the identity key of bob changed; check /safety bob" {
		t.Fatalf("no banner under the header:\n%s", strings.Join(lines, "\n"))
	}
	// Live messages did not touch the input line.
	if got := lines[len(lines)-1]; got != "> half typed" {
		t.Fatalf("input line %q", got)
	}
	if n := strings.Count(strings.Join(lines, "\n"), "WARNING"); n != 2 {
		t.Fatalf("%d warnings on the screen, want the line and the banner:\n%s", n, strings.Join(lines, "\n"))
	}
	// The warning and the failures are styled to stand out.
	if raw := m.View().Content; !strings.Contains(raw, "\x1b[1;97;41m!! WARNING") || !strings.Contains(raw, "\x1b[31m! message 7") {
		t.Fatalf("warning or failure not highlighted:\n%q", raw)
	}
}

func TestChatViewScroll(t *testing.T) {
	m, _ := newTestChat(t, 40, 10) // header, rule, 6 history lines, status, input
	for i := 1; i <= 20; i++ {
		m.addMessage(msgAt(m, uint64(i), "bob", fmt.Sprintf("message %d", i), i))
	}
	typeText(m, "draft")
	lines := screen(t, m)
	if !hasLine(lines, "10:20 bob: message 20") || hasLine(lines, "10:14 bob: message 14") {
		t.Fatalf("not at the bottom:\n%s", strings.Join(lines, "\n"))
	}
	press(m, "pgup") // a page is 5 lines
	wantLine(t, m, "10:10 bob: message 10")
	wantLine(t, m, "10:15 bob: message 15")
	noLine(t, m, "message 16")
	if got := screen(t, m)[8]; !strings.Contains(got, "5 more lines below") {
		t.Fatalf("status %q", got)
	}
	// A live message while scrolled back does not move the pane.
	m.Update(chatReceivedMsg{msgAt(m, 21, "bob", "message 21", 21)})
	wantLine(t, m, "10:10 bob: message 10")
	noLine(t, m, "message 16")
	if got := screen(t, m)[8]; !strings.Contains(got, "6 more lines below") {
		t.Fatalf("status %q", got)
	}
	press(m, "pgup", "pgup", "pgup", "pgup") // past the top: stops there
	wantLine(t, m, "10:01 bob: message 1")
	if lines := screen(t, m); !strings.Contains(lines[2], "message 1") {
		t.Fatalf("the oldest message is not at the top:\n%s", strings.Join(lines, "\n"))
	}
	for range 10 {
		press(m, "pgdown")
	}
	wantLine(t, m, "10:21 bob: message 21")
	if got := screen(t, m)[9]; got != "> draft" {
		t.Fatalf("input %q", got)
	}
	// Sending jumps back to the newest messages.
	press(m, "pgup")
	typeText(m, "!")
	press(m, "enter")
	wantLine(t, m, "10:00 alice (you): draft!  · sending…")
}

func TestChatViewWrapAndResize(t *testing.T) {
	m, _ := newTestChat(t, 30, 10)
	m.addMessage(msgAt(m, 1, "bob", strings.Repeat("word ", 12)+"end", 0))
	lines := screen(t, m) // screen checks that no line is wider than 30
	if !hasLine(lines, "10:00 bob: word word word word") || !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "end") }) {
		t.Fatalf("not wrapped:\n%s", strings.Join(lines, "\n"))
	}
	m.Update(tea.WindowSizeMsg{Width: 100, Height: 5})
	wantLine(t, m, "10:00 bob: "+strings.Repeat("word ", 12)+"end")
	// A long input scrolls sideways and keeps the cursor on screen.
	m.Update(tea.WindowSizeMsg{Width: 20, Height: 6})
	typeText(m, "abcdefghijklmnopqrstuvwxyz")
	in := screen(t, m)[5]
	if !strings.HasSuffix(in, "xyz") || !strings.HasPrefix(in, "> ") {
		t.Fatalf("input %q", in)
	}
	if c := m.View().Cursor; c.X >= 20 {
		t.Fatalf("cursor at %d", c.X)
	}
}

func TestChatViewCommands(t *testing.T) {
	m, b := newTestChat(t, 80, 12)
	typeText(m, "/members")
	drain(m, press(m, "enter"))
	wantLine(t, m, "-- members: alice, bob")
	typeText(m, "/add carol")
	drain(m, press(m, "enter"))
	wantLine(t, m, "-- added carol")
	if !strings.Contains(screen(t, m)[0], "alice, bob, carol") {
		t.Fatalf("header not refreshed: %q", screen(t, m)[0])
	}
	typeText(m, "/remove bob")
	drain(m, press(m, "enter"))
	wantLine(t, m, "! not an admin")
	typeText(m, "/safety bob")
	drain(m, press(m, "enter"))
	wantLine(t, m, "-- safety number with bob: 12345 67890")
	typeText(m, "/add")
	drain(m, press(m, "enter"))
	wantLine(t, m, "! usage: /add USER")
	typeText(m, "/nope")
	drain(m, press(m, "enter"))
	wantLine(t, m, "! unknown command /nope (try /quit, /members, /add, /remove, /safety)")
	if len(b.sent) != 0 {
		t.Fatalf("a command was sent as a message: %q", b.sent)
	}
	typeText(m, "/quit")
	if !drain(m, press(m, "enter")) {
		t.Fatal("/quit did not quit")
	}
	for _, k := range []string{"esc", "ctrl+c"} {
		if !drain(m, press(m, k)) {
			t.Fatalf("%s did not quit", k)
		}
	}
}

// Leaving waits for the messages still being sent, unless asked twice.
func TestChatViewQuitWaitsForSends(t *testing.T) {
	m, b := newTestChat(t, 80, 12)
	typeText(m, "last words")
	send := press(m, "enter")
	if drain(m, press(m, "esc")) {
		t.Fatal("left with a message being sent")
	}
	if got := screen(t, m)[10]; !strings.Contains(got, "waiting for 1 message(s) to be sent") {
		t.Fatalf("status %q", got)
	}
	if !drain(m, send) {
		t.Fatal("did not leave once the message was sent")
	}
	if !slices.Equal(b.sent, []string{"last words"}) {
		t.Fatalf("sent %q", b.sent)
	}

	m, _ = newTestChat(t, 80, 12)
	typeText(m, "never mind")
	press(m, "enter")
	press(m, "esc")
	if !drain(m, press(m, "esc")) {
		t.Fatal("a second Esc did not leave")
	}
}

// Text from the network cannot drive the terminal, nor start a line that
// passes for another message: not with a line feed, nor by filling the line
// so that wrapping puts the rest at column 0.
func TestChatViewCleansText(t *testing.T) {
	m, _ := newTestChat(t, 80, 12)
	m.addMessage(msgAt(m, 1, "bob\x1b[2J", "evil\x1b]0;pwned\x07 \u202eright to left\r\n10:01 carol: second line", 0))
	raw := m.View().Content
	for _, bad := range []string{"\x1b[2J", "\x1b]0;", "\x07", "\u202e", "\r"} {
		if strings.Contains(raw, bad) {
			t.Fatalf("the view contains %q:\n%q", bad, raw)
		}
	}
	wantLine(t, m, `10:00 ?"bob\x1b[2J": evil\x1b]0;pwned\x07 \u{202e}right to left\x0d`)
	wantLine(t, m, "      10:01 carol: second line")
	// Spaces up to the edge: the rest goes on a line under the text.
	m.addMessage(msgAt(m, 2, "bob", "look"+strings.Repeat(" ", 70)+"10:02 carol: third line", 2))
	wantLine(t, m, "10:02 bob: look")
	wantLine(t, m, "      10:02 carol: third line")
	// So does a word longer than the line.
	m.addMessage(msgAt(m, 3, "bob", strings.Repeat("x", 150)+"10:03 carol: fourth", 3))
	wantLine(t, m, "10:03 bob:")
	wantLine(t, m, viewCont+strings.Repeat("x", 74))
	for _, l := range screen(t, m) {
		if strings.Contains(l, "carol") && !strings.HasPrefix(l, viewCont) {
			t.Fatalf("a line passes for carol's: %q", l)
		}
	}
	// Pasted text is one line, without controls or bidirectional overrides.
	m.Update(tea.PasteMsg{Content: "a\nb\tc\x1bd\u202ee\u0085f"})
	if got := screen(t, m)[11]; got != "> a b cdef" {
		t.Fatalf("pasted: %q", got)
	}
}

// The line mode stays for scripts: a pipe on stdin is not a terminal.
func TestChatLineModeWithPipe(t *testing.T) {
	base := startTestServer(t)
	cli := func(stdin io.Reader, args ...string) (string, string, error) { return runCLI(t, stdin, args...) }
	homes := map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		homes[u] = filepath.Join(t.TempDir(), u)
		if _, errs, err := cli(strings.NewReader("password of "+u+"\n"), "--home", homes[u], "--server", base, "register", u, "--password-stdin"); err != nil {
			t.Fatalf("register %s: %v\n%s", u, err, errs)
		}
	}
	conv, _, err := cli(nil, "--home", homes["alice"], "new", "bob")
	if err != nil {
		t.Fatal(err)
	}
	conv = strings.TrimSpace(conv)
	if _, _, err := cli(nil, "--home", homes["bob"], "send", conv, "hi alice"); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.WriteString(w, "hello bob\n/members\n/nope\n/quit\n")
		w.Close()
	}()
	out, errs, err := cli(r, "--home", homes["alice"], "chat", conv[:8])
	r.Close()
	if err != nil {
		t.Fatalf("chat: %v\n%s", err, errs)
	}
	p := "[" + conv[:8] + "] "
	if out != p+"bob: hi alice\n"+p+"alice: hello bob\n" {
		t.Fatalf("chat printed %q", out)
	}
	wantErr := "-- type a message and press Enter; /quit to leave --\n" +
		"members: alice, bob\n" +
		"sandi: unknown command /nope (try /quit, /members, /add, /remove, /safety)\n"
	if errs != wantErr {
		t.Fatalf("chat stderr %q", errs)
	}
}

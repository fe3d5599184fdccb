package main

// The full-screen view of `sandi chat CONV`, used when standard input and
// output are terminals. The model (chatModel) holds all the logic and talks
// to the client only through chatBackend and tea.Cmds, so chatview_test.go
// drives it without a terminal or a server.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// chatBackend is what the chat needs of the client; *client.Client has it.
type chatBackend interface {
	SendWithID(ctx context.Context, conv protocol.ConversationID, clientID, text string) (client.Message, error)
	Conversations(ctx context.Context) ([]client.Conversation, error)
	AddMembers(ctx context.Context, conv protocol.ConversationID, users ...string) error
	RemoveMembers(ctx context.Context, conv protocol.ConversationID, users ...string) error
	SafetyNumber(ctx context.Context, user string) (string, []byte, error)
}

// warningPoll is how often the view asks the client for new warnings
// (identity changes arrive as events that produce no message).
const warningPoll = 2 * time.Second

// chatTUI runs the full-screen view until the user leaves. Live messages
// come from client.Listen in a goroutine, warnings from a poller; both hand
// them to the program with Program.Send. Sends run as tea.Cmds.
func chatTUI(ctx context.Context, e *cli, id protocol.ConversationID, items []client.Item, failures []*client.DecryptError, in, out *os.File) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := newChatModel(ctx, e.c, id, e.c.Username())
	if convs, err := e.c.Conversations(ctx); err != nil {
		m.addLine(entryError, "could not list the members: "+err.Error())
	} else {
		for _, cv := range convs {
			if cv.ID == id {
				m.setConversation(cv)
			}
		}
	}
	for _, it := range items {
		if it.Line != nil {
			m.addTimelineLine(*it.Line)
		} else {
			m.addMessage(*it.Message)
		}
	}
	for _, f := range failures {
		m.addFailure(f)
	}
	e.c.MarkRead(id)

	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		// onMessage runs with the client locked: it only hands over.
		e.c.OnLine(func(l client.Line) { p.Send(chatTimelineMsg{l}) })
		e.c.OnReceipt(func(r client.Message) { p.Send(chatReceiptMsg{r.Conversation}) })
		e.c.OnTyping(func(t client.Typing) { p.Send(chatTypingMsg{t}) })
		err := e.c.Listen(ctx,
			func(msg client.Message) { p.Send(chatReceivedMsg{msg}) },
			func(f *client.DecryptError) { p.Send(chatUndecryptableMsg{f}) })
		if ctx.Err() == nil {
			p.Send(chatListenErrMsg{err})
		}
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(warningPoll)
		defer t.Stop()
		for {
			if ws, err := e.c.Warnings(); err == nil && len(ws) > 0 {
				p.Send(chatWarningsMsg(ws))
			}
			p.Send(chatExpireMsg{})
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	final, err := p.Run()
	cancel()
	wg.Wait()
	e.c.MarkRead(id) // what arrived while the view was open was seen
	// and is told: a round of receipts the view started may have been
	// cut short by its end.
	e.acknowledge(parent, id)
	if fm, ok := final.(*chatModel); ok && fm.fatal != nil {
		return fm.fatal
	}
	if err != nil && (errors.Is(err, tea.ErrInterrupted) || parent.Err() != nil) {
		return nil // Ctrl+C as a signal, or SIGTERM: leaving is not an error
	}
	return err
}

// Messages the model receives besides key presses and window sizes.
type (
	chatReceivedMsg      struct{ m client.Message }       // a live message
	chatTimelineMsg      struct{ l client.Line }          // a live timeline line
	chatExpireMsg        struct{}                         // time to drop the messages that disappeared
	chatUndecryptableMsg struct{ f *client.DecryptError } // a live decrypt failure
	chatWarningsMsg      []client.Warning                 // new warnings
	chatListenErrMsg     struct{ err error }              // Listen gave up
	chatSentMsg          struct {                         // a send finished
		e   *chatEntry
		m   client.Message
		err error
	}
	chatCommandMsg struct { // a slash command finished
		line, out string
		err       error
	}
	chatConvMsg struct { // the conversation's members were fetched
		cv       client.Conversation
		found    bool
		announce bool // /members: print them
		err      error
	}
)

type entryKind int

const (
	entryMessage entryKind = iota
	entryTitle             // someone set the title
	entryFailure           // a message that could not be decrypted
	entryWarning           // an identity change
	entryInfo              // output of a command
	entryError             // a command failed
)

// sendState is the state of a message of this device.
type sendState int

const (
	stateNone    sendState = iota // received, or of another device of this account
	stateSending                  // queued or in flight
	stateSent
	stateFailed
)

// chatEntry is one item of the history pane.
type chatEntry struct {
	kind   entryKind
	sender string
	at     time.Time
	text   string
	own    bool // this account's
	state  sendState
	err    string        // why the send failed
	id     string        // client message id: kept across retries so a message is stored once
	atts   []string      // the message's attachments, each a line made safe by attachmentLine
	act    entryActions  // its reply, reactions, edit and delete (actions.go)
	rcpt   entryReceipts // who holds and read it (receipts.go)
	expiry time.Time     // when a disappearing message goes (zero: never)

	width int      // lines were wrapped for this width
	lines []string // rendered, styled
}

func (e *chatEntry) changed() { e.lines = nil }

// chatModel is the state of the chat view.
type chatModel struct {
	ctx     context.Context
	b       chatBackend
	conv    protocol.ConversationID
	me      string
	title   string
	members []string

	width, height int
	entries       []*chatEntry
	seen          map[uint64]bool // seqs of the messages shown
	queue         []*chatEntry    // own messages to send, oldest first; queue[0] is in flight when sending
	sending       bool
	input         []rune
	cursor        int      // in input, in runes
	scroll        int      // history lines hidden below the pane; 0 follows new messages
	banner        []string // warnings kept on screen under the header (shown as is)
	warned        map[string]bool
	names         map[protocol.UserID]string // usernames learnt from warnings
	quitting      bool                       // leave once the queue is empty
	ack           ackState                   // receipts being sent (receipts.go)
	typing        typingState                // typing.go
	fatal         error                      // returned by chatTUI

	loc *time.Location
	now func() time.Time
}

func newChatModel(ctx context.Context, b chatBackend, conv protocol.ConversationID, me string) *chatModel {
	return &chatModel{ctx: ctx, b: b, conv: conv, me: me, seen: map[uint64]bool{},
		warned: map[string]bool{}, names: map[protocol.UserID]string{}, loc: time.Local, now: time.Now}
}

func (m *chatModel) Init() tea.Cmd { return m.acknowledge() }

func (m *chatModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.clampScroll()
	case tea.KeyPressMsg:
		cmd := m.key(msg)
		return m, tea.Batch(cmd, m.typed())
	case tea.PasteMsg:
		m.insert(msg.Content)
		return m, m.typed()
	case chatTypingMsg:
		return m, m.typingCame(msg.t)
	case chatTypingTickMsg: // the view reads the time when it draws
	case chatReceivedMsg:
		if msg.m.Conversation == m.conv && isAction(msg.m) {
			return m, m.refreshActions()
		} else if msg.m.Conversation == m.conv {
			m.addMessage(msg.m)
			m.stoppedTyping(msg.m.Sender)
			return m, m.acknowledge()
		}
	case chatReceiptMsg:
		if msg.conv == m.conv {
			return m, m.refreshActions()
		}
	case chatAckedMsg:
		return m, m.acked()
	case chatActionsMsg:
		m.applyActions(msg.hist)
		m.applyReceipts(msg.hist)
	case chatTimelineMsg:
		if msg.l.Conversation == m.conv {
			m.addTimelineLine(msg.l)
		}
	case chatExpireMsg:
		m.dropExpired(m.now())
	case chatUndecryptableMsg:
		m.addFailure(msg.f)
	case chatWarningsMsg:
		m.addWarnings(msg)
	case chatSentMsg:
		return m, m.sent(msg)
	case chatCommandMsg:
		return m, m.commandDone(msg)
	case chatConvMsg:
		m.convDone(msg)
	case chatListenErrMsg:
		m.fatal = msg.err
		return m, tea.Quit
	}
	return m, nil
}

func (m *chatModel) key(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "ctrl+c", "esc":
		return m.quit()
	case "enter":
		return m.submit()
	case "ctrl+r":
		return m.retry()
	case "pgup":
		m.scrollBy(m.page())
	case "pgdown":
		m.scrollBy(-m.page())
	case "up":
		m.scrollBy(1)
	case "down":
		m.scrollBy(-1)
	case "ctrl+home":
		m.scrollBy(1 << 30)
	case "ctrl+end":
		m.scroll = 0
	case "left", "ctrl+b":
		m.cursor = max(0, m.cursor-1)
	case "right", "ctrl+f":
		m.cursor = min(len(m.input), m.cursor+1)
	case "home", "ctrl+a":
		m.cursor = 0
	case "end", "ctrl+e":
		m.cursor = len(m.input)
	case "backspace", "ctrl+h":
		if m.cursor > 0 {
			m.input = slices.Delete(m.input, m.cursor-1, m.cursor)
			m.cursor--
		}
	case "delete", "ctrl+d":
		if m.cursor < len(m.input) {
			m.input = slices.Delete(m.input, m.cursor, m.cursor+1)
		}
	case "ctrl+u":
		m.input, m.cursor = slices.Delete(m.input, 0, m.cursor), 0
	case "ctrl+k":
		m.input = m.input[:m.cursor]
	case "ctrl+w":
		i := m.cursor
		for i > 0 && m.input[i-1] == ' ' {
			i--
		}
		for i > 0 && m.input[i-1] != ' ' {
			i--
		}
		m.input, m.cursor = slices.Delete(m.input, i, m.cursor), i
	default:
		if k.Text != "" {
			m.insert(k.Text)
		}
	}
	return nil
}

// insert types s at the cursor; line breaks and tabs become spaces and
// the other characters that untrusted would escape (controls, bidirectional
// and other format characters) are dropped: the input is one line, shown
// as typed.
func (m *chatModel) insert(s string) {
	s = strings.ReplaceAll(s, "\r\n", " ")
	rs := []rune(strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < 0x20, r == 0x7f, escapedRune(r):
			return -1
		}
		return r
	}, s))
	m.input = slices.Insert(m.input, m.cursor, rs...)
	m.cursor += len(rs)
}

// submit handles Enter: a slash command or a message to send.
func (m *chatModel) submit() tea.Cmd {
	line := strings.TrimSpace(string(m.input))
	m.input, m.cursor = nil, 0
	if line == "" {
		return nil
	}
	m.scroll = 0
	if strings.HasPrefix(line, "/") {
		return m.command(line)
	}
	e := &chatEntry{kind: entryMessage, sender: m.me, at: m.now(), text: line, own: true, state: stateSending, id: client.NewClientID()}
	m.add(e)
	m.queue = append(m.queue, e)
	return m.sendNext()
}

// sendNext starts sending the oldest queued message unless one is in
// flight: one at a time, so they arrive in the order they were typed.
func (m *chatModel) sendNext() tea.Cmd {
	if m.sending || len(m.queue) == 0 {
		return nil
	}
	m.sending = true
	e := m.queue[0]
	ctx, b, conv, text, id := m.ctx, m.b, m.conv, e.text, e.id
	return func() tea.Msg {
		sent, err := b.SendWithID(ctx, conv, id, text)
		return chatSentMsg{e: e, m: sent, err: err}
	}
}

func (m *chatModel) sent(msg chatSentMsg) tea.Cmd {
	m.sending = false
	if i := slices.Index(m.queue, msg.e); i >= 0 {
		m.queue = slices.Delete(m.queue, i, i+1)
	}
	e := msg.e
	if msg.err != nil && msg.m.Seq == 0 {
		e.state, e.err = stateFailed, oneLine(msg.err.Error())
	} else {
		e.state, e.act.ref = stateSent, msg.m.Ref
		m.seen[msg.m.Seq] = true
		if t := msgTime(msg.m); !t.IsZero() {
			e.at = t
		}
		if msg.err != nil { // stored on the server, not in the local history
			m.addLine(entryError, "message sent, but not saved on this device: "+msg.err.Error())
		}
	}
	e.changed()
	if m.quitting && len(m.queue) == 0 {
		return tea.Quit
	}
	return m.sendNext()
}

// retry sends the failed messages again, in their order, as new messages
// at the end of the history.
func (m *chatModel) retry() tea.Cmd {
	var failed []*chatEntry
	m.entries = slices.DeleteFunc(m.entries, func(e *chatEntry) bool {
		if e.kind == entryMessage && e.state == stateFailed {
			failed = append(failed, e)
			return true
		}
		return false
	})
	if len(failed) == 0 {
		return nil
	}
	m.scroll = 0
	for _, e := range failed {
		e.state, e.err, e.at = stateSending, "", m.now()
		e.changed()
		m.entries = append(m.entries, e)
		m.queue = append(m.queue, e)
	}
	return m.sendNext()
}

// quit leaves, after the messages still being sent unless asked twice.
func (m *chatModel) quit() tea.Cmd {
	if m.quitting || len(m.queue) == 0 {
		return tea.Quit
	}
	m.quitting = true
	return nil
}

func (m *chatModel) command(line string) tea.Cmd {
	switch strings.Fields(line)[0] {
	case "/quit", "/q":
		return m.quit()
	case "/members":
		return m.fetchConversation(true)
	}
	ctx, b, conv := m.ctx, m.b, m.conv
	return func() tea.Msg {
		out, err := chatCommand(ctx, b, conv, line)
		return chatCommandMsg{line: line, out: out, err: err}
	}
}

func (m *chatModel) commandDone(msg chatCommandMsg) tea.Cmd {
	if msg.err != nil {
		m.addLine(entryError, msg.err.Error())
		return nil
	}
	f := strings.Fields(msg.line)
	out := msg.out // shown as is (chatCommand)
	switch f[0] {
	case "/add":
		out = "added " + untrusted(strings.Join(f[1:], ", "))
	case "/remove":
		out = "removed " + untrusted(strings.Join(f[1:], ", "))
	}
	if out != "" {
		m.addShown(entryInfo, out)
	}
	if f[0] == "/add" || f[0] == "/remove" {
		return m.fetchConversation(false) // the header shows the members
	}
	return nil
}

// fetchConversation reads the conversation's title and members.
func (m *chatModel) fetchConversation(announce bool) tea.Cmd {
	ctx, b, conv := m.ctx, m.b, m.conv
	return func() tea.Msg {
		convs, err := b.Conversations(ctx)
		msg := chatConvMsg{announce: announce, err: err}
		for _, cv := range convs {
			if cv.ID == conv {
				msg.cv, msg.found = cv, true
			}
		}
		return msg
	}
}

func (m *chatModel) convDone(msg chatConvMsg) {
	switch {
	case msg.err != nil:
		if msg.announce {
			m.addLine(entryError, msg.err.Error())
		}
	case !msg.found:
		m.members = nil
		m.addLine(entryInfo, "you are not a member of this conversation any more")
	default:
		m.setConversation(msg.cv)
		if msg.announce {
			m.addShown(entryInfo, "members: "+untrustedList(msg.cv.Members))
		}
	}
}

func (m *chatModel) setConversation(cv client.Conversation) {
	if cv.Title != "" {
		m.title = cv.Title
	}
	m.members = cv.Members
}

// msgTime is when the server stored a message (the sender's clock before
// that is known).
func msgTime(msg client.Message) time.Time {
	switch {
	case msg.ReceivedAt != 0:
		return time.UnixMilli(msg.ReceivedAt)
	case msg.SentAt != 0:
		return time.UnixMilli(msg.SentAt)
	}
	return time.Time{}
}

// addMessage shows a message of the history or a live one.
func (m *chatModel) addMessage(msg client.Message) {
	if msg.Seq != 0 {
		if m.seen[msg.Seq] {
			return
		}
		m.seen[msg.Seq] = true
	}
	e := &chatEntry{kind: entryMessage, sender: msg.Sender, at: msgTime(msg), text: msg.Text,
		own: msg.Own || m.me != "" && msg.Sender == m.me}
	if msg.Own {
		e.state = stateSent
	}
	if msg.ExpiresAt != 0 {
		e.expiry = time.UnixMilli(msg.ExpiresAt)
	}
	for _, a := range msg.Attachments {
		e.atts = append(e.atts, attachmentLine(a))
	}
	if msg.Type == client.ContentTitle {
		e.kind = entryTitle
		m.title = msg.Text
	}
	m.setActions(e, msg)
	e.rcpt = entryReceipts{readBy: msg.ReadBy, deliveredTo: msg.DeliveredTo}
	m.add(e)
}

func (m *chatModel) addFailure(f *client.DecryptError) {
	text := fmt.Sprintf("message %d could not be decrypted: %s", f.Seq, f.Reason)
	if f.Conversation != m.conv {
		text = fmt.Sprintf("message %d in conversation %s could not be decrypted: %s", f.Seq, f.Conversation.String()[:8], f.Reason)
	}
	m.addLine(entryFailure, text)
}

// addWarnings shows warnings, each (kind, user) once: the client records an
// identity change both when it sees the user's new key and when a
// conversation's chain says so, the latter without the username.
func (m *chatModel) addWarnings(ws []client.Warning) {
	for _, w := range ws {
		if w.Username != "" {
			m.names[w.User] = w.Username
		}
	}
	for _, w := range ws {
		key := w.Kind + " " + w.User.String()
		if m.warned[key] {
			continue
		}
		m.warned[key] = true
		who := w.User.String()
		if name := m.names[w.User]; name != "" {
			who = untrustedName(name)
		}
		text := fmt.Sprintf("WARNING: %s about %s", w.Kind, who)
		short := text
		if w.Kind == client.WarnIdentityChanged {
			text = fmt.Sprintf("WARNING: the identity key of %s changed; compare safety numbers (/safety %s) before trusting it", who, who)
			short = fmt.Sprintf("WARNING: the identity key of %s changed; check /safety %s", who, who)
		}
		m.addShown(entryWarning, text)
		if !slices.Contains(m.banner, short) {
			m.banner = append(m.banner, short)
		}
	}
	m.clampScroll()
}

// addTimelineLine adds a line of the conversation's timeline (a member
// added, a new title, a new timer...), its names made safe by lineText.
func (m *chatModel) addTimelineLine(l client.Line) {
	m.add(&chatEntry{kind: entryInfo, text: lineText(l), at: time.UnixMilli(l.Time)})
}

// dropExpired removes the messages whose disappearing timer has run out
// (the client erases them from its storage on its own).
func (m *chatModel) dropExpired(now time.Time) {
	n := len(m.entries)
	m.entries = slices.DeleteFunc(m.entries, func(e *chatEntry) bool { return !e.expiry.IsZero() && !now.Before(e.expiry) })
	if len(m.entries) != n {
		m.clampScroll()
	}
}

// addLine adds a line of the program's that may hold text from the network:
// all of it is shown through untrusted.
func (m *chatModel) addLine(kind entryKind, text string) { m.addShown(kind, untrusted(text)) }

// addShown adds a line already safe to show: the program's own text, and
// what came from the network only through untrusted or untrustedName.
func (m *chatModel) addShown(kind entryKind, shown string) {
	m.add(&chatEntry{kind: kind, text: shown, at: m.now()})
}

// add appends an entry; a scrolled-back pane stays where it is.
func (m *chatModel) add(e *chatEntry) {
	m.entries = append(m.entries, e)
	if m.scroll > 0 {
		m.scroll += len(m.entryLines(e, m.size().w))
	}
}

// Layout.

type size struct{ w, h int }

// size is the window's, or 80x24 before the first WindowSizeMsg.
func (m *chatModel) size() size {
	if m.width <= 0 || m.height <= 0 {
		return size{80, 24}
	}
	return size{m.width, m.height}
}

const bannerMax = 3 // warnings shown under the header at most

// topLines are the header, the warning banner and a rule.
func (m *chatModel) topLines(w int) []string {
	title := m.title
	if title == "" {
		title = "conversation " + m.conv.String()[:8]
	}
	parts := []string{"sandi", untrusted(title)}
	if len(m.members) > 0 {
		parts = append(parts, untrustedList(m.members))
	}
	parts = append(parts, "you: "+untrustedName(m.me))
	top := []string{style(sgrHeader, pad(ansi.Truncate(" "+strings.Join(parts, " · ")+" ", w, "…"), w))}
	banner := m.banner
	if len(banner) > bannerMax {
		banner = append(slices.Clone(banner[len(banner)-bannerMax+1:]), fmt.Sprintf("(%d earlier warnings above)", len(m.banner)-bannerMax+1))
	}
	for _, b := range banner {
		top = append(top, style(sgrWarning, pad(ansi.Truncate("!! "+b, w, "…"), w)))
	}
	return append(top, style(sgrDim, strings.Repeat("─", w)))
}

// historyHeight is the number of lines of the history pane.
func (m *chatModel) historyHeight() int {
	s := m.size()
	return max(1, s.h-len(m.topLines(s.w))-2)
}

func (m *chatModel) page() int { return max(1, m.historyHeight()-1) }

func (m *chatModel) historyLines(w int) []string {
	var out []string
	for _, e := range m.entries {
		out = append(out, m.entryLines(e, w)...)
	}
	return out
}

func (m *chatModel) maxScroll() int {
	return max(0, len(m.historyLines(m.size().w))-m.historyHeight())
}

func (m *chatModel) scrollBy(n int) {
	m.scroll += n
	m.clampScroll()
}

func (m *chatModel) clampScroll() {
	m.scroll = max(0, min(m.scroll, m.maxScroll()))
}

// Rendering.

const (
	sgrHeader  = "1;7"     // bold, reverse
	sgrWarning = "1;97;41" // bold white on red
	sgrError   = "31"      // red
	sgrDim     = "2"
	sgrOwn     = "1;32" // bold green
	sgrName    = "1"
)

func style(sgr, s string) string { return "\x1b[" + sgr + "m" + s + "\x1b[0m" }

func pad(s string, w int) string { return s + strings.Repeat(" ", max(0, w-ansi.StringWidth(s))) }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// stamp is a message's time: the time of day, with the date when it is not
// today.
func (m *chatModel) stamp(t time.Time) string {
	if t.IsZero() {
		return "--:--"
	}
	t, now := t.In(m.loc), m.now().In(m.loc)
	if t.Year() == now.Year() && t.YearDay() == now.YearDay() {
		return t.Format("15:04")
	}
	return t.Format("Jan 2 15:04")
}

// viewCont starts every line of an entry after its first: a message's
// further lines and wrapped lines sit under its text, past the time, so
// that no text from the network can start a line at column 0.
const viewCont = "      "

// entryLines renders an entry wrapped to width w (cached). Text from the
// network goes through untrusted (safe.go); a message's lines are framed
// under its head.
func (m *chatModel) entryLines(e *chatEntry, w int) []string {
	if e.lines != nil && e.width == w {
		return e.lines
	}
	w = max(1, w)
	var text, sgr, name, head string
	switch e.kind {
	case entryMessage:
		name = untrustedName(e.sender)
		if e.own {
			name += " (you)"
		}
		body := e.text
		if e.own {
			switch e.state {
			case stateSending:
				body += "  · sending…"
			case stateSent:
				body += "  · " + chatReceiptMark(e.rcpt.readBy, e.rcpt.deliveredTo, len(m.members))
			case stateNone:
				if e.rcpt.readBy != nil || e.rcpt.deliveredTo != nil {
					body += "  · " + chatReceiptMark(e.rcpt.readBy, e.rcpt.deliveredTo, len(m.members))
				}
			case stateFailed:
				body += "  · failed: " + e.err + " (press Ctrl+R to retry)"
				sgr = sgrError
			}
		}
		if e.act.edited {
			name += " (edited)"
		}
		head = m.stamp(e.at) + " " + name + ":"
		if e.act.deleted {
			body = "[deleted]"
		}
		text = framed(head+" ", body, viewCont, w)
	case entryTitle:
		text, sgr = fmt.Sprintf(`%s * %s set the title to "%s"`, m.stamp(e.at), untrustedName(e.sender), untrusted(e.text)), sgrDim
	case entryFailure: // the other kinds hold text made safe by addLine or addShown
		text, sgr = "! "+e.text, sgrError
	case entryWarning:
		text, sgr = "!! "+e.text, sgrWarning
	case entryInfo:
		text, sgr = "-- "+e.text, sgrDim
	case entryError:
		text, sgr = "! "+e.text, sgrError
	}
	if e.kind != entryMessage {
		text = strings.Join(wrapHanging(text, w, viewCont), "\n")
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		switch {
		case sgr != "":
			lines[i] = style(sgr, l)
		case i == 0 && head != "":
			// The sender's name stands out; this account's in green.
			if rest, ok := strings.CutPrefix(l, head); ok {
				ns := sgrName
				if e.own {
					ns = sgrOwn
				}
				lines[i] = m.stamp(e.at) + " " + style(ns, name) + ":" + rest
			}
		}
	}
	// Attachment lines are styled, which no text of a message can be.
	for _, a := range e.atts {
		for _, l := range wrapHanging(viewCont+"+ "+a, w, viewCont+"  ") {
			lines = append(lines, style(sgrDim, l))
		}
	}
	lines = append(lines, e.act.styled(w)...)
	e.width, e.lines = w, lines
	return lines
}

// statusLine is the line above the input: what the keys do, or where the
// pane is scrolled, or that leaving waits for sends.
func (m *chatModel) statusLine(w int) string {
	var s string
	switch {
	case m.quitting:
		s = fmt.Sprintf("waiting for %d message(s) to be sent… Esc again to leave now", len(m.queue))
	case m.scroll > 0:
		s = fmt.Sprintf("↓ %d more lines below · PgDn to scroll down", m.scroll)
	default:
		s = "Enter send · PgUp/PgDn scroll · Esc leave · /members /add /remove /safety /quit"
		if tl := m.typingLine(); tl != "" {
			s = tl + " · " + s
		}
		for _, e := range m.entries {
			if e.kind == entryMessage && e.state == stateFailed {
				s = "Ctrl+R retry failed messages · " + s
				break
			}
		}
	}
	return style(sgrDim, ansi.Truncate(s, w, "…"))
}

const prompt = "> "

// inputLine is the prompt and the part of the input around the cursor,
// and the cursor's column.
func (m *chatModel) inputLine(w int) (string, int) {
	avail := max(1, w-len(prompt)-1) // room for the cursor after the text
	width := func(rs []rune) int { return ansi.StringWidth(string(rs)) }
	start := 0
	for start < m.cursor && width(m.input[start:m.cursor]) > avail {
		start++
	}
	end := start
	for end < len(m.input) && width(m.input[start:end+1]) <= avail {
		end++
	}
	return prompt + string(m.input[start:end]), len(prompt) + width(m.input[start:m.cursor])
}

// render lays the screen out: header, history, status, input; the cursor
// is in the input line.
func (m *chatModel) render() (content string, cursorX, cursorY int) {
	s := m.size()
	top := m.topLines(s.w)
	histH := s.h - len(top) - 2
	for histH < 1 && len(top) > 1 { // a tiny window: the history first
		top = top[:len(top)-1]
		histH++
	}
	histH = max(histH, 1)
	lines := m.historyLines(s.w)
	scroll := max(0, min(m.scroll, len(lines)-histH))
	end := len(lines) - scroll
	start := max(0, end-histH)
	screen := append([]string(nil), top...)
	for range histH - (end - start) { // the newest messages sit on the input
		screen = append(screen, "")
	}
	screen = append(screen, lines[start:end]...)
	screen = append(screen, m.statusLine(s.w))
	in, x := m.inputLine(s.w)
	screen = append(screen, in)
	return strings.Join(screen, "\n"), x, len(screen) - 1
}

func (m *chatModel) View() tea.View {
	content, x, y := m.render()
	v := tea.NewView(content)
	v.AltScreen = true
	v.Cursor = tea.NewCursor(x, y)
	title := m.title
	if title == "" {
		title = m.conv.String()[:8]
	}
	v.WindowTitle = "sandi: " + untrusted(title)
	return v
}

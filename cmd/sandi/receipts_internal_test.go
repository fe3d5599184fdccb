package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// receiptsBackend is fakeBackend with a history and receipts.
type receiptsBackend struct {
	*fakeBackend
	hist      []client.Message
	marked    int
	receipted int
	typing    []bool
}

func (f *receiptsBackend) History(conv protocol.ConversationID) ([]client.Message, error) {
	return slices.Clone(f.hist), nil
}

func (f *receiptsBackend) MarkRead(conv protocol.ConversationID) error { f.marked++; return nil }

func (f *receiptsBackend) SendReceipts(ctx context.Context, convs ...protocol.ConversationID) error {
	f.receipted++
	return nil
}

// The chat view shows a sent message as sent, then delivered, then read,
// as receipts come; messages that come while it acknowledges are
// acknowledged in one more round, not one each.
func TestChatViewReceipts(t *testing.T) {
	m, fb := newTestChat(t, 60, 12)
	b := &receiptsBackend{fakeBackend: fb}
	m.b = b
	own := msgAt(m, 1, "alice", "hello bob", 0)
	own.Own, own.Ref = true, "AAAAAAAAAAAAAAAA"
	m.addMessage(own)
	wantLine(t, m, "10:00 alice (you): hello bob  · sent")
	for _, c := range []struct {
		dlv, read []string
		want      string
	}{
		{[]string{"bob"}, nil, "10:00 alice (you): hello bob  · delivered"},
		{[]string{"bob"}, []string{"bob"}, "10:00 alice (you): hello bob  · read"},
	} {
		h := own
		h.DeliveredTo, h.ReadBy = c.dlv, c.read
		b.hist = []client.Message{h}
		_, cmd := m.Update(chatReceiptMsg{m.conv})
		drain(m, cmd)
		wantLine(t, m, c.want)
	}

	first := m.Init()
	for i := range 3 {
		_, cmd := m.Update(chatReceivedMsg{msgAt(m, uint64(2+i), "bob", "more", 1)})
		if cmd != nil {
			t.Fatalf("message %d while a round runs started another", i)
		}
	}
	drain(m, first)
	if b.marked != 2 || b.receipted != 2 {
		t.Fatalf("%d marks, %d rounds of receipts; want 2 of each (the first, and one for three messages)", b.marked, b.receipted)
	}
}

func (f *receiptsBackend) SendTyping(ctx context.Context, conv protocol.ConversationID, typing bool) error {
	f.typing = append(f.typing, typing)
	return nil
}

// The chat view tells the others it is typing once per client.TypingEvery
// while the input holds text and that it stopped when the text is sent;
// it shows "NAME is typing…" until the notice is stale, a stopped notice
// or a message of NAME comes.
func TestChatViewTyping(t *testing.T) {
	m, fb := newTestChat(t, 80, 12)
	b := &receiptsBackend{fakeBackend: fb}
	m.b = b
	drain(m, typeText(m, "hi"))
	drain(m, typeText(m, "!"))
	if !slices.Equal(b.typing, []bool{true}) {
		t.Fatalf("notices %v while typing, want one", b.typing)
	}
	now := testNow
	m.now = func() time.Time { return now }
	now = now.Add(client.TypingEvery * time.Millisecond)
	drain(m, typeText(m, "!"))
	drain(m, press(m, "enter"))
	if !slices.Equal(b.typing, []bool{true, true, false}) {
		t.Fatalf("notices %v, want typing again after %d ms and stopped on send", b.typing, client.TypingEvery)
	}

	bob := client.Typing{Conversation: m.conv, Username: "bob", Typing: true}
	m.Update(chatTypingMsg{bob})
	wantStatus := func(want string) {
		t.Helper()
		lines := screen(t, m)
		if got := lines[len(lines)-2]; !strings.HasPrefix(got, want) {
			t.Fatalf("status line %q, want it to start with %q", got, want)
		}
	}
	wantStatus("bob is typing… · Enter send")
	m.Update(chatTypingMsg{client.Typing{Conversation: m.conv, Username: "carol", Typing: true}})
	wantStatus("bob and carol are typing…")
	m.Update(chatReceivedMsg{msgAt(m, 7, "bob", "done", 1)})
	wantStatus("carol is typing…")
	now = now.Add(client.TypingShown * time.Millisecond)
	wantStatus("Enter send")
	m.Update(chatTypingMsg{bob})
	bob.Typing = false
	m.Update(chatTypingMsg{bob})
	wantStatus("Enter send")
}

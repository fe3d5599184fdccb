package main

import (
	"context"
	"slices"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// receiptsBackend is fakeBackend with a history and receipts.
type receiptsBackend struct {
	*fakeBackend
	hist      []client.Message
	marked    int
	receipted int
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

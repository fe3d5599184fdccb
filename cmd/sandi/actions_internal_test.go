package main

import (
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// historyFake adds the folded history to the chat view's test double.
type historyFake struct {
	*fakeBackend
	hist []client.Message
}

func (h *historyFake) History(protocol.ConversationID) ([]client.Message, error) { return h.hist, nil }

// The chat view shows a reply under its message, and redraws a message
// when a reaction, edit or delete for it comes live, from the client's
// folded history (which applied the rules), not from the action itself.
func TestChatViewActions(t *testing.T) {
	m, fb := newTestChat(t, 70, 12)
	hb := &historyFake{fakeBackend: fb}
	m.b = hb
	orig := msgAt(m, 1, "bob", "lunch at noon?", 0)
	orig.Ref = "AAAAAAAAAAAAAAAA"
	reply := msgAt(m, 2, "alice", "yes", 1)
	reply.Type, reply.Ref, reply.ReplyTo = client.ContentReply, "BBBBBBBBBBBBBBBB", orig.Ref
	m.addMessage(orig)
	m.addMessage(reply)
	if got := strings.Join(screen(t, m), "\n"); !strings.Contains(got, "↳ reply to bob: lunch at noon?") {
		t.Fatalf("no reply line:\n%s", got)
	}
	edited := orig
	edited.Text, edited.Edited, edited.Reactions = "lunch at one?", true, map[string][]string{"👍": {"alice"}}
	hb.hist = []client.Message{edited, reply}
	drain(m, func() tea.Msg {
		return chatReceivedMsg{client.Message{Conversation: m.conv, Seq: 3, Type: client.ContentEdit, Target: orig.Ref, Text: "ignored: the view reads the history"}}
	})
	got := strings.Join(screen(t, m), "\n")
	for _, want := range []string{"bob (edited): lunch at one?", "👍 alice", "↳ reply to bob: lunch at one?"} {
		if !strings.Contains(got, want) {
			t.Fatalf("after the edit, no %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ignored") || strings.Contains(got, "noon") {
		t.Fatalf("the view shows the action's own text or the old text:\n%s", got)
	}
	deleted := orig
	deleted.Text, deleted.Deleted = "", true
	hb.hist = []client.Message{deleted, reply}
	drain(m, func() tea.Msg {
		return chatReceivedMsg{client.Message{Conversation: m.conv, Seq: 4, Type: client.ContentDelete, Target: orig.Ref}}
	})
	got = strings.Join(screen(t, m), "\n")
	if !strings.Contains(got, "bob: [deleted]") || !strings.Contains(got, "↳ reply to bob: [deleted]") || strings.Contains(got, "lunch") || strings.Contains(got, "👍") {
		t.Fatalf("after the delete:\n%s", got)
	}
}

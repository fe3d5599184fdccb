package main

import (
	"context"
	"slices"
	"time"

	tea "charm.land/bubbletea/v2"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// Typing in the chat view: the view tells the others while its input holds
// text (a notice when typing starts, again every client.TypingEvery, and a
// stopped one when the input is sent or cleared), and shows "NAME is
// typing…" above the input while a notice of theirs is fresh.

// Messages of the chat view about typing.
type (
	chatTypingMsg     struct{ t client.Typing } // a notice came
	chatTypingTickMsg struct{}                  // a shown notice may have gone stale
)

// typingBackend is a chat backend that sends typing notices (the client;
// the view's test double may not).
type typingBackend interface {
	SendTyping(ctx context.Context, conv protocol.ConversationID, typing bool) error
}

// typingState is the chat view's typing: when it last told the others
// (zero: it is not typing), and until when each other account is shown.
type typingState struct {
	sentAt time.Time
	shown  map[string]time.Time
}

// typed tells the others whether the input holds text, at most every
// client.TypingEvery while it does.
func (m *chatModel) typed() tea.Cmd {
	tb, ok := m.b.(typingBackend)
	if !ok {
		return nil
	}
	now := m.now()
	on := len(m.input) > 0
	switch {
	case on && now.Sub(m.typing.sentAt) >= client.TypingEvery*time.Millisecond:
		m.typing.sentAt = now
	case !on && !m.typing.sentAt.IsZero():
		m.typing.sentAt = time.Time{}
	default:
		return nil
	}
	ctx, conv := m.ctx, m.conv
	return func() tea.Msg {
		_ = tb.SendTyping(ctx, conv, on) // a courtesy: nothing to retry
		return nil
	}
}

// typingCame shows (or, for a stopped notice, hides) a member typing.
func (m *chatModel) typingCame(t client.Typing) tea.Cmd {
	if t.Conversation != m.conv {
		return nil
	}
	if m.typing.shown == nil {
		m.typing.shown = map[string]time.Time{}
	}
	if !t.Typing {
		delete(m.typing.shown, t.Username)
		return nil
	}
	d := client.TypingShown * time.Millisecond
	m.typing.shown[t.Username] = m.now().Add(d)
	return tea.Tick(d, func(time.Time) tea.Msg { return chatTypingTickMsg{} })
}

// typingLine is "NAME is typing…" (or "NAME and NAME are typing…") for
// the notices still fresh, or "".
func (m *chatModel) typingLine() string {
	now := m.now()
	var names []string
	for name, until := range m.typing.shown {
		if now.Before(until) {
			names = append(names, name)
		} else {
			delete(m.typing.shown, name)
		}
	}
	slices.Sort(names)
	switch len(names) {
	case 0:
		return ""
	case 1:
		return untrustedName(names[0]) + " is typing…"
	}
	return untrustedList(names[:len(names)-1]) + " and " + untrustedName(names[len(names)-1]) + " are typing…"
}

// stoppedTyping hides a member's notice when a message of theirs comes.
func (m *chatModel) stoppedTyping(sender string) {
	delete(m.typing.shown, sender)
}

package main

import (
	"context"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// cmdReadReceipts shows or sets this device's read-receipt setting.
func cmdReadReceipts(ctx context.Context, e *cli, args []string) error {
	fs := flags("read-receipts", e)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 || fs.NArg() == 1 && fs.Arg(0) != "on" && fs.Arg(0) != "off" {
		return usageError{"usage: sandi read-receipts [on|off]"}
	}
	if err := e.open(); err != nil {
		return err
	}
	if fs.NArg() == 1 {
		if err := e.c.SetReadReceipts(fs.Arg(0) == "on"); err != nil {
			return err
		}
	}
	on, err := e.c.ReadReceipts()
	if err != nil {
		return err
	}
	text := "read receipts are on: others see when this device read their messages"
	if !on {
		text = "read receipts are off on this device: others see that their messages were delivered, not that they were read"
	}
	return e.out(map[string]any{"readReceipts": on}, text)
}

// sendReceipts acknowledges what this device received and read in the
// conversations of the messages that came. A receipt is a courtesy: one
// that could not be sent (no connection, a conversation this device cannot
// send to) goes with the next that conversation's messages bring, and its
// failure is not the command's.
func (e *cli) sendReceipts(ctx context.Context, came []client.Message) {
	var convs []protocol.ConversationID
	for _, m := range came {
		if !slices.Contains(convs, m.Conversation) {
			convs = append(convs, m.Conversation)
		}
	}
	if len(convs) > 0 {
		_ = e.c.SendReceipts(ctx, convs...)
	}
}

// acknowledge sends the receipts of conv when a chat ends, within a few
// seconds even if ctx was cancelled (the user left with a signal).
func (e *cli) acknowledge(ctx context.Context, conv protocol.ConversationID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = e.c.SendReceipts(ctx, conv) // a courtesy, as in sendReceipts
}

// receiptLine is the line under a message of this account that tells
// the receipts of the others: "✓ read by NAMES", else "✓ delivered to
// NAMES"; nothing without receipts or on others' messages.
func (e *cli) receiptLine(m client.Message) string {
	var l string
	switch {
	case m.Sender != e.c.Username():
	case len(m.ReadBy) > 0:
		l = "✓ read by " + untrustedList(m.ReadBy)
	case len(m.DeliveredTo) > 0:
		l = "✓ delivered to " + untrustedList(m.DeliveredTo)
	}
	if l == "" {
		return ""
	}
	return "\n" + strings.Join(wrapHanging(actionCont+l, e.width(), actionCont+"  "), "\n")
}

// receiptJSON adds a message's receipts to its --json object.
func receiptJSON(v map[string]any, m client.Message) {
	if m.DeliveredTo != nil {
		v["deliveredTo"] = m.DeliveredTo
	}
	if m.ReadBy != nil {
		v["readBy"] = m.ReadBy
	}
}

// chatReceiptMark is the state a sent message shows in the chat view:
// "read", "delivered" (by whom, in a conversation of more than two), or
// "sent".
func chatReceiptMark(readBy, deliveredTo []string, members int) string {
	who := func(prep string, names []string) string {
		if members <= 2 {
			return ""
		}
		return prep + untrustedList(names)
	}
	switch {
	case len(readBy) > 0:
		return "read" + who(" by ", readBy)
	case len(deliveredTo) > 0:
		return "delivered" + who(" to ", deliveredTo)
	}
	return "sent"
}

// entryReceipts are the usernames whose receipts cover a chat entry.
type entryReceipts struct{ readBy, deliveredTo []string }

// Messages of the chat view about receipts.
type (
	chatReceiptMsg struct{ conv protocol.ConversationID } // a receipt came
	chatAckedMsg   struct{}                               // the view's receipts were sent
)

// ackState batches the view's receipts: while one round is being sent,
// messages that come ask for one more round, not one each.
type ackState struct{ running, again bool }

// receiptBackend is a chat backend that marks read and sends receipts
// (the client; the view's test double may not).
type receiptBackend interface {
	MarkRead(conv protocol.ConversationID) error
	SendReceipts(ctx context.Context, convs ...protocol.ConversationID) error
}

// acknowledge marks what the view shows as read and sends the receipts,
// off the UI loop, one round at a time.
func (m *chatModel) acknowledge() tea.Cmd {
	rb, ok := m.b.(receiptBackend)
	if !ok {
		return nil
	}
	if m.ack.running {
		m.ack.again = true
		return nil
	}
	m.ack.running = true
	ctx, conv := m.ctx, m.conv
	return func() tea.Msg {
		if rb.MarkRead(conv) == nil {
			_ = rb.SendReceipts(ctx, conv) // a courtesy: the next round retries
		}
		return chatAckedMsg{}
	}
}

// acked ends a round of receipts and starts the one asked for meanwhile.
func (m *chatModel) acked() tea.Cmd {
	m.ack.running = false
	if m.ack.again {
		m.ack.again = false
		return m.acknowledge()
	}
	return nil
}

// applyReceipts updates the entries whose receipts changed.
func (m *chatModel) applyReceipts(hist []client.Message) {
	byRef := map[string]client.Message{}
	for _, h := range hist {
		byRef[h.Ref] = h
	}
	for _, e := range m.entries {
		h, ok := byRef[e.act.ref]
		if e.kind != entryMessage || e.act.ref == "" || !ok || slices.Equal(e.rcpt.readBy, h.ReadBy) && slices.Equal(e.rcpt.deliveredTo, h.DeliveredTo) {
			continue
		}
		e.rcpt = entryReceipts{readBy: h.ReadBy, deliveredTo: h.DeliveredTo}
		e.changed()
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// Replies, reactions, edits and deletes (protocol.md §13.7). A message is
// named by its id: the first idLen characters of its reference
// (client.Message.Ref), which `history` prints as "#id" with each message;
// any unique prefix of at least minIDLen characters will do.
const (
	idLen    = 8
	minIDLen = 4
)

// msgID is the id shown for a message, or "" for one without a reference.
func msgID(m client.Message) string {
	if len(m.Ref) < idLen {
		return ""
	}
	return m.Ref[:idLen]
}

func cmdReply(ctx context.Context, e *cli, args []string) error {
	if len(args) < 3 {
		return usageError{"usage: sandi reply CONV MSG TEXT..."}
	}
	return e.act(ctx, args[0], args[1], func(id protocol.ConversationID, ref string) (client.Message, error) {
		return e.c.Reply(ctx, id, ref, strings.Join(args[2:], " "))
	})
}

func cmdReact(ctx context.Context, e *cli, args []string) error {
	if len(args) != 3 && len(args) != 2 {
		return usageError{"usage: sandi react CONV MSG [EMOJI] (without EMOJI: remove your reaction)"}
	}
	emoji := ""
	if len(args) == 3 {
		emoji = args[2]
		if emoji == "" || !utf8.ValidString(emoji) || len(emoji) > client.MaxEmoji || strings.ContainsFunc(emoji, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return usageError{fmt.Sprintf("a reaction is one emoji (at most %d bytes, no spaces)", client.MaxEmoji)}
		}
	}
	return e.act(ctx, args[0], args[1], func(id protocol.ConversationID, ref string) (client.Message, error) {
		return e.c.React(ctx, id, ref, emoji)
	})
}

func cmdEdit(ctx context.Context, e *cli, args []string) error {
	if len(args) < 3 {
		return usageError{"usage: sandi edit CONV MSG TEXT..."}
	}
	return e.act(ctx, args[0], args[1], func(id protocol.ConversationID, ref string) (client.Message, error) {
		return e.c.Edit(ctx, id, ref, strings.Join(args[2:], " "))
	})
}

func cmdDelete(ctx context.Context, e *cli, args []string) error {
	if len(args) != 2 {
		return usageError{"usage: sandi delete CONV MSG"}
	}
	return e.act(ctx, args[0], args[1], func(id protocol.ConversationID, ref string) (client.Message, error) {
		return e.c.Delete(ctx, id, ref)
	})
}

// act resolves CONV and MSG and runs do with the message's reference.
func (e *cli) act(ctx context.Context, conv, msg string, do func(protocol.ConversationID, string) (client.Message, error)) error {
	id, err := e.conv(ctx, conv)
	if err != nil {
		return err
	}
	// Bring the history up to date first: the message may have just come.
	if _, err := e.c.Sync(ctx); err != nil {
		return err
	}
	hist, err := e.c.History(id)
	if err != nil {
		return err
	}
	target, err := findMessage(hist, msg)
	if err != nil {
		return err
	}
	if target.Deleted {
		return fmt.Errorf("message #%s was deleted", msgID(target))
	}
	m, err := do(id, target.Ref)
	switch {
	case errors.Is(err, client.ErrNotYours):
		return fmt.Errorf("message #%s was sent by %s: only its sender can edit or delete it", msgID(target), untrustedName(target.Sender))
	case errors.Is(err, client.ErrUnknownMessage):
		return fmt.Errorf("message #%s was deleted", msgID(target))
	case err != nil:
		return err
	}
	return e.out(map[string]any{"conversation": id, "seq": m.Seq, "ref": m.Ref, "target": target.Ref}, "")
}

// findMessage finds the message MSG names in a conversation's history: a
// prefix of its reference, with or without "#".
func findMessage(hist []client.Message, s string) (client.Message, error) {
	s = strings.TrimPrefix(s, "#")
	if len(s) < minIDLen {
		return client.Message{}, usageError{fmt.Sprintf("a message id has at least %d characters: the #id that 'sandi history CONV' prints", minIDLen)}
	}
	var found []client.Message
	for _, m := range hist {
		if m.Ref != "" && strings.HasPrefix(m.Ref, s) && !slices.ContainsFunc(found, func(f client.Message) bool { return f.Ref == m.Ref }) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		return client.Message{}, fmt.Errorf("no message #%s in this conversation on this device: 'sandi history CONV' prints each message's #id", untrusted(s))
	case 1:
		if found[0].Type != client.ContentText && found[0].Type != client.ContentReply {
			return client.Message{}, fmt.Errorf("message #%s is not a text message", msgID(found[0]))
		}
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, m := range found {
		ids[i] = "#" + m.Ref
	}
	return client.Message{}, fmt.Errorf("#%s names %d messages (%s): give more characters", untrusted(s), len(found), strings.Join(ids, ", "))
}

// actionCont starts the lines under a message that show what it answers
// and its reactions: like attachmentCont, never the start of a text line.
const actionCont = "           "

// preview is the start of a message's text on one line, escaped.
func preview(m client.Message) string {
	if m.Deleted {
		return "[deleted]"
	}
	words := strings.Fields(m.Text)
	s := strings.Join(words[:min(len(words), 8)], " ")
	if len(s) > 60 {
		s = s[:60]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	if len(words) > 8 || len(s) < len(strings.Join(words, " ")) {
		s += "…"
	}
	return untrusted(s)
}

// byRef finds a message of hist by its reference.
func byRef(hist []client.Message, ref string) (client.Message, bool) {
	i := slices.IndexFunc(hist, func(m client.Message) bool { return m.Ref == ref })
	if i < 0 {
		return client.Message{}, false
	}
	return hist[i], true
}

// replyLine is "↳ reply to SENDER: first words" for a reply.
func replyLine(m client.Message, hist []client.Message) string {
	t, ok := byRef(hist, m.ReplyTo)
	if !ok {
		return "↳ reply to a message not on this device"
	}
	return "↳ reply to " + untrustedName(t.Sender) + ": " + preview(t)
}

// reactionsLine is "EMOJI name, name · EMOJI name" for a message's
// reactions, or "".
func reactionsLine(m client.Message) string {
	var parts []string
	for _, emoji := range slices.Sorted(maps.Keys(m.Reactions)) {
		parts = append(parts, untrusted(emoji)+" "+untrustedList(m.Reactions[emoji]))
	}
	return strings.Join(parts, " · ")
}

// actionHead is what the head of a message line gains: its id and
// whether it was edited.
func actionHead(m client.Message) (id, mark string) {
	if s := msgID(m); s != "" {
		id = "#" + s + " "
	}
	if m.Edited {
		mark = " (edited)"
	}
	return id, mark
}

// actionLines are the lines under a message: what it replies to, and its
// reactions.
func (e *cli) actionLines(m client.Message) string {
	e.remember(m)
	var reply string
	if m.ReplyTo != "" {
		t, ok := e.lookup(m.Conversation, m.ReplyTo)
		reply = "↳ reply to a message not on this device"
		if ok {
			reply = "↳ reply to " + untrustedName(t.Sender) + ": " + preview(t)
		}
	}
	var b strings.Builder
	for _, l := range []string{reply, reactionsLine(m)} {
		if l != "" {
			b.WriteString("\n" + strings.Join(wrapHanging(actionCont+l, e.width(), actionCont+"  "), "\n"))
		}
	}
	return b.String()
}

// remember keeps a printed message for later lines about it.
func (e *cli) remember(m client.Message) {
	if m.Ref == "" {
		return
	}
	if e.printed == nil {
		e.printed = map[string]client.Message{}
	}
	e.printed[m.Ref] = m
}

// lookup finds message ref of conv in the history, or, inside Listen's
// callback (where the client is locked), among the messages printed.
func (e *cli) lookup(conv protocol.ConversationID, ref string) (client.Message, bool) {
	if !e.inListen {
		hist, cached := e.hist[conv]
		var err error
		if !cached {
			hist, err = e.c.History(conv)
			if err == nil && e.hist != nil {
				e.hist[conv] = hist
			}
		}
		if err == nil {
			if m, ok := byRef(hist, ref); ok {
				return m, true
			}
		}
	}
	m, ok := e.printed[ref]
	return m, ok
}

// actionJSON adds to a message's --json object what actions.go shows.
func actionJSON(v map[string]any, m client.Message) {
	v["ref"] = m.Ref
	if m.ReplyTo != "" {
		v["replyTo"] = m.ReplyTo
	}
	if m.Reactions != nil {
		v["reactions"] = m.Reactions
	}
	if m.Edited {
		v["edited"] = true
	}
	if m.Deleted {
		v["deleted"] = true
	}
}

// isAction: a reaction, edit or delete, printed by sync as a line about
// its target and folded into it by History.
func isAction(m client.Message) bool {
	return m.Type == client.ContentReaction || m.Type == client.ContentEdit || m.Type == client.ContentDelete
}

// printAction prints a reaction, edit or delete that sync brought, as a
// line about its target: "[conv] bob reacted 👍 to alice: first words". An
// edit or delete of another account's message, which the client ignores,
// is said to be ignored.
func (e *cli) printAction(m client.Message) error {
	what := "a message not on this device"
	t, ok := e.lookup(m.Conversation, m.Target)
	if ok {
		what = "#" + msgID(t) + " " + untrustedName(t.Sender) + ": " + preview(t)
	}
	var verb string
	switch m.Type {
	case client.ContentReaction:
		verb = "reacted " + untrusted(m.Text) + " to"
		if m.Text == "" {
			verb = "removed a reaction to"
		}
	case client.ContentEdit:
		verb = "edited"
	case client.ContentDelete:
		verb = "deleted"
	}
	switch {
	case ok && m.Type != client.ContentReaction && t.SenderID != m.SenderID:
		verb, what = "tried to "+m.Type+" a message of "+untrustedName(t.Sender), "(ignored: only its sender can)"
	case ok && m.Type == client.ContentEdit && e.inListen:
		t.Text, t.Edited = m.Text, true // the history is not read here
		e.remember(t)
		what = "#" + msgID(t) + " " + untrustedName(t.Sender) + ": " + preview(t)
	case m.Type == client.ContentDelete:
		what = "a message"
		if ok {
			t.Deleted, t.Text = true, ""
			e.remember(t)
		}
	}
	v := map[string]any{"conversation": m.Conversation, "seq": m.Seq, "ref": m.Ref, "sender": m.Sender, "type": m.Type, "target": m.Target, "text": m.Text, "sentAt": m.SentAt}
	return e.out(v, strings.Join(wrapHanging("["+m.Conversation.String()[:8]+"] "+untrustedName(m.Sender)+" "+verb+" "+what, e.width(), messageCont), "\n"))
}

// entryActions is what the chat view shows of a message's actions: lines
// made safe here, shown styled under the message.
type entryActions struct {
	ref       string
	reply     string // "↳ reply to …"
	reactions string
	edited    bool
	deleted   bool
}

// styled renders the reply and reactions lines, dim, for width w.
func (a entryActions) styled(w int) []string {
	var out []string
	for _, s := range []string{a.reply, a.reactions} {
		if s == "" {
			continue
		}
		for _, l := range wrapHanging(viewCont+s, w, viewCont+"  ") {
			out = append(out, style(sgrDim, l))
		}
	}
	return out
}

// setActions fills e.act from a message of the folded history; a reply's
// target is looked up among the entries shown.
func (m *chatModel) setActions(e *chatEntry, msg client.Message) {
	e.act = entryActions{ref: msg.Ref, reactions: reactionsLine(msg), edited: msg.Edited, deleted: msg.Deleted}
	if msg.Deleted {
		e.text = ""
	}
	if msg.ReplyTo != "" {
		var shown []client.Message
		for _, x := range m.entries {
			if x.act.ref == msg.ReplyTo {
				shown = append(shown, client.Message{Ref: x.act.ref, Sender: x.sender, Text: x.text, Deleted: x.act.deleted})
			}
		}
		e.act.reply = replyLine(msg, shown)
	}
}

// chatActionsMsg carries the folded history after a reaction, edit or
// delete came: the view redraws the messages it changed.
type chatActionsMsg struct{ hist []client.Message }

// historyBackend is a chat backend that can read the folded history (the
// client; the view's test double may not).
type historyBackend interface {
	History(conv protocol.ConversationID) ([]client.Message, error)
}

// refreshActions reads the folded history, where the client applied the
// action by its rules (only the sender edits or deletes), off the UI loop.
func (m *chatModel) refreshActions() tea.Cmd {
	hb, ok := m.b.(historyBackend)
	if !ok {
		return nil
	}
	conv := m.conv
	return func() tea.Msg {
		hist, err := hb.History(conv)
		if err != nil {
			return nil
		}
		return chatActionsMsg{hist}
	}
}

// applyActions updates the entries whose message an action changed.
func (m *chatModel) applyActions(hist []client.Message) {
	byRef := map[string]client.Message{}
	for _, h := range hist {
		byRef[h.Ref] = h
	}
	for _, e := range m.entries {
		h, ok := byRef[e.act.ref]
		if e.kind != entryMessage || !ok || e.act.ref == "" {
			continue
		}
		e.text = h.Text
		m.setActions(e, h)
		e.changed()
	}
	for _, e := range m.entries { // replies quote the new text
		if h, ok := byRef[e.act.ref]; ok && h.ReplyTo != "" {
			m.setActions(e, h)
		}
	}
}

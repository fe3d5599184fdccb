package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"

	"sandi.dev/protocol"
)

// Replies, reactions, edits and deletes (protocol.md §13.7) are messages
// like any other, encrypted and signed the same way; their content names
// the message they are about by its Ref, the hash of its envelope, which
// the server cannot change (it would have to change the signed envelope)
// and does not learn (the content is encrypted). The local history keeps
// every action as it came; History shows the result (foldActions), and a
// delete also erases its target's text and attachments, and the text of
// its edits, from storage (checkActions).

// Content types of actions on a message.
const (
	ContentReply    = "reply"    // Text answers the message Target
	ContentReaction = "reaction" // Text is an emoji for Target; empty removes the sender's reaction
	ContentEdit     = "edit"     // Text replaces the text of Target, a message of the same account
	ContentDelete   = "delete"   // Target, a message of the same account, is deleted for everyone
)

// Bounds on what a message gathers: edits after the MaxEdits-th, and
// reactions with an emoji that would be the MaxReactionKinds+1-th distinct
// one, are ignored. MaxEmoji bounds a reaction's bytes.
const (
	MaxEdits         = 100
	MaxReactionKinds = 32
	MaxEmoji         = 32
)

// AlarmForeignAction: a member edited or deleted a message of another
// account, which an honest client never sends. The action is ignored.
const AlarmForeignAction = "foreign_action"

// Errors of the action methods.
var (
	ErrUnknownMessage = errors.New("no such message in this conversation's history on this device")
	ErrNotYours       = errors.New("only the account that sent a message can edit or delete it")
)

// refLen is the length of a Ref: 12 bytes of SHA-256, unpadded base64url.
const refLen = 16

func isAction(t string) bool {
	return t == ContentReply || t == ContentReaction || t == ContentEdit || t == ContentDelete
}

// checkAction checks the fields an action's content type requires: a
// well-formed target on actions and on nothing else, a text on replies and
// edits, an emoji (or nothing) on reactions, no text on deletes.
func checkAction(ct Content) error {
	if !isAction(ct.Type) {
		if ct.Target != "" {
			return fmt.Errorf("a %s has no target", ct.Type)
		}
		return nil
	}
	if err := checkRef(ct.Type, ct.Target); err != nil {
		return err
	}
	switch ct.Type {
	case ContentReply, ContentEdit:
		if ct.Text == "" {
			return fmt.Errorf("a %s has a text", ct.Type)
		}
	case ContentReaction:
		return checkEmoji(ct.Text)
	case ContentDelete:
		if ct.Text != "" {
			return errors.New("a delete has no text")
		}
	}
	return nil
}

// checkRef checks the target of a content of type t: a Ref.
func checkRef(t, ref string) error {
	if len(ref) != refLen {
		return fmt.Errorf("a %s's target is %d characters of base64url", t, refLen)
	}
	if b, err := base64.RawURLEncoding.DecodeString(ref); err != nil || base64.RawURLEncoding.EncodeToString(b) != ref {
		return fmt.Errorf("a %s's target is not base64url", t)
	}
	return nil
}

// checkEmoji accepts a reaction: empty (removal), or at most MaxEmoji bytes
// of UTF-8 without spaces, control or format characters other than the
// zero-width joiner that emoji sequences use.
func checkEmoji(s string) error {
	if len(s) > MaxEmoji {
		return fmt.Errorf("a reaction is at most %d bytes", MaxEmoji)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || (unicode.Is(unicode.Cf, r) && r != 0x200D) || r == utf8.RuneError {
			return errors.New("a reaction has no spaces, control or format characters")
		}
	}
	return nil
}

// setContent fills the fields of m that its content gives.
func (m *Message) setContent(ct Content) {
	m.Type, m.Text, m.Attachments, m.SentAt = ct.Type, ct.Text, ct.Attachments, ct.SentAt
	if ct.Type == ContentReply {
		m.ReplyTo = ct.Target
	} else {
		m.Target = ct.Target
	}
}

// targetable: the types an action may name (a title is conversation state).
func targetable(t string) bool { return t == ContentText || t == ContentReply }

// foldActions turns a history (ordered by seq) into its view: reactions,
// edits and deletes are applied to their targets and removed. An action
// whose target this device does not hold (not yet received, held, or
// undecryptable) stays in storage and applies if the target comes; an
// edit or delete by an account other than the target's is ignored (and
// alarmed when it comes: checkActions).
func foldActions(hist []Message) []Message {
	at := map[string]int{}
	out := make([]Message, 0, len(hist))
	for _, m := range hist {
		if m.Type == ContentReaction || m.Type == ContentEdit || m.Type == ContentDelete {
			continue
		}
		if targetable(m.Type) && m.Ref != "" {
			if _, dup := at[m.Ref]; !dup {
				at[m.Ref] = len(out)
			}
		}
		out = append(out, m)
	}
	type reaction struct{ emoji, name string }
	reacts := map[string]map[protocol.UserID]reaction{}
	edits := map[string]int{}
	for _, a := range hist {
		i, ok := at[a.Target]
		if !ok || out[i].Deleted {
			continue
		}
		t := &out[i]
		switch a.Type {
		case ContentReaction:
			rs := reacts[a.Target]
			if rs == nil {
				rs = map[protocol.UserID]reaction{}
				reacts[a.Target] = rs
			}
			if a.Text == "" {
				delete(rs, a.SenderID)
				continue
			}
			kinds := map[string]bool{}
			for u, r := range rs {
				if u != a.SenderID {
					kinds[r.emoji] = true
				}
			}
			if !kinds[a.Text] && len(kinds) >= MaxReactionKinds {
				continue
			}
			rs[a.SenderID] = reaction{a.Text, a.Sender}
		case ContentEdit:
			if a.SenderID != t.SenderID || edits[a.Target] >= MaxEdits {
				continue
			}
			edits[a.Target]++
			t.Text, t.Edited, t.EditedAt = a.Text, true, a.SentAt
		case ContentDelete:
			if a.SenderID != t.SenderID {
				continue
			}
			t.Deleted, t.Text, t.Attachments, t.Edited, t.EditedAt = true, "", nil, false, 0
			delete(reacts, a.Target)
		}
	}
	for ref, rs := range reacts {
		t := &out[at[ref]]
		for _, r := range rs {
			if t.Reactions == nil {
				t.Reactions = map[string][]string{}
			}
			t.Reactions[r.emoji] = append(t.Reactions[r.emoji], r.name)
		}
		for _, names := range t.Reactions {
			slices.Sort(names)
		}
	}
	return out
}

// noteRecorded leaves for checkActions an edit or delete just recorded,
// and, when late (released from hold, out of seq order), any message that
// a delete recorded earlier may name.
func (c *Client) noteRecorded(conv protocol.ConversationID, m Message, late bool) {
	if m.Type == ContentEdit || m.Type == ContentDelete || late && targetable(m.Type) {
		c.pend.actions[conv] = append(c.pend.actions[conv], m)
	}
}

// checkActions runs, on flush, over the edits and deletes just recorded in
// a conversation: one naming a message of another account raises an alarm
// (it is ignored by foldActions); a delete erases from storage the text and
// attachments of its target and the texts of the target's edits.
func (c *Client) checkActions(conv protocol.ConversationID, recorded []Message) error {
	lines, err := c.historyLines(conv)
	if err != nil {
		return err
	}
	owner := map[string]protocol.UserID{}
	for _, m := range lines {
		if targetable(m.Type) && m.Ref != "" {
			if _, ok := owner[m.Ref]; !ok {
				owner[m.Ref] = m.SenderID
			}
		}
	}
	deleted := map[string]bool{}
	for _, m := range lines {
		if m.Type == ContentDelete && owner[m.Target] == m.SenderID {
			deleted[m.Target] = true
		}
	}
	for _, a := range recorded {
		if a.Type != ContentEdit && a.Type != ContentDelete {
			continue
		}
		if u, ok := owner[a.Target]; ok && u != a.SenderID {
			detail := fmt.Sprintf("%s tried to %s message %s of another account; ignored.", a.Sender, a.Type, a.Target)
			if err := c.raise(Alarm{Kind: AlarmForeignAction, Conversation: conv, User: a.SenderID, Detail: detail}); err != nil {
				return err
			}
		}
	}
	scrub := false
	for i := range lines {
		m := &lines[i]
		switch {
		case targetable(m.Type) && deleted[m.Ref] && owner[m.Ref] == m.SenderID && (m.Text != "" || m.Attachments != nil || !m.Deleted):
			m.Text, m.Attachments, m.Deleted = "", nil, true
			scrub = true
		case m.Type == ContentEdit && deleted[m.Target] && m.Text != "":
			m.Text = ""
			scrub = true
		}
	}
	if !scrub {
		return nil
	}
	return c.putHistory(conv, lines)
}

// putHistory replaces a conversation's stored history with lines (none:
// the key is deleted).
func (c *Client) putHistory(conv protocol.ConversationID, lines []Message) error {
	if len(lines) == 0 {
		return c.st.Delete(historyKey(conv))
	}
	var b []byte
	for _, m := range lines {
		line, err := json.Marshal(m)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	return c.st.Put(historyKey(conv), b)
}

// historyLines reads a conversation's stored history lines as they are.
func (c *Client) historyLines(conv protocol.ConversationID) ([]Message, error) {
	return jsonLines[Message](c.st, historyKey(conv))
}

// Reply sends text in answer to the message targetRef (a Message.Ref).
func (c *Client) Reply(ctx context.Context, conv protocol.ConversationID, targetRef, text string) (Message, error) {
	return c.ActWithID(ctx, conv, "", ContentReply, targetRef, text)
}

// React sets this account's reaction to the message targetRef: emoji
// replaces its earlier one; "" removes it.
func (c *Client) React(ctx context.Context, conv protocol.ConversationID, targetRef, emoji string) (Message, error) {
	return c.ActWithID(ctx, conv, "", ContentReaction, targetRef, emoji)
}

// Edit replaces the text of targetRef, a message this account sent.
func (c *Client) Edit(ctx context.Context, conv protocol.ConversationID, targetRef, text string) (Message, error) {
	return c.ActWithID(ctx, conv, "", ContentEdit, targetRef, text)
}

// Delete deletes targetRef, a message this account sent, for everyone.
func (c *Client) Delete(ctx context.Context, conv protocol.ConversationID, targetRef string) (Message, error) {
	return c.ActWithID(ctx, conv, "", ContentDelete, targetRef, "")
}

// ActWithID sends the action kind (ContentReply, ContentReaction,
// ContentEdit or ContentDelete) about targetRef with a caller-chosen client
// message id, as SendWithID is to Send: calling it again with the same id
// after a failure whose outcome was unknown re-sends the first attempt's
// envelope, so the server stores the action once. An empty id takes a
// fresh one. text is the reply's or edit's text, the reaction's emoji (""
// removes it), and empty for a delete.
func (c *Client) ActWithID(ctx context.Context, conv protocol.ConversationID, clientID, kind, targetRef, text string) (Message, error) {
	switch kind {
	case ContentReply, ContentEdit:
		if text == "" || len(text) > MaxText || !utf8.ValidString(text) {
			return Message{}, fmt.Errorf("a message is 1 to %d bytes of UTF-8 text", MaxText)
		}
	case ContentReaction:
		if err := checkEmoji(text); err != nil {
			return Message{}, err
		}
	case ContentDelete:
		if text != "" {
			return Message{}, errors.New("a delete has no text")
		}
	default:
		return Message{}, fmt.Errorf("not an action: %q", kind)
	}
	return c.act(ctx, conv, clientID, Content{Type: kind, Text: text, Target: targetRef})
}

// act checks an action against this device's history (the target exists,
// is not deleted, and for an edit or delete was sent by this account) and
// sends it.
func (c *Client) act(ctx context.Context, conv protocol.ConversationID, clientID string, ct Content) (Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return Message{}, err
	}
	cs, err := c.conv(conv)
	if err != nil {
		return Message{}, err
	}
	if cs == nil {
		return Message{}, ErrUnknownMessage
	}
	hist, err := c.history(conv)
	if err != nil {
		return Message{}, err
	}
	i := slices.IndexFunc(hist, func(m Message) bool { return m.Ref == ct.Target && targetable(m.Type) })
	if i < 0 || hist[i].Deleted {
		return Message{}, ErrUnknownMessage
	}
	if (ct.Type == ContentEdit || ct.Type == ContentDelete) && hist[i].SenderID != c.acct.User {
		return Message{}, ErrNotYours
	}
	return c.send(ctx, cs, clientID, ct)
}

package client

import (
	"sort"
	"strings"

	"sandi.dev/protocol"
)

// The local history is what this device decrypted and kept (storage keys
// history/CONV): reading it, searching it and marking it read never asks
// the server anything.

// countsUnread reports whether a message counts in its conversation's
// unread count: a text or reply from another account. A title is
// conversation state, reactions, edits and deletes change messages already
// counted, and this account's own messages (from any of its devices) were
// read where they were written.
func (c *Client) countsUnread(m Message) bool {
	return targetable(m.Type) && !m.Own && m.SenderID != c.acct.User
}

// MarkReadThrough marks the messages of a conversation up to seq (a
// message's Seq) as read: its unread count becomes the number of messages
// after the newest mark that count (countsUnread). A mark never moves
// back: marking through an older seq changes nothing already marked.
func (c *Client) MarkReadThrough(conv protocol.ConversationID, seq uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.conv(conv)
	if err != nil || cs == nil || cs.Request {
		return err // a request's messages stay unread until it is accepted
	}
	cs.ReadSeq = max(cs.ReadSeq, seq)
	hist, err := c.history(conv)
	if err != nil {
		return err
	}
	cs.Unread = c.unreadAfter(hist, cs.ReadSeq)
	return c.saveConv(cs)
}

// Search returns the text messages of the local history whose text
// contains query, compared case-insensitively (both sides lowered with
// strings.ToLower: a substring match, not a word or fuzzy search), from
// the conversation only if given, else from all. They come in the order
// they were stored by the server (Message.ReceivedAt), oldest first.
func (c *Client) Search(query string, only *protocol.ConversationID) ([]Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var convs []protocol.ConversationID
	if only != nil {
		convs = append(convs, *only)
	} else {
		keys, err := c.st.List("history/")
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if id, err := protocol.ParseConversationID(strings.TrimPrefix(k, "history/")); err == nil {
				convs = append(convs, id)
			}
		}
	}
	q := strings.ToLower(query)
	var out []Message
	for _, id := range convs {
		hist, err := c.history(id)
		if err != nil {
			return nil, err
		}
		for _, m := range hist {
			if targetable(m.Type) && strings.Contains(strings.ToLower(m.Text), q) {
				out = append(out, m)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ReceivedAt < out[j].ReceivedAt })
	return out, nil
}

// LocalConversations lists the conversations this device holds state for,
// those it left or was removed from included, from its storage alone
// (without the server): ID, Title, Unread, Timer and Request are set,
// the members and From not.
func (c *Client) LocalConversations() ([]Conversation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	held, err := c.storedConvs()
	if err != nil {
		return nil, err
	}
	var out []Conversation
	for _, cs := range held {
		out = append(out, Conversation{ID: cs.ID, Title: cs.title(), Epoch: cs.Epoch, Unread: cs.Unread, Timer: cs.timer(), Request: cs.Request})
	}
	return out, nil
}

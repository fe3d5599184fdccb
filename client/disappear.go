package client

import (
	"context"
	"fmt"
	"slices"

	"sandi.dev/protocol"
)

// Disappearing messages (protocol.md §13.10). The timer is part of the
// conversation's state (§7.6): any member changes it, and every device
// shows the change as a line of the timeline. A message carries, in its
// encrypted content, the timer of the state its sender held, so neither
// the server nor a later state change can stretch it. A device deletes a
// message, on its own clock, Timer seconds after the earlier of the
// sender's time and its own arrival: a server that keeps an envelope past
// its expiry, or serves it again, gets nothing shown; one that delays it
// shortens its life on the device, never lengthens it. The sender also
// names the timer to the server beside the envelope, so that the server
// deletes the envelope and its blobs at the expiry; it checks the expiry
// the server answers and raises an alarm when it is not the one asked for.

// AlarmExpiryRefused: the server did not take the expiry of a message
// sent with a timer (its answer names another one, or none). It may keep
// the envelope after the timer runs out; devices delete the message on
// their own clock all the same.
const AlarmExpiryRefused = "expiry_refused"

// timer is the conversation's disappearing-message timer in seconds, from
// its verified state (0: off).
func (cs *convState) timer() uint32 {
	if cs.State == nil {
		return 0
	}
	return cs.State.Timer
}

// Timer returns a conversation's disappearing-message timer in seconds, as
// this device last verified it (0: off).
func (c *Client) Timer(conv protocol.ConversationID) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.conv(conv)
	if err != nil || cs == nil {
		return 0, err
	}
	return cs.timer(), nil
}

// expiry is when (Unix ms, this device's clock) a message of content ct
// that reached the device at now disappears: Timer seconds after the
// earlier of its sender's time and now; 0 for never.
func expiry(ct Content, now int64) int64 {
	if ct.Timer == 0 {
		return 0
	}
	from := now
	if ct.SentAt > 0 {
		from = min(from, ct.SentAt)
	}
	return from + int64(ct.Timer)*1000
}

// expired reports whether m had disappeared at now (Unix ms).
func (m *Message) expired(now int64) bool { return m.ExpiresAt != 0 && m.ExpiresAt <= now }

// SetTimer sets a conversation's disappearing-message timer to seconds (0
// turns it off): a new version of its state, as Rename makes. Messages
// sent from then on carry it; those sent before keep theirs.
func (c *Client) SetTimer(ctx context.Context, conv protocol.ConversationID, seconds uint32) error {
	return c.changeState(ctx, conv, func(sc *protocol.StateContent) error {
		sc.Timer = seconds
		return nil
	})
}

// checkExpiry compares the expiry the server answered for a message sent
// with a timer with the one asked for: its time of storing plus the
// timer, both on its own clock.
func (c *Client) checkExpiry(conv protocol.ConversationID, seq uint64, timer uint32, createdAt, expiresAt int64) error {
	if timer == 0 || expiresAt == createdAt+int64(timer)*1000 {
		return nil
	}
	return c.raise(Alarm{Kind: AlarmExpiryRefused, Conversation: conv,
		Detail: fmt.Sprintf("The server did not take the %s timer of message %d (it answered expiry %d for a message stored at %d): it may keep the message after the timer; this conversation's devices delete it on their own clock.",
			FormatTimer(timer), seq, expiresAt, createdAt)})
}

// maxGone bounds the refs of disappeared messages a conversation keeps.
const maxGone = 512

// noteGone remembers that the messages refs disappeared on this device:
// a reaction, edit, delete or receipt that names one and comes later is
// then neither stored nor shown (it would keep an edit's text, or the
// fact of a reaction, past the message's expiry, for as long as the
// action's own timer, or for ever when the timer was turned off between
// the two).
func (cs *convState) noteGone(refs ...string) {
	for _, r := range refs {
		if r != "" && !slices.Contains(cs.Gone, r) {
			cs.Gone = append(cs.Gone, r)
		}
	}
	if len(cs.Gone) > maxGone {
		cs.Gone = slices.Delete(cs.Gone, 0, len(cs.Gone)-maxGone)
	}
}

// namesGone reports whether m is an action or receipt about a message
// that disappeared on this device.
func (cs *convState) namesGone(m *Message) bool {
	return m.Target != "" && slices.Contains(cs.Gone, m.Target)
}

// earliest is the earlier of two expiries (0: none).
func earliest(a, b int64) int64 {
	if a == 0 || b != 0 && b < a {
		return b
	}
	return a
}

// noteExpiry keeps, with the conversation, the earliest expiry of the
// messages stored for it, so that purging looks at a history only when
// one is due, and, with the client, the earliest of all, so that a sync
// looks at the conversations only then.
func (c *Client) noteExpiry(cs *convState, at int64) {
	cs.NextExpiry = earliest(cs.NextExpiry, at)
	c.expiryDue = earliest(c.expiryDue, at)
}

// purgeExpired erases from storage the messages of cs that have
// disappeared at now (Unix ms), their attachment keys with them, and the
// reactions, edits and deletes that named them; it recounts the unread
// messages. It does nothing before the conversation's next expiry.
func (c *Client) purgeExpired(cs *convState, now int64) error {
	if cs.NextExpiry == 0 || now < cs.NextExpiry {
		return nil
	}
	lines, err := c.historyLines(cs.ID)
	if err != nil {
		return err
	}
	return c.eraseExpired(cs.ID, lines, now)
}

// eraseExpired is purgeExpired on the history lines of conv just read,
// whatever the conversation's mark says.
func (c *Client) eraseExpired(conv protocol.ConversationID, lines []Message, now int64) error {
	cs, err := c.convOrNew(conv)
	if err != nil {
		return err
	}
	for _, m := range lines {
		if m.expired(now) {
			cs.noteGone(m.Ref)
		}
	}
	var kept []Message
	next := int64(0)
	for _, m := range lines {
		if m.expired(now) || cs.namesGone(&m) {
			continue
		}
		next = earliest(next, m.ExpiresAt)
		kept = append(kept, m)
	}
	if err := c.putHistory(conv, kept); err != nil {
		return err
	}
	cs.NextExpiry, cs.Unread = next, c.unreadAfter(liveHistory(kept), cs.ReadSeq) // as MarkReadThrough counts
	c.expiryDue = earliest(c.expiryDue, next)
	return c.saveConv(cs)
}

// purgeAllExpired runs purgeExpired over every conversation held, when
// one's next expiry is due (or not known yet: the first run reads them
// all): every caught-up sync calls it.
func (c *Client) purgeAllExpired(now int64) error {
	if c.expiryKnown && (c.expiryDue == 0 || now < c.expiryDue) {
		return nil
	}
	held, err := c.storedConvs()
	if err != nil {
		return err
	}
	due := int64(0)
	for _, cs := range held {
		if err := c.purgeExpired(cs, now); err != nil {
			return err
		}
		due = earliest(due, cs.NextExpiry)
	}
	c.expiryDue, c.expiryKnown = due, true
	return nil
}

// ExpireMessages erases now the messages that have disappeared (Sync
// does it too, once caught up; an application that shows a conversation
// calls it when the next one is due).
func (c *Client) ExpireMessages() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.flush(); err != nil {
		return err
	}
	return c.purgeAllExpired(c.now().UnixMilli())
}

// NextExpiry returns the earliest time (Unix ms) at which a message held
// for conv disappears, 0 for none.
func (c *Client) NextExpiry(conv protocol.ConversationID) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.conv(conv)
	if err != nil || cs == nil {
		return 0, err
	}
	return cs.NextExpiry, nil
}

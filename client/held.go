package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"sandi.dev/protocol"
)

// Held messages (protocol.md §10.1 "Held messages"): a message refused only
// because an identity key it depends on (its sender's, or its epoch
// creator's) is the pending key of that account is kept on the device, not
// dropped. When the user accepts the key (AcceptIdentity, or a rekey that
// moves an unverified contact's pin), the messages are decrypted and
// recorded in seq order and reported by the next Sync; when the user
// rejects it, they are dropped and counted as failures.

// Bounds of what a device holds. A message that would exceed them fails as
// identity_not_accepted, as every such message did before holding existed.
const (
	// MaxHeld is the most messages a device holds.
	MaxHeld = 500
	// MaxHeldBytes bounds their storage: envelopes, metadata and the
	// distributions of epochs that could not be opened.
	MaxHeldBytes = 32 << 20
)

// ReasonHeld is the Reason of a DecryptError for a message held for a
// pending identity key (SyncResult.Held): not a failure, yet.
const ReasonHeld = "held"

// heldMessage is a held message (storage key held/CONV/SEQ).
type heldMessage struct {
	Message messageAnswer `json:"message"`
	// User and Key: the account and the pending key the message waits for.
	User protocol.UserID      `json:"user"`
	Key  protocol.IdentityKey `json:"key"`
	// StreamSeq is the conversation's StreamSeq when the message arrived:
	// the §7.4 step 9 check is made as of then.
	StreamSeq uint64 `json:"streamSeq"`
	Since     int64  `json:"since"` // Unix ms, this device's clock
}

// heldInfo is the index entry of a held message.
type heldInfo struct {
	conv  protocol.ConversationID
	seq   uint64
	epoch uint64
	user  protocol.UserID
	key   protocol.IdentityKey
	since int64
	size  int
}

// heldState is the in-memory index of what is held, built from storage the
// first time it is needed.
type heldState struct {
	msgs   map[string]*heldInfo // by storage key
	epochs map[string]int       // heldepoch/ keys and their sizes
}

// The keys sort by conversation, then seq (20 digits).
func heldKey(conv protocol.ConversationID, seq uint64) string {
	return fmt.Sprintf("held/%s/%020d", conv, seq)
}

func heldEpochKey(conv protocol.ConversationID, n uint64) string {
	return "heldepoch/" + conv.String() + "/" + strconv.FormatUint(n, 10)
}

func (c *Client) heldIndex() (*heldState, error) {
	if c.held != nil {
		return c.held, nil
	}
	h := &heldState{msgs: map[string]*heldInfo{}, epochs: map[string]int{}}
	keys, err := c.st.List("held/")
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		b, err := c.st.Get(k)
		if err != nil {
			return nil, err
		}
		var m heldMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("stored held message %s: %w", k, err)
		}
		h.msgs[k] = &heldInfo{conv: m.Message.Conversation, seq: m.Message.Seq, epoch: m.Message.Epoch, user: m.User, key: m.Key, since: m.Since, size: len(b)}
	}
	if keys, err = c.st.List("heldepoch/"); err != nil {
		return nil, err
	}
	for _, k := range keys {
		b, err := c.st.Get(k)
		if err != nil {
			return nil, err
		}
		h.epochs[k] = len(b)
	}
	c.held = h
	return h, nil
}

func (h *heldState) bytes() int {
	n := 0
	for _, m := range h.msgs {
		n += m.size
	}
	for _, s := range h.epochs {
		n += s
	}
	return n
}

// hold keeps message ma, which failed with de (identity_not_accepted), if
// the key at fault is the pending key of its account and the bounds allow.
// It reports whether the message is held.
func (c *Client) hold(ctx context.Context, cs *convState, ma *messageAnswer, de *DecryptError) (bool, error) {
	var ie *IdentityError
	if !errors.As(de.Err, &ie) || !ie.Pending || ie.Own {
		return false, nil
	}
	p := c.pins[ie.User]
	if p == nil || p.Pending == nil {
		return false, nil
	}
	h, err := c.heldIndex()
	if err != nil {
		return false, err
	}
	key := heldKey(ma.Conversation, ma.Seq)
	if _, ok := h.msgs[key]; ok {
		return true, nil // a page processed again after a crash
	}
	// An epoch that could not be opened: keep its distribution (once),
	// to open it on acceptance without asking the server again.
	var dist []byte
	ek := heldEpochKey(cs.ID, ma.Epoch)
	if _, ok := h.epochs[ek]; de.epoch && !ok {
		d, _, err := c.fetchDistribution(ctx, cs, ma.Epoch)
		if errors.Is(err, errNoSession) || errors.Is(err, ErrServerMisbehaved) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		dist = d.Marshal()
	}
	b, err := json.Marshal(heldMessage{Message: *ma, User: p.User, Key: *p.Pending, StreamSeq: cs.StreamSeq, Since: c.now().UnixMilli()})
	if err != nil {
		return false, err
	}
	if len(h.msgs) >= MaxHeld || h.bytes()+len(b)+len(dist) > MaxHeldBytes {
		return false, nil
	}
	if dist != nil {
		if err := c.st.Put(ek, dist); err != nil {
			return false, err
		}
		h.epochs[ek] = len(dist)
	}
	if err := c.st.Put(key, b); err != nil {
		return false, err
	}
	h.msgs[key] = &heldInfo{conv: ma.Conversation, seq: ma.Seq, epoch: ma.Epoch, user: p.User, key: *p.Pending, since: c.now().UnixMilli(), size: len(b)}
	c.stats.Held++
	return true, nil
}

// epochAt returns epoch n for reading a message that arrived when the
// conversation's StreamSeq was streamSeq: from storage, from a held
// distribution, or from the server (openEpoch). The order checks of §7.4
// step 9 are made as of streamSeq.
func (c *Client) epochAt(ctx context.Context, cs *convState, n, streamSeq uint64) (*epochEntry, error) {
	if e, err := c.loadEpoch(cs, n); e != nil || err != nil {
		return e, err
	}
	if saved := cs.StreamSeq; streamSeq < saved {
		cs.StreamSeq = streamSeq
		defer func() {
			cs.StreamSeq = saved
			c.pend.convs[cs.ID] = cs // what open or stale stored is rewritten with it
		}()
	}
	ek := heldEpochKey(cs.ID, n)
	b, err := c.st.Get(ek)
	if errors.Is(err, ErrNoValue) {
		return c.openEpoch(ctx, cs, n)
	}
	if err != nil {
		return nil, err
	}
	d, err := protocol.ParseDistribution(b)
	if err != nil || d.Conversation != cs.ID || d.Epoch != n || d.Entry(c.ref()) == nil {
		return nil, fmt.Errorf("%w: a held distribution of epoch %d is not this device's", ErrServerMisbehaved, n)
	}
	if cs.refused(d) {
		return nil, fmt.Errorf("%w: %w: epoch %d of %s was refused", ErrServerMisbehaved, errStale, n, cs.ID)
	}
	if err := c.checkOrder(cs, d); err != nil {
		return nil, err
	}
	e, err := c.open(ctx, cs, d, d.Entry(c.ref()), nil)
	if err != nil {
		return nil, err
	}
	if err := c.st.Delete(ek); err != nil {
		return nil, err
	}
	if c.held != nil {
		delete(c.held.epochs, ek)
	}
	return e, nil
}

// releaseHeld decrypts and records, in conversation and seq order, the held
// messages whose key this device now accepts (only user's, if user is not
// nil). With drop, user's held messages whose key is neither accepted nor
// pending any more fail (they can never be shown). A message that fails
// now is counted and reported like any failure. Storage and network errors
// stop it; what is left stays held.
func (c *Client) releaseHeld(ctx context.Context, user *protocol.UserID, drop bool) ([]Message, []*DecryptError, error) {
	h, err := c.heldIndex()
	if err != nil || len(h.msgs) == 0 {
		return nil, nil, err
	}
	keys := make([]string, 0, len(h.msgs))
	for k := range h.msgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var ms []Message
	var fails []*DecryptError
	defer func() { err = errors.Join(err, c.flush()) }()
	for _, k := range keys {
		hi := h.msgs[k]
		if user != nil && hi.user != *user {
			continue
		}
		p := c.pins[hi.user]
		accepted := p != nil && (p.Identity.Equal(hi.key) || p.had(hi.key))
		if !accepted {
			if drop && (p == nil || p.Pending == nil || !p.Pending.Equal(hi.key)) {
				de := &DecryptError{Conversation: hi.conv, Seq: hi.seq, Reason: "identity_not_accepted",
					Err: &IdentityError{User: hi.user, Conversation: hi.conv}}
				c.stats.DecryptFailed[de.Reason]++
				fails = append(fails, de)
				if err := c.unhold(k); err != nil {
					return ms, fails, err
				}
			}
			continue
		}
		b, err := c.st.Get(k)
		if err != nil {
			return ms, fails, err
		}
		var hm heldMessage
		if err := json.Unmarshal(b, &hm); err != nil {
			return ms, fails, fmt.Errorf("stored held message %s: %w", k, err)
		}
		cs, err := c.conv(hi.conv)
		if err != nil {
			return ms, fails, err
		}
		if cs == nil {
			cs = c.newConv(hi.conv)
		}
		m, err := c.decrypt(ctx, cs, &hm.Message, hm.StreamSeq)
		var de *DecryptError
		switch {
		case errors.As(err, &de):
			c.stats.DecryptFailed[de.Reason]++
			fails = append(fails, de)
		case err != nil:
			return ms, fails, err
		case m != nil:
			c.stats.Decrypted++
			if err := c.recordReleased(cs, *m); err != nil {
				return ms, fails, err
			}
			ms = append(ms, *m)
		}
		// The ratchet and the history are written before the message is
		// forgotten: a crash in between releases it again, as a duplicate.
		if err := c.flush(); err != nil {
			return ms, fails, err
		}
		if err := c.unhold(k); err != nil {
			return ms, fails, err
		}
	}
	return ms, fails, nil
}

// unhold forgets held message k, and the held distribution of its epoch
// when no other held message needs it.
func (c *Client) unhold(k string) error {
	hi := c.held.msgs[k]
	if err := c.st.Delete(k); err != nil {
		return err
	}
	delete(c.held.msgs, k)
	for _, o := range c.held.msgs {
		if o.conv == hi.conv && o.epoch == hi.epoch {
			return nil
		}
	}
	ek := heldEpochKey(hi.conv, hi.epoch)
	if _, ok := c.held.epochs[ek]; !ok {
		return nil
	}
	delete(c.held.epochs, ek)
	return c.st.Delete(ek)
}

// recordReleased records a message released from hold: later messages may
// have been recorded already, so it does not move LastSeq (History sorts
// by seq), and a title sets the conversation's title only if no later one
// is recorded.
func (c *Client) recordReleased(cs *convState, m Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if m.Type == ContentTitle {
		later := false
		if hb, err := c.st.Get(historyKey(cs.ID)); err == nil {
			for line := range strings.Lines(string(hb)) {
				var o Message
				if json.Unmarshal([]byte(line), &o) == nil && o.Type == ContentTitle && o.Seq > m.Seq {
					later = true
				}
			}
		} else if !errors.Is(err, ErrNoValue) {
			return err
		}
		if !later {
			cs.Title = m.Text
		}
	}
	if c.countsUnread(m) {
		cs.Unread++
	}
	c.noteRecorded(cs.ID, m, true)
	c.pend.history[cs.ID] = append(append(c.pend.history[cs.ID], b...), '\n')
	c.pend.convs[cs.ID] = cs
	return nil
}

// HeldMessage is a message this device holds until the user accepts (or
// rejects) a pending identity key of User.
type HeldMessage struct {
	Conversation protocol.ConversationID `json:"conversation"`
	Seq          uint64                  `json:"seq"`
	User         protocol.UserID         `json:"user"`
	Username     string                  `json:"username,omitempty"`
	Since        int64                   `json:"since"` // Unix ms
}

// HeldMessages lists the messages held for pending identity keys, by
// conversation and seq.
func (c *Client) HeldMessages() ([]HeldMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, err := c.heldIndex()
	if err != nil {
		return nil, err
	}
	out := []HeldMessage{}
	for _, hi := range h.msgs {
		m := HeldMessage{Conversation: hi.conv, Seq: hi.seq, User: hi.user, Since: hi.since}
		if p := c.pins[hi.user]; p != nil {
			m.Username = p.Username
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b HeldMessage) int {
		if a.Conversation != b.Conversation {
			return strings.Compare(a.Conversation.String(), b.Conversation.String())
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	return out, nil
}

// releaseTimeout bounds the requests AcceptIdentity may make to open the
// epochs of the messages it releases (rare: their distributions are
// normally held).
const releaseTimeout = 30 * time.Second

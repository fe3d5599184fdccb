package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"sandi.dev/protocol"
)

// Receipts (protocol.md §13.8) are messages like any other, encrypted and
// signed the same way, of content type ContentReceipt: Text says what the
// sending account did ("delivered" or "read") with every message of the
// conversation up to and including Target, named by its Ref. The account
// a receipt speaks for is the one that signed its envelope: the content
// names nobody, so no member can speak for another. A receipt is kept in
// the local history like an action and folded by History into the
// DeliveredTo and ReadBy of the messages it covers; it never counts as
// unread and is never shown on its own. An account's marks only move
// forward: the newest position any of its receipts names wins, so an old
// receipt delivered late (or replayed) changes nothing.
//
// The account's own devices read its read receipts too: a read receipt
// from another device of the account marks the messages it covers read
// here, which clears the unread count (applyOwnReceipts).

// ContentReceipt is the content type of receipts.
const ContentReceipt = "receipt"

// Receipt kinds: the Text of a receipt.
const (
	ReceiptDelivered = "delivered" // this account's devices hold the messages
	ReceiptRead      = "read"      // this account read them (implies delivered)
)

// readReceiptsKey stores this device's read-receipt setting: "off" when it
// sends none; absent or "on" when it does.
const readReceiptsKey = "settings/read-receipts"

// checkReceipt checks a receipt's fields: a kind, a well-formed target,
// nothing else.
func checkReceipt(ct Content) error {
	if ct.Text != ReceiptDelivered && ct.Text != ReceiptRead {
		return fmt.Errorf("a receipt's text is %q or %q", ReceiptDelivered, ReceiptRead)
	}
	if len(ct.Attachments) > 0 {
		return errors.New("a receipt has no attachments")
	}
	return checkRef("receipt", ct.Target)
}

// foldReceipts applies the receipts of a history view (after foldActions)
// and removes them: each message of another account than self gets, in
// DeliveredTo and ReadBy, the usernames of the accounts (not its sender,
// not self) whose newest receipt covers it. A receipt whose target this
// device does not hold is kept and applies when the target comes.
func foldReceipts(view []Message, self protocol.UserID) []Message {
	seqOf := map[string]uint64{}
	for _, m := range view {
		if targetable(m.Type) && m.Ref != "" && m.Seq > 0 {
			if _, dup := seqOf[m.Ref]; !dup {
				seqOf[m.Ref] = m.Seq
			}
		}
	}
	type mark struct {
		name            string
		delivered, read uint64
	}
	var marks map[protocol.UserID]*mark
	out := view[:0]
	for _, m := range view {
		if m.Type != ContentReceipt {
			out = append(out, m)
			continue
		}
		s, ok := seqOf[m.Target]
		if !ok || m.SenderID == self {
			continue
		}
		if marks == nil {
			marks = map[protocol.UserID]*mark{}
		}
		mk := marks[m.SenderID]
		if mk == nil {
			mk = &mark{name: m.Sender}
			marks[m.SenderID] = mk
		}
		mk.delivered = max(mk.delivered, s)
		if m.Text == ReceiptRead {
			mk.read = max(mk.read, s)
		}
	}
	if marks == nil {
		return out
	}
	type account struct {
		id protocol.UserID
		*mark
	}
	accounts := make([]account, 0, len(marks))
	for u, mk := range marks {
		accounts = append(accounts, account{u, mk})
	}
	sort.Slice(accounts, func(i, j int) bool { return accounts[i].name < accounts[j].name })
	// The lists of all messages share one backing array, in name order.
	var names []string
	list := func(start int) []string {
		if len(names) == start {
			return nil
		}
		return names[start:len(names):len(names)]
	}
	for i := range out {
		m := &out[i]
		if !targetable(m.Type) || m.Seq == 0 {
			continue
		}
		start := len(names)
		for _, a := range accounts {
			if a.id != m.SenderID && a.delivered >= m.Seq {
				names = append(names, a.name)
			}
		}
		m.DeliveredTo = list(start)
		start = len(names)
		for _, a := range accounts {
			if a.id != m.SenderID && a.read >= m.Seq {
				names = append(names, a.name)
			}
		}
		m.ReadBy = list(start)
	}
	return out
}

// noteReceipt leaves for applyOwnReceipts a receipt of this account just
// recorded (sent by this device or another of the account's).
func (c *Client) noteReceipt(conv protocol.ConversationID, m Message) {
	if m.Type == ContentReceipt && m.SenderID == c.acct.User {
		c.pend.receipts[conv] = append(c.pend.receipts[conv], m)
	}
}

// applyOwnReceipts runs, on flush, over the receipts of this account just
// recorded in cs: they move the marks of what the account acknowledged
// (so no device sends them again), and a read receipt marks the messages
// it covers read on this device too.
func (c *Client) applyOwnReceipts(cs *convState, rs []Message) error {
	hist, err := c.history(cs.ID)
	if err != nil {
		return err
	}
	read := cs.ReadSeq
	for _, r := range rs {
		i := slices.IndexFunc(hist, func(m Message) bool { return m.Ref == r.Target && targetable(m.Type) && m.Seq > 0 })
		if i < 0 {
			continue
		}
		s := hist[i].Seq
		cs.DeliveredAck = max(cs.DeliveredAck, s)
		if r.Text == ReceiptRead {
			cs.ReadAck = max(cs.ReadAck, s)
			read = max(read, s)
		}
	}
	c.pend.convs[cs.ID] = cs
	if read == cs.ReadSeq {
		return nil
	}
	cs.ReadSeq = read
	cs.Unread = c.unreadAfter(hist, read)
	return nil
}

// unreadAfter counts the messages of a history view after seq that count
// as unread.
func (c *Client) unreadAfter(hist []Message, seq uint64) int {
	n := 0
	for _, m := range hist {
		if m.Seq > seq && c.countsUnread(m) {
			n++
		}
	}
	return n
}

// SetReadReceipts turns this device's read receipts on or off. Off, it
// sends delivered receipts only; the account's other devices keep their
// own setting (protocol.md §13.8).
func (c *Client) SetReadReceipts(on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := "off"
	if on {
		v = "on"
	}
	return c.st.Put(readReceiptsKey, []byte(v))
}

// ReadReceipts reports whether this device sends read receipts (the
// default).
func (c *Client) ReadReceipts() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readReceipts()
}

func (c *Client) readReceipts() (bool, error) {
	b, err := c.st.Get(readReceiptsKey)
	if errors.Is(err, ErrNoValue) {
		return true, nil
	}
	return string(b) != "off", err
}

// SendReceipts acknowledges, in each conversation given (in every
// conversation this device holds and has not left, if none is), the
// messages of other accounts that this account has not acknowledged yet:
// at most one read receipt, naming the newest message marked read
// (MarkRead, MarkReadThrough), unless read receipts are off; and at most
// one delivered receipt, naming the newest message held, when it is newer
// than that. One burst of messages thus costs one receipt per conversation,
// whatever its length. A conversation that needs a new epoch gets its
// receipts at a later call, once a message has made the epoch.
func (c *Client) SendReceipts(ctx context.Context, convs ...protocol.ConversationID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return err
	}
	readOn, err := c.readReceipts()
	if err != nil {
		return err
	}
	if len(convs) == 0 {
		held, err := c.storedConvs()
		if err != nil {
			return err
		}
		for _, cs := range held {
			convs = append(convs, cs.ID)
		}
	}
	var errs []error
	for _, id := range convs {
		cs, err := c.conv(id)
		if err != nil {
			return err
		}
		if cs == nil || cs.Left || cs.Request {
			continue // a request's sender is told nothing (requests.go)
		}
		hist, err := c.history(id)
		if err != nil {
			return err
		}
		var dlv, rd *Message
		for i := range hist {
			m := &hist[i]
			if !c.countsUnread(*m) || m.Seq == 0 || m.Ref == "" {
				continue
			}
			if m.Seq > cs.DeliveredAck {
				dlv = m
			}
			if readOn && m.Seq <= cs.ReadSeq && m.Seq > cs.ReadAck {
				rd = m
			}
		}
		if rd == nil && dlv == nil {
			continue
		}
		// A receipt does not make an epoch: while the conversation needs a
		// new one, it waits for the next message of a member to make it
		// (two members' receipts would race to, and one lose).
		if ca, err := c.conversationState(ctx, cs); err != nil {
			errs = append(errs, fmt.Errorf("receipts in %s: %w", id, err))
			continue
		} else if ca.RotationRequired {
			continue
		}
		if rd != nil {
			if _, err := c.send(ctx, cs, "", Content{Type: ContentReceipt, Text: ReceiptRead, Target: rd.Ref}); err != nil {
				errs = append(errs, fmt.Errorf("read receipt in %s: %w", id, err))
				continue
			}
		}
		if dlv != nil && (rd == nil || dlv.Seq > rd.Seq) {
			if _, err := c.send(ctx, cs, "", Content{Type: ContentReceipt, Text: ReceiptDelivered, Target: dlv.Ref}); err != nil {
				errs = append(errs, fmt.Errorf("delivered receipt in %s: %w", id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// sortReceipts moves the receipts of res.Messages to res.Receipts: they
// are not messages to show.
func (res *SyncResult) sortReceipts() {
	ms := res.Messages[:0]
	for _, m := range res.Messages {
		if m.Type == ContentReceipt {
			res.Receipts = append(res.Receipts, m)
		} else {
			ms = append(ms, m)
		}
	}
	res.Messages = ms
}

// OnReceipt sets a function that Listen calls, with the client locked
// (it must not call the client), for each receipt that comes: the
// DeliveredTo and ReadBy of messages in History may have changed.
func (c *Client) OnReceipt(f func(Message)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onReceipt = f
}

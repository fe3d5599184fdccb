package client

import (
	"context"
	"fmt"

	"sandi.dev/protocol"
)

// Message requests (protocol.md §16.1). Whether a conversation is a
// request is this device's decision, made once, when it first verifies the
// conversation's membership chain: the record that made this account a
// member was signed by an account that no other conversation this device
// holds (accepted, and not left) has as a member. The server is never asked
// who is a contact. A request stays one until the user accepts it, or this
// account sends in it (from any of its devices); until then its messages
// are not marked read, so nothing tells the sender they were seen.

// adder returns the author of the record by which this account last
// became a member of the conversation in cs (its creator for the genesis),
// and whether there is one.
func (c *Client) adder(cs *convState) (protocol.UserID, bool) {
	var by protocol.UserID
	found := false
	for _, enc := range cs.records {
		rec, err := protocol.ParseRecord(enc)
		if err != nil {
			continue // verified when stored
		}
		if rec.Op != protocol.OpCreate && rec.Op != protocol.OpAdd {
			continue
		}
		for _, m := range rec.Members {
			if m.User == c.acct.User {
				by, found = rec.Author, true
			}
		}
	}
	return by, found
}

// knows reports whether a conversation this device holds, other than skip,
// that is not a request and that this account has not left, has user as a
// member by its verified chain.
func (c *Client) knows(user protocol.UserID, skip protocol.ConversationID) (bool, error) {
	held, err := c.storedConvs()
	if err != nil {
		return false, err
	}
	for _, cs := range held {
		if cs.ID == skip || cs.chain == nil || cs.Request || cs.Left {
			continue
		}
		if _, ok := cs.chain.Member(user); ok {
			return true, nil
		}
	}
	return false, nil
}

// classify decides, the first time this device verifies the chain of cs,
// whether the conversation is a request. A conversation started by an
// account this device knows blocked is a request too, and an alarm: an
// honest server refuses it (§16.2).
func (c *Client) classify(cs *convState) error {
	by, ok := c.adder(cs)
	if !ok || by == c.acct.User {
		return nil
	}
	known, err := c.knows(by, cs.ID)
	if err != nil {
		return err
	}
	cs.Request = !known
	blocked, err := c.localBlocks()
	if err != nil {
		return err
	}
	if blocked[by] {
		cs.Request = true
		return c.raise(Alarm{Kind: AlarmServerData, Conversation: cs.ID, User: by,
			Detail: "a conversation was started by an account this account blocked; the server should have refused it. It is kept as a request"})
	}
	return nil
}

// accepted ends a request because this account sent in it.
func (cs *convState) accepted() { cs.Request = false }

// IsRequest reports whether the conversation is a message request on this
// device (see Requests).
func (c *Client) IsRequest(conv protocol.ConversationID) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.conv(conv)
	if err != nil || cs == nil {
		return false, err
	}
	return cs.Request, nil
}

// Requests lists the conversations that are message requests: started by
// an account this device shared no conversation with. Each has From set.
func (c *Client) Requests(ctx context.Context) ([]Conversation, error) {
	all, err := c.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	var out []Conversation
	for _, cv := range all {
		if cv.Request {
			out = append(out, cv)
		}
	}
	return out, nil
}

// request loads a conversation that is a message request.
func (c *Client) request(conv protocol.ConversationID) (*convState, error) {
	cs, err := c.conv(conv)
	if err != nil {
		return nil, err
	}
	if cs == nil || !cs.Request {
		return nil, fmt.Errorf("conversation %s is not a message request", conv)
	}
	return cs, nil
}

// Accept makes a request an ordinary conversation: its messages count as
// unread and are marked read as any others.
func (c *Client) Accept(conv protocol.ConversationID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.request(conv)
	if err != nil {
		return err
	}
	cs.Request = false
	return c.saveConv(cs)
}

// DeleteRequest leaves a request and drops what this device keeps of it:
// its history, its epoch keys and its membership chain.
func (c *Client) DeleteRequest(ctx context.Context, conv protocol.ConversationID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleteRequest(ctx, conv)
}

func (c *Client) deleteRequest(ctx context.Context, conv protocol.ConversationID) error {
	cs, err := c.request(conv)
	if err != nil {
		return err
	}
	if !cs.Left {
		if err := c.change(ctx, conv, protocol.OpLeave, nil, nil); err != nil {
			return fmt.Errorf("leave: %w", err)
		}
	}
	return c.drop(conv)
}

// drop deletes what this device keeps of a conversation.
func (c *Client) drop(conv protocol.ConversationID) error {
	keys := []string{convKey(conv), chainKey(conv), historyKey(conv), expiryKey(conv)}
	epochs, err := c.st.List("epoch/" + conv.String() + "/")
	if err != nil {
		return err
	}
	for _, k := range append(epochs, keys...) {
		if err := c.st.Delete(k); err != nil {
			return err
		}
	}
	delete(c.convs, conv)
	delete(c.pend.convs, conv)
	delete(c.pend.history, conv)
	delete(c.pend.actions, conv)
	for ref := range c.pend.epochs {
		if ref.conv == conv {
			delete(c.pend.epochs, ref)
		}
	}
	return nil
}

// BlockRequest blocks the account that started a request (Block) and
// deletes the request (DeleteRequest).
func (c *Client) BlockRequest(ctx context.Context, conv protocol.ConversationID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.request(conv)
	if err != nil {
		return err
	}
	by, ok := c.adder(cs)
	if !ok {
		return fmt.Errorf("conversation %s: no record added this account", conv)
	}
	if err := c.block(ctx, by); err != nil {
		return err
	}
	return c.deleteRequest(ctx, conv)
}

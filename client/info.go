package client

import (
	"context"
	"slices"

	"sandi.dev/protocol"
)

// SafetyNumber returns the 60-digit safety number (in groups of five) of
// this account and another, and the QR payload that encodes it. Both sides
// compute the same number; compare it in person or over a trusted channel.
// It is computed from the pinned keys (the keys conversations use), never
// from a server answer once a pin exists; on first contact the key the
// server gives is pinned first. A pending change is not shown here (see
// Contact).
func (c *Client) SafetyNumber(ctx context.Context, user string) (string, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.pinFor(ctx, user)
	if err != nil {
		return "", nil, err
	}
	n, qr := protocol.SafetyNumber(c.acct.User, c.id.Public(), p.User, p.Identity)
	return protocol.FormatSafetyNumber(n), qr, nil
}

// User is another account as the application shows it.
type User struct {
	ID       protocol.UserID `json:"id"`
	Username string          `json:"username"`
	Devices  int             `json:"devices"` // devices with keys
}

// FindUser looks an account up by username or id. Its identity key is
// pinned, or checked against the pin, as for any key the client meets (a
// change is an alarm and a warning; see the trust store).
func (c *Client) FindUser(ctx context.Context, nameOrID string) (User, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return User{}, err
	}
	u, err := c.lookup(ctx, nameOrID)
	if err != nil {
		return User{}, err
	}
	return User{ID: u.ID, Username: u.Username, Devices: len(u.Devices)}, nil
}

// Conversation is a conversation as the application lists it.
type Conversation struct {
	ID               protocol.ConversationID `json:"id"`
	Title            string                  `json:"title,omitempty"`
	Members          []string                `json:"members"` // usernames
	Epoch            uint64                  `json:"epoch"`
	RotationRequired bool                    `json:"rotationRequired"`
	Unread           int                     `json:"unread"`
	Last             *Message                `json:"last,omitempty"`
	// Admins are the members (usernames) who may add and remove members.
	Admins []string `json:"admins,omitempty"`
	// Status is "" for a conversation this account is a member of, and
	// "left" or "removed" for one it no longer is: kept read-only, with
	// the messages it received while it was a member.
	Status string `json:"status,omitempty"`
	// Timer is the disappearing-message timer in seconds (0: off), from
	// the state this device verified (disappear.go).
	Timer uint32 `json:"timer,omitempty"`
	// Request marks a message request (see Requests): From is the
	// username of the account that started it (or added this account).
	Request bool   `json:"request,omitempty"`
	From    string `json:"from,omitempty"`
}

// Conversations lists the conversations this account is a member of, with
// their verified members and state, then those it left or was removed
// from that this device kept (Status "left" or "removed").
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return nil, err
	}
	var list struct {
		Conversations []convAnswer `json:"conversations"`
	}
	if err := c.api.do(ctx, "GET", "/api/conversations", nil, &list); err != nil {
		return nil, err
	}
	out := make([]Conversation, 0, len(list.Conversations))
	listed := map[protocol.ConversationID]bool{}
	for _, ca := range list.Conversations {
		listed[ca.ID] = true
		cs, err := c.conv(ca.ID)
		if err != nil {
			return nil, err
		}
		if cs == nil {
			cs = c.newConv(ca.ID)
		}
		if cs.chain == nil || cs.chain.Seq != ca.ChainSeq {
			if err := c.syncChain(ctx, cs); err != nil {
				return nil, err
			}
		}
		if err := c.acceptState(ctx, cs, ca.State); err != nil {
			return nil, err
		}
		cv := Conversation{ID: ca.ID, Title: cs.title(), Epoch: ca.Epoch, RotationRequired: ca.RotationRequired, Unread: cs.Unread, Request: cs.Request, Timer: cs.timer()}
		if cs.Request {
			if by, ok := c.adder(cs); ok {
				cv.From = c.displayName(ctx, by)
			}
		}
		c.describeMembers(ctx, cs, &cv)
		out = append(out, cv)
	}
	kept, err := c.formerConversations(ctx, listed)
	return append(out, kept...), err
}

func (c *Client) describeMembers(ctx context.Context, cs *convState, cv *Conversation) {
	for _, m := range cs.chain.Members() {
		name := c.usernameOf(ctx, m.User)
		cv.Members = append(cv.Members, name)
		if m.Role == protocol.RoleAdmin {
			cv.Admins = append(cv.Admins, name)
		}
	}
	slices.Sort(cv.Members)
	slices.Sort(cv.Admins)
}

// formerConversations returns the conversations this device holds that
// the server does not list (this account left them or was removed), read
// from storage only: the server has nothing more to say about them.
func (c *Client) formerConversations(ctx context.Context, listed map[protocol.ConversationID]bool) ([]Conversation, error) {
	held, err := c.storedConvs()
	if err != nil {
		return nil, err
	}
	var out []Conversation
	for _, cs := range held {
		id := cs.ID
		if listed[id] || cs.chain == nil {
			continue
		}
		if _, member := cs.chain.Member(c.acct.User); member && !cs.Left {
			continue // not listed, yet a member by the chain this device verified: not shown as left
		}
		cv := Conversation{ID: id, Title: cs.title(), Epoch: cs.Epoch, Unread: cs.Unread, Status: "removed", Timer: cs.timer()}
		if last, err := protocol.ParseRecord(cs.records[len(cs.records)-1]); err == nil && last.Op == protocol.OpLeave && last.Author == c.acct.User {
			cv.Status = "left"
		}
		c.describeMembers(ctx, cs, &cv)
		out = append(out, cv)
	}
	return out, nil
}

// FindConversation resolves a conversation id, a unique prefix of it or a
// title among the account's conversations (see MatchConversation).
func (c *Client) FindConversation(ctx context.Context, s string) (protocol.ConversationID, error) {
	if id, err := protocol.ParseConversationID(s); err == nil {
		return id, nil
	}
	convs, err := c.Conversations(ctx)
	if err != nil {
		return protocol.ConversationID{}, err
	}
	return MatchConversation(convs, s)
}

// MarkRead marks every message of a conversation received so far as read:
// its unread count is reset.
func (c *Client) MarkRead(id protocol.ConversationID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.conv(id)
	if err != nil || cs == nil || cs.Request {
		return err // a request's messages stay unread until it is accepted
	}
	cs.Unread, cs.ReadSeq = 0, max(cs.ReadSeq, cs.LastSeq)
	return c.saveConv(cs)
}

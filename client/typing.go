package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Typing notices (protocol.md §13.9) say that a member is typing. They are
// encrypted under a key of the conversation's epoch and signed like
// messages, posted to the server, which relays them to the live
// connections of the other members and stores nothing. A device shows one
// for TypingShown at most, and ignores one whose time is further than
// MaxTypingSkew from its own clock (the server replaying an old one).

// Timing of typing notices, in milliseconds.
const (
	// TypingEvery is how often a client that keeps typing sends a notice
	// again; TypingShown, how long a receiver shows one without news.
	TypingEvery = 3_000
	TypingShown = 6_000
	// MaxTypingSkew is the largest difference between a notice's time and
	// the receiver's clock that it accepts.
	MaxTypingSkew = 30_000
)

// Typing is a typing notice that came: User (Username) is typing in
// Conversation, or stopped (Typing false), at At (its clock, Unix ms).
type Typing struct {
	Conversation protocol.ConversationID `json:"conversation"`
	User         protocol.UserID         `json:"user"`
	Username     string                  `json:"username"`
	Device       protocol.DeviceID       `json:"device"`
	Typing       bool                    `json:"typing"`
	At           int64                   `json:"at"`
}

// ErrNoEpoch: this device holds no epoch of the conversation to speak in.
var ErrNoEpoch = errors.New("this device holds no key of this conversation yet")

// typingKey returns the typing key of epoch n of cs, nil if this device
// does not hold it (or holds it from before state keys).
func (c *Client) typingKey(cs *convState, n uint64) (*secret.TypingKey, *epochEntry, error) {
	e, err := c.loadEpoch(cs, n)
	if err != nil || e == nil || e.StateKey == nil {
		return nil, nil, err
	}
	sk := secret.StateKey(e.StateKey)
	k, err := secret.DeriveTypingKey(&sk)
	if err != nil {
		return nil, nil, err
	}
	return &k, e, nil
}

// SendTyping tells the members of conv that are online that this account
// is typing (or stopped). Clients send it when typing starts, again every
// TypingEvery while it goes on, and with typing false when the text is
// sent or cleared. In a message request nothing is sent (a notice would
// tell its sender that the request was opened), as no receipt is.
func (c *Client) SendTyping(ctx context.Context, conv protocol.ConversationID, typing bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return err
	}
	cs, err := c.conv(conv)
	if err != nil {
		return err
	}
	if cs == nil || cs.Left {
		return ErrNoEpoch
	}
	if cs.Request {
		return nil
	}
	k, _, err := c.typingKey(cs, cs.Epoch)
	if err != nil {
		return err
	}
	if k == nil {
		return ErrNoEpoch
	}
	h := protocol.TypingHeader{Conversation: conv, Epoch: cs.Epoch, Sender: protocol.DeviceRef{User: c.acct.User, Device: c.acct.Device}}
	n, err := secret.SealTyping(c.id, k, h, typing, c.now().UnixMilli())
	if err != nil {
		return err
	}
	return c.api.do(ctx, "POST", "/api/conversations/"+conv.String()+"/typing", map[string]any{"notice": b64(n.Marshal())}, nil)
}

// OnTyping sets a function that Listen calls, with the client locked (it
// must not call the client), for each typing notice of another account
// that verifies.
func (c *Client) OnTyping(f func(Typing)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onTyping = f
}

// typingPrefix starts the WebSocket frames that carry a typing notice.
var typingPrefix = []byte(`{"typing":`)

// typingFrame handles a WebSocket frame that carries a typing notice
// (reporting false for any other frame): it opens the notice and hands it
// to onTyping. One that does not verify raises an alarm (once per
// conversation and run) and is dropped; one of an epoch this device does
// not hold, of this account, of a sender that is no longer a member, or
// too old, is dropped.
func (c *Client) typingFrame(ctx context.Context, data []byte) (bool, error) {
	if !bytes.HasPrefix(data, typingPrefix) {
		return false, nil
	}
	var f struct {
		Typing struct {
			Notice b64 `json:"notice"`
		} `json:"typing"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return true, fmt.Errorf("websocket frame: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.openTyping(ctx, f.Typing.Notice)
	if err != nil || t == nil || c.onTyping == nil {
		return true, err
	}
	c.onTyping(*t)
	return true, nil
}

func (c *Client) openTyping(ctx context.Context, b []byte) (*Typing, error) {
	n, err := protocol.ParseTyping(b)
	if err != nil {
		return nil, nil // the server's to answer for; nothing to show
	}
	if n.Sender.User == c.acct.User {
		return nil, nil
	}
	cs, err := c.conv(n.Conversation)
	if err != nil || cs == nil || cs.Left {
		return nil, err
	}
	k, e, err := c.typingKey(cs, n.Epoch)
	if errors.Is(err, ErrExpired) || err == nil && k == nil {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	id, ok := e.Identities[n.Sender.User]
	if !ok {
		return nil, nil
	}
	// A notice speaks for a member of the chain this device has verified:
	// a removed member still holds the epochs it was in, and a server that
	// keeps it in its table relays its notices.
	if cs.chain == nil {
		return nil, nil
	}
	if _, ok := cs.chain.Member(n.Sender.User); !ok {
		return nil, nil
	}
	if c.refuseUnaccepted(n.Sender.User, id, cs.ID, "a typing notice") != nil {
		return nil, nil
	}
	typing, at, err := secret.OpenTyping(k, n, id)
	if err != nil {
		detail := fmt.Sprintf("A typing notice said to be from a member in epoch %d does not verify: %v", n.Epoch, err)
		return nil, c.alarmOnce(cs, "typing", Alarm{Kind: AlarmBadSignature, User: n.Sender.User, Detail: detail})
	}
	if d := at - c.now().UnixMilli(); d > MaxTypingSkew || d < -MaxTypingSkew {
		return nil, nil
	}
	return &Typing{Conversation: cs.ID, User: n.Sender.User, Username: c.displayName(ctx, n.Sender.User), Device: n.Sender.Device, Typing: typing, At: at}, nil
}

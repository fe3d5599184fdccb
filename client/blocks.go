package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Block lists (protocol.md §16.2). The account's list is kept by the
// server, which refuses a conversation or a member addition by a blocked
// account. Each block and unblock is a statement signed by the account's
// identity key; the device keeps the newest statement it verified per
// other account (storage key "blocks.v1") and, from them, the set of
// accounts it holds blocked (storage key "blocks"), so that a conversation
// from a blocked account that a server lets through is still a request,
// and an alarm. A server can neither lift a block nor add one: it can only
// serve statements, which the device takes when they verify and are newer
// than the ones it holds.

const (
	blocksKey          = "blocks"
	blockStatementsKey = "blocks.v1"
)

// Blocked is one entry of the account's block list.
type Blocked struct {
	User     protocol.UserID `json:"user"`
	Username string          `json:"username"`
	// CreatedAt is when the block was made, Unix milliseconds: the signing
	// device's clock (the server's for a block made without a statement).
	CreatedAt int64 `json:"createdAt"`
}

// heldBlock is the newest statement this device verified about one
// account, with that account's username as the server last gave it.
type heldBlock struct {
	Statement b64    `json:"statement"`
	Username  string `json:"username,omitempty"`
	st        *protocol.Block
}

// localBlocks reads the set of accounts this device holds blocked.
func (c *Client) localBlocks() (map[protocol.UserID]bool, error) {
	out := map[protocol.UserID]bool{}
	b, err := c.st.Get(blocksKey)
	if errors.Is(err, ErrNoValue) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []protocol.UserID
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("stored blocks: %w", err)
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

func (c *Client) saveBlocks(set map[protocol.UserID]bool) error {
	ids := make([]protocol.UserID, 0, len(set))
	for id, blocked := range set {
		if blocked {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, compareIDs)
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	return c.st.Put(blocksKey, b)
}

// parseHeldBlocks decodes stored (or transferred) statements strictly:
// each one parses, is about the account its key names, and is this
// account's.
func parseHeldBlocks(b []byte, user protocol.UserID) (map[protocol.UserID]*heldBlock, error) {
	held := map[protocol.UserID]*heldBlock{}
	if err := json.Unmarshal(b, &held); err != nil {
		return nil, err
	}
	for id, h := range held {
		if h == nil {
			return nil, fmt.Errorf("no statement about %s", id)
		}
		st, err := protocol.ParseBlock(h.Statement)
		if err != nil {
			return nil, err
		}
		if st.Other != id || st.User != user {
			return nil, fmt.Errorf("a statement of %s about %s kept as %s's", st.User, st.Other, id)
		}
		h.st = st
	}
	return held, nil
}

// heldBlocks reads the statements this device holds.
func (c *Client) heldBlocks() (map[protocol.UserID]*heldBlock, error) {
	b, err := c.st.Get(blockStatementsKey)
	if errors.Is(err, ErrNoValue) {
		return map[protocol.UserID]*heldBlock{}, nil
	}
	if err != nil {
		return nil, err
	}
	held, err := parseHeldBlocks(b, c.acct.User)
	if err != nil {
		return nil, fmt.Errorf("stored block statements: %w", err)
	}
	return held, nil
}

// holdBlocks stores held and the set of accounts it blocks, with the
// blocks of set that no statement covers (made before statements).
func (c *Client) holdBlocks(held map[protocol.UserID]*heldBlock, set map[protocol.UserID]bool) error {
	for id, h := range held {
		set[id] = h.st.Blocked
	}
	b, err := json.Marshal(held)
	if err != nil {
		return err
	}
	if err := c.st.Put(blockStatementsKey, b); err != nil {
		return err
	}
	return c.saveBlocks(set)
}

// Block adds a user (username or user id) to the account's block list:
// the server then refuses that user's new conversations with this account
// and its additions of this account to conversations. Conversations
// already shared are left as they are (leave them to part).
func (c *Client) Block(ctx context.Context, user string) error {
	return c.onUser(ctx, user, func(u *userInfo) error { return c.setBlock(ctx, u.ID, u.Username, true, true) })
}

func (c *Client) block(ctx context.Context, id protocol.UserID) error {
	return c.setBlock(ctx, id, "", true, true)
}

// Unblock removes a user from the account's block list.
func (c *Client) Unblock(ctx context.Context, user string) error {
	return c.onUser(ctx, user, func(u *userInfo) error {
		set, err := c.localBlocks()
		if err != nil {
			return err
		}
		if !set[u.ID] {
			// Blocked from another device of the account, perhaps, or
			// by a device before statements (which the server enforces).
			if _, err := c.fetchBlocks(ctx); err != nil {
				return err
			}
			if set, err = c.localBlocks(); err != nil {
				return err
			}
		}
		if !set[u.ID] {
			served, err := c.servedBlocks(ctx)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(served.Blocks, func(b servedBlock) bool { return b.User == u.ID }) {
				return fmt.Errorf("%s is not blocked", u.Username)
			}
		}
		return c.setBlock(ctx, u.ID, u.Username, false, true)
	})
}

// onUser looks user (username or user id) up and calls f with it, the
// client locked.
func (c *Client) onUser(ctx context.Context, user string, f func(*userInfo) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return err
	}
	u, err := c.lookup(ctx, user)
	if err != nil {
		return err
	}
	return f(u)
}

// setBlock signs a statement that this account blocks id, or no longer
// does, sends it, and holds it. Its time is this device's clock, or one
// millisecond past the newest statement held about id, so that it holds
// over that one. A server that holds a newer statement (another device's)
// refuses it: the device then fetches the list and signs once more, past
// what it verified there.
// With retry false it does not (a block signed in passing).
func (c *Client) setBlock(ctx context.Context, id protocol.UserID, username string, blocked, retry bool) error {
	if id == c.acct.User {
		return errors.New("an account cannot block itself")
	}
	if c.id == nil {
		return errors.New("this device holds no keys yet: link it first")
	}
	for try := 0; ; try++ {
		held, err := c.heldBlocks()
		if err != nil {
			return err
		}
		st := &protocol.Block{User: c.acct.User, Other: id, Blocked: blocked, Time: c.now().UnixMilli()}
		if h := held[id]; h != nil && st.Time <= h.st.Time {
			st.Time = h.st.Time + 1
		}
		secret.SignBlock(c.id, st)
		err = c.api.do(ctx, "POST", "/api/blocks", map[string]any{"statement": b64(st.Marshal())}, nil)
		if IsCode(err, "conflict") && retry && try == 0 {
			if _, err := c.fetchBlocks(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if h := held[id]; h != nil && username == "" {
			username = h.Username
		}
		held[id] = &heldBlock{Statement: st.Marshal(), Username: username, st: st}
		set, err := c.localBlocks()
		if err != nil {
			return err
		}
		return c.holdBlocks(held, set)
	}
}

// servedBlock is an entry of GET /api/blocks.
type servedBlock struct {
	User      protocol.UserID `json:"user"`
	Username  string          `json:"username"`
	CreatedAt int64           `json:"createdAt"`
	Statement b64             `json:"statement"`
}

type servedList struct {
	Blocks   []servedBlock `json:"blocks"`
	Unblocks []servedBlock `json:"unblocks"`
}

// servedBlocks is the block list as the server serves it, unchecked.
func (c *Client) servedBlocks(ctx context.Context) (*servedList, error) {
	var out servedList
	if err := c.api.do(ctx, "GET", "/api/blocks", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Blocks returns the account's block list: the blocks this device holds,
// merged with the statements the server serves (so that blocks and
// unblocks made on the account's other devices apply here as well).
func (c *Client) Blocks(ctx context.Context) ([]Blocked, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return nil, err
	}
	return c.fetchBlocks(ctx)
}

// fetchBlocks merges what the server serves into what this device holds
// (§16.2): a statement that verifies under the account's identity key and
// holds over the held one replaces it; one that does not verify, an older
// one, a block served without a statement that this device does not hold,
// and a held block the server no longer serves each raise an alarm and
// change nothing. Blocks this device holds without a statement (made
// before statements) are signed now. The caller holds c.mu.
func (c *Client) fetchBlocks(ctx context.Context) ([]Blocked, error) {
	out, err := c.servedBlocks(ctx)
	if err != nil {
		return nil, err
	}
	if c.id == nil {
		// A device without keys cannot verify (nor sign): the list as
		// served.
		bl := make([]Blocked, 0, len(out.Blocks))
		for _, b := range out.Blocks {
			bl = append(bl, Blocked{User: b.User, Username: b.Username, CreatedAt: b.CreatedAt})
		}
		return bl, nil
	}
	held, err := c.heldBlocks()
	if err != nil {
		return nil, err
	}
	set, err := c.localBlocks()
	if err != nil {
		return nil, err
	}
	names := map[protocol.UserID]string{}
	verified := map[protocol.UserID]bool{}
	current := map[protocol.UserID]bool{} // the server holds what this device holds
	for _, e := range slices.Concat(out.Blocks, out.Unblocks) {
		names[e.User] = e.Username
		if len(e.Statement) == 0 {
			if !set[e.User] && slices.ContainsFunc(out.Blocks, func(b servedBlock) bool { return b.User == e.User }) {
				err = c.blockAlarm(e.User, "lists %s as blocked without a statement this account signed; this device does not take it (a device of an older version may have made it: block the account again to sign it)")
			}
		} else if st, perr := protocol.ParseBlock(e.Statement); perr != nil || st.Verify(c.acct.User, e.User, c.id.Public()) != nil {
			err = c.blockAlarm(e.User, "served a block statement about %s that this account did not sign; this device ignores it")
		} else {
			verified[e.User] = true
			h := held[e.User]
			switch {
			case h == nil || st.Newer(h.st):
				held[e.User] = &heldBlock{Statement: st.Marshal(), Username: e.Username, st: st}
				current[e.User] = true
			case string(h.Statement) == string(e.Statement):
				current[e.User] = true
			default:
				err = c.blockAlarm(e.User, "served an older block statement about %s than the one this device holds; this device keeps the newer")
			}
		}
		if err != nil {
			return nil, err
		}
	}
	for id, h := range held {
		if h.st.Blocked && !verified[id] {
			if err := c.blockAlarm(id, "no longer serves this account's signed block of %s; this device keeps it blocked"); err != nil {
				return nil, err
			}
		}
		if h.Username == "" {
			h.Username = names[id]
		}
	}
	if err := c.holdBlocks(held, set); err != nil {
		return nil, err
	}
	// Blocks from before statements: signed now, so the account's other
	// devices take them. A failure leaves them held, signed next time.
	for id, blocked := range set {
		if blocked && held[id] == nil {
			_ = c.setBlock(ctx, id, names[id], true, false)
		}
	}
	// Statements the server lost (a database restored from a backup, say)
	// or replaced by older ones: sent again, so that it enforces them
	// again. One it refuses is left; the device holds it all the same.
	for id, h := range held {
		if !current[id] {
			_ = c.api.do(ctx, "POST", "/api/blocks", map[string]any{"statement": h.Statement}, nil)
		}
	}
	return c.blockedList(names)
}

// blockedList is the list of the accounts this device holds blocked,
// oldest first, named as held or else as names gives them.
func (c *Client) blockedList(names map[protocol.UserID]string) ([]Blocked, error) {
	held, err := c.heldBlocks()
	if err != nil {
		return nil, err
	}
	set, err := c.localBlocks()
	if err != nil {
		return nil, err
	}
	out := make([]Blocked, 0, len(set))
	for id := range set {
		b := Blocked{User: id, Username: names[id]}
		if h := held[id]; h != nil {
			b.CreatedAt = h.st.Time
			if h.Username != "" {
				b.Username = h.Username
			}
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Blocked) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), compareIDs(a.User, b.User))
	})
	return out, nil
}

// blockAlarm raises a server_data alarm about the block list entry of id
// (format names id), once per misbehaviour: the same again raises nothing.
func (c *Client) blockAlarm(id protocol.UserID, format string) error {
	detail := "the server " + fmt.Sprintf(format, id)
	key := "blockalarm/" + id.String()
	if b, err := c.st.Get(key); err == nil && string(b) == detail {
		return nil
	}
	if err := c.raise(Alarm{Kind: AlarmServerData, User: id, Detail: detail}); err != nil {
		return err
	}
	return c.st.Put(key, []byte(detail))
}

// resignBlocks signs every statement this device holds again under the
// account's current identity key, after an identity reset (which deletes
// the statements the replaced key signed from the server), with the
// blocks it holds without one. A failure leaves the rest for the next
// fetch (blocks) or the next unblock.
func (c *Client) resignBlocks(ctx context.Context) {
	held, err := c.heldBlocks()
	if err != nil {
		return
	}
	set, err := c.localBlocks()
	if err != nil {
		return
	}
	for id, h := range held {
		set[id] = h.st.Blocked
	}
	for id, blocked := range set {
		name := ""
		if h := held[id]; h != nil {
			name = h.Username
		}
		_ = c.setBlock(ctx, id, name, blocked, false)
	}
}

// mergeBlockStatements is the union of two stored statement sets, the
// newer statement where both hold one about an account.
func mergeBlockStatements(theirs, mine []byte, user protocol.UserID) ([]byte, error) {
	t, err := parseHeldBlocks(theirs, user)
	if err != nil {
		return nil, fmt.Errorf("block statements: %w", err)
	}
	m, err := parseHeldBlocks(mine, user)
	if err != nil {
		return theirs, nil // a stored set that does not parse is replaced
	}
	for id, h := range m {
		if th := t[id]; th == nil || h.st.Newer(th.st) {
			t[id] = h
		}
	}
	return json.Marshal(t)
}

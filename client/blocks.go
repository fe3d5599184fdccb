package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"sandi.dev/protocol"
)

// Block lists (protocol.md §16.2). The account's list is kept by the
// server, which refuses a conversation or a member addition by a blocked
// account; each device also keeps the blocks it made or fetched (storage
// key "blocks"), so that a conversation from a blocked account that a
// server lets through is still a request, and an alarm.

const blocksKey = "blocks"

// Blocked is one entry of the account's block list.
type Blocked struct {
	User      protocol.UserID `json:"user"`
	Username  string          `json:"username"`
	CreatedAt int64           `json:"createdAt"` // Unix milliseconds, the server's clock
}

// localBlocks reads the blocks this device keeps.
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
	for id := range set {
		ids = append(ids, id)
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	return c.st.Put(blocksKey, b)
}

// Block adds a user (username or user id) to the account's block list:
// the server then refuses that user's new conversations with this account
// and its additions of this account to conversations. Conversations
// already shared are left as they are (leave them to part).
func (c *Client) Block(ctx context.Context, user string) error {
	return c.onUser(ctx, user, func(u *userInfo) error { return c.block(ctx, u.ID) })
}

func (c *Client) block(ctx context.Context, id protocol.UserID) error {
	if id == c.acct.User {
		return errors.New("an account cannot block itself")
	}
	if err := c.api.do(ctx, "POST", "/api/blocks", map[string]any{"user": id}, nil); err != nil {
		return err
	}
	return c.keepBlock(id, true)
}

// Unblock removes a user from the account's block list.
func (c *Client) Unblock(ctx context.Context, user string) error {
	return c.onUser(ctx, user, func(u *userInfo) error {
		err := c.api.do(ctx, "DELETE", "/api/blocks/"+u.ID.String(), nil, nil)
		if IsCode(err, "not_found") {
			return fmt.Errorf("%s is not blocked", u.Username)
		}
		if err != nil {
			return err
		}
		return c.keepBlock(u.ID, false)
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

// keepBlock records on this device that id is blocked, or no longer.
func (c *Client) keepBlock(id protocol.UserID, blocked bool) error {
	set, err := c.localBlocks()
	if err != nil {
		return err
	}
	if blocked {
		set[id] = true
	} else {
		delete(set, id)
	}
	return c.saveBlocks(set)
}

// Blocks returns the account's block list as the server keeps it, and
// keeps it on this device too, in place of what it held (so blocks and
// unblocks made on the account's other devices apply here as well).
func (c *Client) Blocks(ctx context.Context) ([]Blocked, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return nil, err
	}
	var out struct {
		Blocks []Blocked `json:"blocks"`
	}
	if err := c.api.do(ctx, "GET", "/api/blocks", nil, &out); err != nil {
		return nil, err
	}
	set := map[protocol.UserID]bool{}
	for _, b := range out.Blocks {
		set[b.User] = true
	}
	if err := c.saveBlocks(set); err != nil {
		return nil, err
	}
	return out.Blocks, nil
}

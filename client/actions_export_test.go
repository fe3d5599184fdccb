package client

import (
	"context"

	"sandi.dev/protocol"
)

// SendContent sends any content, checked by nothing: how a test plays a
// malicious member whose client does not keep the rules of actions.go.
func (c *Client) SendContent(ctx context.Context, conv protocol.ConversationID, ct Content) (Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.conv(conv)
	if err != nil {
		return Message{}, err
	}
	return c.send(ctx, cs, "", ct)
}

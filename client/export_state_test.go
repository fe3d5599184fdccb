package client

import (
	"context"

	"sandi.dev/protocol"
)

// SendLegacyTitle sends a title as a message, as clients from before
// conversation states did (for the compatibility tests of package
// client_test).
func (c *Client) SendLegacyTitle(ctx context.Context, conv protocol.ConversationID, title string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.conv(conv)
	if err != nil {
		return err
	}
	_, err = c.send(ctx, cs, "", Content{Type: ContentTitle, Text: title})
	return err
}

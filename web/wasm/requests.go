//go:build js && wasm

package main

import (
	"context"
	"syscall/js"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// requestFuncs are the page's calls for message requests, blocks and
// device names (protocol.md §16, §12.5).
func (a *app) requestFuncs() map[string]func(args []js.Value) (any, error) {
	// onConv calls f with the conversation id args[0], onUser with the
	// username or user id args[0].
	onConv := func(f func(*client.Client, context.Context, protocol.ConversationID) error) func(args []js.Value) (any, error) {
		return func(args []js.Value) (any, error) {
			id, err := conv(args)
			if err != nil {
				return nil, err
			}
			return a.with(func(ctx context.Context, c *client.Client) (any, error) { return nil, f(c, ctx, id) })
		}
	}
	onUser := func(f func(*client.Client, context.Context, string) error) func(args []js.Value) (any, error) {
		return func(args []js.Value) (any, error) {
			return a.with(func(ctx context.Context, c *client.Client) (any, error) { return nil, f(c, ctx, str(args, 0)) })
		}
	}
	return map[string]func(args []js.Value) (any, error){
		// acceptRequest(conv), deleteRequest(conv), blockRequest(conv)
		"acceptRequest": onConv(func(c *client.Client, _ context.Context, id protocol.ConversationID) error { return c.Accept(id) }),
		"deleteRequest": onConv((*client.Client).DeleteRequest),
		"blockRequest":  onConv((*client.Client).BlockRequest),
		// block(user), unblock(user): a username or user id.
		"block":   onUser((*client.Client).Block),
		"unblock": onUser((*client.Client).Unblock),
		"blocks": func([]js.Value) (any, error) {
			return a.with(func(ctx context.Context, c *client.Client) (any, error) { return c.Blocks(ctx) })
		},
		// renameDevice(id, name)
		"renameDevice": func(args []js.Value) (any, error) {
			return a.with(func(ctx context.Context, c *client.Client) (any, error) {
				id, err := c.RenameDevice(ctx, str(args, 0), str(args, 1))
				return id.String(), err
			})
		},
	}
}

//go:build js && wasm

package main

import (
	"context"
	"syscall/js"

	"sandi.dev/client"
)

// requestFuncs are the page's calls for message requests, blocks and
// device names (protocol.md §16, §12.5).
func (a *app) requestFuncs() map[string]func(args []js.Value) (any, error) {
	onConv := func(f func(ctx context.Context, c *client.Client, args []js.Value) error) func(args []js.Value) (any, error) {
		return func(args []js.Value) (any, error) {
			return a.with(func(ctx context.Context, c *client.Client) (any, error) { return nil, f(ctx, c, args) })
		}
	}
	return map[string]func(args []js.Value) (any, error){
		// acceptRequest(conv), deleteRequest(conv), blockRequest(conv)
		"acceptRequest": onConv(func(ctx context.Context, c *client.Client, args []js.Value) error {
			id, err := conv(args)
			if err != nil {
				return err
			}
			return c.Accept(id)
		}),
		"deleteRequest": onConv(func(ctx context.Context, c *client.Client, args []js.Value) error {
			id, err := conv(args)
			if err != nil {
				return err
			}
			return c.DeleteRequest(ctx, id)
		}),
		"blockRequest": onConv(func(ctx context.Context, c *client.Client, args []js.Value) error {
			id, err := conv(args)
			if err != nil {
				return err
			}
			return c.BlockRequest(ctx, id)
		}),
		// block(user), unblock(user): a username or user id.
		"block": onConv(func(ctx context.Context, c *client.Client, args []js.Value) error {
			return c.Block(ctx, str(args, 0))
		}),
		"unblock": onConv(func(ctx context.Context, c *client.Client, args []js.Value) error {
			return c.Unblock(ctx, str(args, 0))
		}),
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

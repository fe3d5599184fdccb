//go:build js && wasm

package main

import (
	"context"
	"syscall/js"

	"sandi.dev/client"
)

// sendReceipts(conv?) acknowledges what this device holds and read, in
// conv or in every conversation (protocol.md §13.8).
func (a *app) sendReceipts(args []js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		if str(args, 0) == "" {
			return nil, c.SendReceipts(ctx)
		}
		id, err := conv(args)
		if err != nil {
			return nil, err
		}
		return nil, c.SendReceipts(ctx, id)
	})
}

// typing(conv, on) tells the conversation's members online that this
// account is typing, or stopped (protocol.md §13.9).
func (a *app) typing(args []js.Value) (any, error) {
	c, id, err := a.inConv(args)
	if err != nil {
		return nil, err
	}
	ctx, cancel := ctx()
	defer cancel()
	return nil, c.SendTyping(ctx, id, len(args) > 1 && args[1].Truthy())
}

// readReceipts(on?) reports this device's read-receipt setting, after
// setting it when on is given.
func (a *app) readReceipts(args []js.Value) (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	if len(args) > 0 && args[0].Type() == js.TypeBoolean {
		if err := c.SetReadReceipts(args[0].Bool()); err != nil {
			return nil, err
		}
	}
	return c.ReadReceipts()
}

// liveReceipts hands the receipts and typing notices that Listen brings to
// onReceipt({conversation, own}) and onTyping({conversation, username,
// typing}) when the page gave them. own: a receipt of this account's
// (another device read: the unread counts changed).
func liveReceipts(c *client.Client, onReceipt, onTyping js.Value) {
	self := c.UserID() // the callbacks run with the client locked
	if onReceipt.Type() == js.TypeFunction {
		c.OnReceipt(func(m client.Message) {
			onReceipt.Invoke(toJS(map[string]any{"conversation": m.Conversation, "own": m.SenderID == self}))
		})
	}
	if onTyping.Type() == js.TypeFunction {
		c.OnTyping(func(t client.Typing) { onTyping.Invoke(toJS(t)) })
	}
}

// arg is args[i], or undefined.
func arg(args []js.Value, i int) js.Value {
	if i >= len(args) {
		return js.Undefined()
	}
	return args[i]
}

//go:build js && wasm

package main

import (
	"fmt"
	"syscall/js"

	"sandi.dev/client"
)

// act(conv, kind, targetRef, text) sends a reply, reaction, edit or delete
// (protocol.md §13.7) about the message targetRef: kind is "reply",
// "reaction" (text the emoji, "" to remove), "edit" or "delete". A refusal
// of the SDK's rules carries code "not_yours" or "unknown_message"
// (jsError).
func (a *app) act(args []js.Value) (any, error) {
	c, id, err := a.inConv(args)
	if err != nil {
		return nil, err
	}
	ctx, cancel := ctx()
	defer cancel()
	target, text := str(args, 2), str(args, 3)
	var m client.Message
	switch str(args, 1) {
	case client.ContentReply:
		m, err = c.Reply(ctx, id, target, text)
	case client.ContentReaction:
		m, err = c.React(ctx, id, target, text)
	case client.ContentEdit:
		m, err = c.Edit(ctx, id, target, text)
	case client.ContentDelete:
		m, err = c.Delete(ctx, id, target)
	default:
		return nil, fmt.Errorf("not an action: %q", str(args, 1))
	}
	if err != nil {
		return nil, err
	}
	if m.Type == client.ContentReply {
		a.noteLast(id, &m)
	}
	return view(m), nil
}

// isAction: a reaction, edit or delete, which changes an earlier message
// and is not itself one of the conversation's messages.
func isAction(m client.Message) bool {
	return m.Type == client.ContentReaction || m.Type == client.ContentEdit || m.Type == client.ContentDelete
}

//go:build js && wasm

package main

import (
	"syscall/js"

	"sandi.dev/client"
)

// act(conv, kind, targetRef, text, clientId) sends a reply, reaction, edit
// or delete (protocol.md §13.7) about the message targetRef: kind is
// "reply", "reaction" (text the emoji, "" to remove), "edit" or "delete".
// A page that retries an action passes the first attempt's clientId, so
// the server stores it once; without one, each call is a new action. A
// refusal of the SDK's rules carries code "not_yours" or "unknown_message"
// (jsError).
func (a *app) act(args []js.Value) (any, error) {
	c, id, err := a.inConv(args)
	if err != nil {
		return nil, err
	}
	ctx, cancel := ctx()
	defer cancel()
	m, err := c.ActWithID(ctx, id, str(args, 4), str(args, 1), str(args, 2), str(args, 3))
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

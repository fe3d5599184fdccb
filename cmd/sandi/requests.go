package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// Message requests and blocks (protocol.md §16): 'sandi requests' lists the
// conversations started by accounts this device shared no conversation
// with; accept, delete or block one; 'sandi block', 'unblock' and 'blocked'
// manage the account's block list.

func cmdRequests(ctx context.Context, e *cli, args []string) error {
	if len(args) == 0 {
		if err := e.open(); err != nil {
			return err
		}
		reqs, err := e.c.Requests(ctx)
		if err != nil {
			return err
		}
		if len(reqs) == 0 && !e.g.json {
			return e.out(nil, "no message requests")
		}
		for _, cv := range reqs {
			title := untrusted(cv.Title)
			if title == "" {
				title = "-"
			}
			line := fmt.Sprintf("%s  from %s  %-20s  %s  (%d unread)", cv.ID, untrustedName(cv.From), title, untrustedList(cv.Members), cv.Unread)
			if err := e.out(cv, e.wrap(line)); err != nil {
				return err
			}
		}
		return nil
	}
	const use = "usage: sandi requests [accept|delete|block CONV]"
	if len(args) != 2 {
		return usageError{use}
	}
	id, err := e.conv(ctx, args[1])
	if err != nil {
		return err
	}
	var done string
	switch args[0] {
	case "accept":
		err, done = e.c.Accept(id), "accepted"
	case "delete":
		err, done = e.c.DeleteRequest(ctx, id), "deleted"
	case "block":
		err, done = e.c.BlockRequest(ctx, id), "blocked its sender and deleted"
		if err != nil {
			return blockError("the sender of request "+id.String(), err)
		}
	default:
		return usageError{use}
	}
	if err != nil {
		return err
	}
	return e.out(map[string]any{"conversation": id, args[0]: true}, done+" the request "+id.String())
}

// blockError says what a refused block means where the user can act on
// it: a full block list is the server's limit, which unblocking does not
// lift (the server keeps each unblock, protocol.md §16.2).
func blockError(who string, err error) error {
	if client.IsCode(err, "too_many_blocks") {
		return fmt.Errorf("cannot block %s: your block list is full; unblocking does not make room (the server keeps each unblock): %w", who, err)
	}
	return err
}

func cmdBlock(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi block USER"}
	}
	if err := e.open(); err != nil {
		return err
	}
	who := untrustedName(args[0])
	if err := e.c.Block(ctx, args[0]); err != nil {
		return blockError(who, err)
	}
	return e.out(map[string]any{"user": args[0], "blocked": true},
		"blocked "+who+": the server refuses their new conversations with you; conversations you already share stay (leave them with 'sandi leave')")
}

func cmdUnblock(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi unblock USER"}
	}
	if err := e.open(); err != nil {
		return err
	}
	if err := e.c.Unblock(ctx, args[0]); err != nil {
		return err
	}
	return e.out(map[string]any{"user": args[0], "blocked": false}, "unblocked "+untrustedName(args[0]))
}

func cmdBlocked(ctx context.Context, e *cli, args []string) error {
	if len(args) != 0 {
		return usageError{"usage: sandi blocked"}
	}
	if err := e.open(); err != nil {
		return err
	}
	bl, err := e.c.Blocks(ctx)
	if err != nil {
		return err
	}
	if len(bl) == 0 && !e.g.json {
		return e.out(nil, "nobody is blocked")
	}
	for _, b := range bl {
		at := time.UnixMilli(b.CreatedAt).Local().Format("2006-01-02 15:04")
		if err := e.out(b, fmt.Sprintf("%s  %s  since %s", untrustedName(b.Username), b.User, at)); err != nil {
			return err
		}
	}
	return nil
}

// noteRequests remembers which of the conversations of ms are requests,
// for printMessage to mark them.
func (e *cli) noteRequests(convs []protocol.ConversationID) error {
	if e.requests == nil {
		e.requests = map[protocol.ConversationID]bool{}
	}
	for _, id := range convs {
		if _, ok := e.requests[id]; ok {
			continue
		}
		req, err := e.c.IsRequest(id)
		if err != nil {
			return err
		}
		e.requests[id] = req
	}
	return nil
}

// noteRequestsPrinted says on stderr, once per conversation, which of the
// printed messages are in requests (stdout keeps the messages alone;
// --json marks them with "request").
func (e *cli) noteRequestsPrinted(printed []client.Message) {
	said := map[protocol.ConversationID]bool{}
	for _, m := range printed {
		if !e.requests[m.Conversation] || said[m.Conversation] {
			continue
		}
		said[m.Conversation] = true
		short := m.Conversation.String()[:8]
		printWrapped(e.stderr, fmt.Sprintf("sandi: [%s] is a message request from someone you share no other conversation with; its messages stay unread until you accept it ('sandi requests accept %s') or answer", short, short), errorCont)
	}
}

// requestNote is the line chat shows on opening a request.
func requestNote(id protocol.ConversationID) string {
	return strings.Join([]string{
		"-- a message request: its sender shares no other conversation with you; nothing is marked read",
		"   until you accept it ('sandi requests accept " + id.String()[:8] + "') or answer --",
	}, "\n")
}

func cmdDevicesRename(ctx context.Context, e *cli, args []string) error {
	if len(args) < 2 {
		return usageError{"usage: sandi devices rename ID NAME... (ID: a device id, or 4+ characters of it)"}
	}
	if err := e.open(); err != nil {
		return err
	}
	name := strings.Join(args[1:], " ")
	id, err := e.c.RenameDevice(ctx, args[0], name)
	if err != nil {
		return err
	}
	return e.out(map[string]any{"device": id, "name": name}, "renamed device "+id.String()+" to "+untrusted(name))
}

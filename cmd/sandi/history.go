package main

import (
	"context"
	"strings"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// cmdHistory prints the local history of one conversation (what this
// device decrypted and kept; the server is not asked): the newest --limit
// messages, or all, oldest first, each with its time.
func cmdHistory(ctx context.Context, e *cli, args []string) error {
	fs := flags("history", e)
	limit := fs.Int("limit", 0, "print only the newest N messages (0: all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *limit < 0 {
		return usageError{"usage: sandi history CONV [--limit N]"}
	}
	id, err := e.localConv(fs.Arg(0))
	if err != nil {
		return err
	}
	hist, err := e.c.History(id)
	if err != nil {
		return err
	}
	e.hist = map[protocol.ConversationID][]client.Message{id: hist}
	if *limit > 0 && len(hist) > *limit {
		hist = hist[len(hist)-*limit:]
	}
	for _, m := range hist {
		if err := e.printDated(m); err != nil {
			return err
		}
	}
	return nil
}

// cmdSearch prints the messages of the local history that contain TEXT,
// case-insensitively, oldest first, with their conversation, sender and
// time.
func cmdSearch(ctx context.Context, e *cli, args []string) error {
	fs := flags("search", e)
	conv := fs.String("conv", "", "search this conversation only")
	if err := parse(fs, args); err != nil {
		return err
	}
	text := strings.Join(fs.Args(), " ")
	if text == "" {
		return usageError{"usage: sandi search TEXT [--conv CONV]"}
	}
	var only *protocol.ConversationID
	if *conv != "" {
		id, err := e.localConv(*conv)
		if err != nil {
			return err
		}
		only = &id
	} else if err := e.open(); err != nil {
		return err
	}
	found, err := e.c.Search(text, only)
	if err != nil {
		return err
	}
	e.hist = map[protocol.ConversationID][]client.Message{}
	for _, m := range found {
		if err := e.printDated(m); err != nil {
			return err
		}
	}
	return nil
}

// localConv opens the client and resolves CONV among the conversations
// this device holds, without asking the server.
func (e *cli) localConv(s string) (protocol.ConversationID, error) {
	if err := e.open(); err != nil {
		return protocol.ConversationID{}, err
	}
	if e.c.Username() == "" {
		return protocol.ConversationID{}, client.ErrNoAccount
	}
	convs, err := e.c.LocalConversations()
	if err != nil {
		return protocol.ConversationID{}, err
	}
	return client.MatchConversation(convs, s)
}

// printDated prints one message of the local history with its time: --json
// as printMessage does, plus receivedAt; else
// "[conv] 2006-01-02 15:04 sender: text" in local time, the text's further
// lines under it.
func (e *cli) printDated(m client.Message) error {
	id, mark := actionHead(m)
	head := "[" + m.Conversation.String()[:8] + "] " + msgTime(m).Local().Format("2006-01-02 15:04") + " " + id + untrustedName(m.Sender) + mark
	v := map[string]any{"conversation": m.Conversation, "seq": m.Seq, "sender": m.Sender, "sentAt": m.SentAt, "receivedAt": m.ReceivedAt}
	if m.Lost {
		v["lost"] = true
		head += " (lost by the server)"
	}
	if m.Type == client.ContentTitle {
		v["title"] = m.Text
		return e.out(v, strings.Join(wrapHanging(head+` set the title to "`+untrusted(m.Text)+`"`, e.width(), messageCont), "\n"))
	}
	v["text"], v["attachments"] = m.Text, attachmentsJSON(m.Attachments)
	actionJSON(v, m)
	receiptJSON(v, m)
	if m.Deleted {
		return e.out(v, head+": [deleted]")
	}
	return e.out(v, framed(head+": ", m.Text, messageCont, e.width())+e.attachmentLines(m.Attachments)+e.actionLines(m)+e.receiptLine(m))
}

// markPrinted marks the messages that sync printed as read, in each of
// their conversations up to the newest printed.
func (e *cli) markPrinted(printed []client.Message) error {
	newest := map[protocol.ConversationID]uint64{}
	for _, m := range printed {
		newest[m.Conversation] = max(newest[m.Conversation], m.Seq)
	}
	for conv, seq := range newest {
		if err := e.c.MarkReadThrough(conv, seq); err != nil {
			return err
		}
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// cmdChat shows one conversation: its history, then live messages, and
// sends every line typed on standard input. Lines starting with "/" are
// commands: /quit, /members, /add USER, /remove USER, /safety USER.
//
// When standard input and output are both terminals (and --json is not
// given) it is a full-screen view (chatview.go); otherwise it works line by
// line, for scripts.
func cmdChat(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi chat CONV"}
	}
	id, err := e.conv(ctx, args[0])
	if err != nil {
		return err
	}
	synced, err := e.c.Sync(ctx)
	if err != nil {
		return err
	}
	items, err := e.c.Timeline(id)
	if err != nil {
		return err
	}
	if err := e.noteRequests([]protocol.ConversationID{id}); err != nil {
		return err
	}
	if in, out, ok := e.terminals(); ok && !e.g.json {
		return chatTUI(ctx, e, id, items, synced.Failures, in, out)
	}
	var mu sync.Mutex // serialises output
	self := e.c.UserID()
	ack := make(chan struct{}, 1) // a round of read receipts is asked for
	show := func(m client.Message) {
		mu.Lock()
		defer mu.Unlock()
		if m.Conversation == id {
			e.printMessage(m)
			if m.SenderID != self {
				select {
				case ack <- struct{}{}:
				default: // one is asked for already
				}
			}
		}
	}
	for _, it := range items {
		if it.Line != nil {
			e.printLine(*it.Line, false)
		} else {
			show(*it.Message)
		}
	}
	e.c.OnLine(func(l client.Line) { // runs with the client locked, as show
		mu.Lock()
		defer mu.Unlock()
		if l.Conversation == id {
			e.printLine(l, false)
		}
	})
	e.c.MarkRead(id)
	defer e.acknowledge(ctx, id) // runs after the mark below
	defer e.c.MarkRead(id)       // what arrived while the chat ran was printed
	// What the chat shows is read as it shows it: the others and this
	// account's other devices are told at once, in rounds (a round asked
	// for during one runs after it), not only when the chat ends. The
	// rounds end before the marks above and before the client is closed.
	ackCtx, stopAcks := context.WithCancel(ctx)
	acksDone := make(chan struct{})
	go func() {
		defer close(acksDone)
		for {
			select {
			case <-ackCtx.Done():
				return
			case <-ack:
				if e.c.MarkRead(id) == nil {
					_ = e.c.SendReceipts(ackCtx, id) // a courtesy, as in sendReceipts
				}
			}
		}
	}()
	defer func() { stopAcks(); <-acksDone }()
	select { // what the history above showed
	case ack <- struct{}{}:
	default:
	}
	if !e.g.json {
		fmt.Fprintln(e.stderr, "-- type a message and press Enter; /quit to leave --")
		if e.requests[id] {
			fmt.Fprintln(e.stderr, requestNote(id))
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	listenErr := make(chan error, 1)
	listening := true
	// Listen ends before the client is used again (the marks above) or
	// closed: a chat ended by its input returned while Listen still ran.
	defer func() {
		cancel()
		if listening {
			<-listenErr
		}
	}()
	e.inListen = true // show now runs with the client locked
	c := e.c
	go func() {
		listenErr <- c.Listen(ctx, show, func(f *client.DecryptError) {
			mu.Lock()
			printError(e.stderr, f)
			mu.Unlock()
		})
	}()
	lines := make(chan inputLine)
	go readLines(e.stdin, lines)
	unsent := 0 // lines that were messages and were not sent
	for {
		select {
		case err := <-listenErr:
			listening = false
			if ctx.Err() != nil {
				return nil
			}
			return err
		case line, ok := <-lines:
			if !ok {
				return unsentError(unsent)
			}
			err := line.err
			if err == nil {
				err = chatLine(ctx, e, id, line.text, show, &mu)
			}
			if err == errQuit {
				return unsentError(unsent)
			}
			if err != nil {
				if !strings.HasPrefix(line.text, "/") {
					unsent++ // a message, not a command
				}
				mu.Lock()
				printError(e.stderr, err)
				mu.Unlock()
			}
		}
	}
}

// terminals returns standard input and output when both are terminals.
func (e *cli) terminals() (in, out *os.File, ok bool) {
	in, okIn := e.stdin.(*os.File)
	out, okOut := e.stdout.(*os.File)
	if !okIn || !okOut || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
		return nil, nil, false
	}
	return in, out, true
}

var errQuit = fmt.Errorf("quit")

// chatLine handles one line of the line-mode chat: a message to send or a
// slash command, whose output goes to stderr.
func chatLine(ctx context.Context, e *cli, id protocol.ConversationID, line string, show func(client.Message), mu *sync.Mutex) error {
	if line == "" {
		return nil
	}
	if !strings.HasPrefix(line, "/") {
		m, err := e.c.Send(ctx, id, line)
		if err != nil {
			return err
		}
		show(m)
		return nil
	}
	out, err := chatCommand(ctx, e.c, id, line)
	if out != "" {
		mu.Lock()
		printWrapped(e.stderr, out, "    ")
		mu.Unlock()
	}
	return err
}

// chatCommand runs one slash command of the chat (both views) and returns
// the text it shows, if any, safe to print as is (names from the server
// through untrustedList); /quit is errQuit.
func chatCommand(ctx context.Context, b chatBackend, id protocol.ConversationID, line string) (string, error) {
	f := strings.Fields(line)
	switch f[0] {
	case "/quit", "/q":
		return "", errQuit
	case "/members":
		convs, err := b.Conversations(ctx)
		if err != nil {
			return "", err
		}
		for _, cv := range convs {
			if cv.ID == id {
				return "members: " + untrustedList(cv.Members), nil
			}
		}
		return "", nil
	case "/add":
		if len(f) < 2 {
			return "", fmt.Errorf("usage: /add USER")
		}
		return "", b.AddMembers(ctx, id, f[1:]...)
	case "/remove":
		if len(f) < 2 {
			return "", fmt.Errorf("usage: /remove USER")
		}
		return "", b.RemoveMembers(ctx, id, f[1:]...)
	case "/safety":
		if len(f) != 2 {
			return "", fmt.Errorf("usage: /safety USER")
		}
		n, _, err := b.SafetyNumber(ctx, f[1])
		if err != nil {
			return "", err
		}
		return "safety number with " + untrusted(f[1]) + ": " + n, nil
	}
	return "", fmt.Errorf("unknown command %s (try /quit, /members, /add, /remove, /safety)", f[0])
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"sync"

	"sandi.dev/client"
)

// cmdChat shows one conversation: its history, then live messages, and
// sends every line typed on standard input. Lines starting with "/" are
// commands: /quit, /members, /add USER, /remove USER, /safety USER.
func cmdChat(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi chat CONV"}
	}
	id, err := e.conv(ctx, args[0])
	if err != nil {
		return err
	}
	if _, err := e.c.Sync(ctx); err != nil {
		return err
	}
	hist, err := e.c.History(id)
	if err != nil {
		return err
	}
	var mu sync.Mutex // serialises output
	show := func(m client.Message) {
		mu.Lock()
		defer mu.Unlock()
		if m.Conversation == id {
			e.printMessage(m)
		}
	}
	for _, m := range hist {
		show(m)
	}
	e.c.MarkRead(id)
	if !e.g.json {
		fmt.Fprintln(e.stderr, "-- type a message and press Enter; /quit to leave --")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	listenErr := make(chan error, 1)
	go func() {
		listenErr <- e.c.Listen(ctx, show, func(f *client.DecryptError) {
			mu.Lock()
			fmt.Fprintln(e.stderr, "sandi:", f)
			mu.Unlock()
		})
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(e.stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case err := <-listenErr:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if err := chatLine(ctx, e, id, strings.TrimSpace(line), show); err != nil {
				if err == errQuit {
					return nil
				}
				mu.Lock()
				fmt.Fprintln(e.stderr, "sandi:", err)
				mu.Unlock()
			}
		}
	}
}

var errQuit = fmt.Errorf("quit")

func chatLine(ctx context.Context, e *cli, id [16]byte, line string, show func(client.Message)) error {
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
	f := strings.Fields(line)
	switch f[0] {
	case "/quit", "/q":
		return errQuit
	case "/members":
		convs, err := e.c.Conversations(ctx)
		if err != nil {
			return err
		}
		for _, cv := range convs {
			if cv.ID == id {
				fmt.Fprintln(e.stderr, "members:", strings.Join(cv.Members, ", "))
			}
		}
		return nil
	case "/add":
		if len(f) < 2 {
			return fmt.Errorf("usage: /add USER")
		}
		return e.c.AddMembers(ctx, id, f[1:]...)
	case "/remove":
		if len(f) < 2 {
			return fmt.Errorf("usage: /remove USER")
		}
		return e.c.RemoveMembers(ctx, id, f[1:]...)
	case "/safety":
		if len(f) != 2 {
			return fmt.Errorf("usage: /safety USER")
		}
		n, _, err := e.c.SafetyNumber(ctx, f[1])
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stderr, "safety number with", f[1]+":", n)
		return nil
	}
	return fmt.Errorf("unknown command %s (try /quit, /members, /add, /remove, /safety)", f[0])
}

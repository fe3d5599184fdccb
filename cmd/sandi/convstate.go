package main

import (
	"context"
	"fmt"
	"strings"
)

// cmdRename sets a conversation's title (its state, protocol.md §7.6).
func cmdRename(ctx context.Context, e *cli, args []string) error {
	if len(args) < 2 {
		return usageError{"usage: sandi rename CONV TITLE..."}
	}
	id, err := e.conv(ctx, args[0])
	if err != nil {
		return err
	}
	title := strings.Join(args[1:], " ")
	if err := e.c.Rename(ctx, id, title); err != nil {
		return err
	}
	return e.out(map[string]any{"conversation": id, "title": title}, "renamed "+id.String()+" to "+untrusted(title))
}

// cmdHistory prints the messages this device holds for a conversation,
// oldest first, from its storage: also those of a conversation it left or
// was removed from.
func cmdHistory(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi history CONV"}
	}
	id, err := e.conv(ctx, args[0])
	if err != nil {
		return err
	}
	ms, err := e.c.History(id)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := e.printMessage(m); err != nil {
			return err
		}
	}
	return nil
}

// notLoggedIn is whoami's answer on a home directory without an account.
func (e *cli) notLoggedIn() error {
	return fmt.Errorf("not logged in (state directory %s; --home chooses another)", e.g.home)
}

// statusMark is how list shows a conversation this account is no longer
// a member of.
func statusMark(status string) string {
	if status == "" {
		return ""
	}
	return "  [" + status + ", read-only]"
}

package main

import (
	"context"
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

// statusMark is how list shows a conversation this account is no longer
// a member of.
func statusMark(status string) string {
	if status == "" {
		return ""
	}
	return "  [" + status + ", read-only]"
}

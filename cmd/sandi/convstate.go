package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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

var errNotLoggedIn = errors.New("not logged in")

// notLoggedIn is whoami's answer on a home directory without an account
// (never registered, or logged out).
func (e *cli) notLoggedIn() error {
	home, err := filepath.Abs(e.g.home)
	if err != nil {
		home = e.g.home
	}
	return &explained{fmt.Sprintf("not logged in (home directory %s): run 'sandi register' or 'sandi login', or name another home directory with --home DIR", home), errNotLoggedIn}
}

// statusMark is how list shows a conversation this account is no longer
// a member of.
func statusMark(status string) string {
	if status == "" {
		return ""
	}
	return "  [" + status + ", read-only]"
}

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"sandi.dev/client"
)

// cmdLink: without a code, on a new device, shows a link code and waits
// for another device of the account to confirm it; with a code (typed in
// one piece or in its groups, dashes optional, any case), on a device
// that holds the account's keys, confirms that new device.
//
// With a code, --history all|Nd|none says what history to transfer to the
// new device (default: asked on a terminal, none from a pipe). --resume,
// on the new device, retries a transfer that did not complete.
func cmdLink(ctx context.Context, e *cli, args []string) error {
	fs := flags("link", e)
	history := fs.String("history", "", "history to transfer to the new device: all, none or N days (30d)")
	resume := fs.Bool("resume", false, "retry the import of a transferred history")
	if err := parse(fs, args); err != nil {
		return err
	}
	args = fs.Args()
	if err := e.open(); err != nil {
		return err
	}
	if *resume {
		if err := e.c.ResumeTransfer(ctx); err != nil {
			return err
		}
		return e.out(map[string]any{"transferred": true}, "the history is transferred")
	}
	if len(args) > 0 {
		var h client.LinkHistory
		var err error
		if *history != "" {
			h, err = parseHistory(*history, time.Now())
		} else if _, ok := e.terminalIn(); ok {
			h, err = askHistory(e)
		}
		if err != nil {
			return err
		}
		dev, err := e.c.ApproveLinkWith(ctx, strings.Join(args, " "), h)
		if err != nil {
			return err
		}
		text := "confirmed device " + dev.String() + "; it now has your account's keys"
		if h.Transfer {
			text += " and this device's history"
		}
		return e.out(map[string]any{"approved": dev, "history": h.Transfer}, text)
	}
	code, err := e.c.StartLink(ctx)
	if err != nil {
		return err
	}
	if e.g.json {
		if err := e.out(map[string]any{"code": code}, ""); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "On a device already signed in to %s, run:\n\n    sandi link %s\n\nThe code works once, for 10 minutes. Waiting for it…\n", e.c.Username(), code)
	}
	if err := e.c.WaitLink(ctx, time.Second); err != nil {
		if errors.Is(err, client.ErrLinkExpired) {
			return errors.New("the code expired before another device confirmed it; run 'sandi link' again for a new one")
		}
		if errors.Is(err, client.ErrTransfer) {
			return fmt.Errorf("%w; run 'sandi link --resume' to try again", err)
		}
		return err
	}
	return e.out(map[string]any{"linked": true}, "linked: this device has your account's keys")
}

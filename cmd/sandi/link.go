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
func cmdLink(ctx context.Context, e *cli, args []string) error {
	if err := e.open(); err != nil {
		return err
	}
	if len(args) > 0 {
		dev, err := e.c.ApproveLink(ctx, strings.Join(args, " "))
		if err != nil {
			return err
		}
		return e.out(map[string]any{"approved": dev}, "confirmed device "+dev.String()+"; it now has your account's keys")
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
		return err
	}
	return e.out(map[string]any{"linked": true}, "linked: this device has your account's keys")
}

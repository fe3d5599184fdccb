package main

import (
	"context"
	"fmt"
	"time"
)

func cmdLink(ctx context.Context, e *cli, args []string) error {
	if len(args) > 1 {
		return usageError{"usage: sandi link [CODE]"}
	}
	if err := e.open(); err != nil {
		return err
	}
	if len(args) == 1 {
		dev, err := e.c.ApproveLink(ctx, args[0])
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
		fmt.Fprintf(e.stdout, "On a device already signed in to %s, run:\n\n    sandi link %s\n\nWaiting for it…\n", e.c.Username(), code)
	}
	if err := e.c.WaitLink(ctx, time.Second); err != nil {
		return err
	}
	return e.out(map[string]any{"linked": true}, "linked: this device has your account's keys")
}

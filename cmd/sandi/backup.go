package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"sandi.dev/client"
)

// cmdBackup: enable, now, status, disable (protocol.md §14.4).
func cmdBackup(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi backup enable|now|status|disable"}
	}
	if err := e.open(); err != nil {
		return err
	}
	switch args[0] {
	case "enable":
		k, err := e.c.EnableBackup(ctx)
		if err != nil {
			return err
		}
		return e.out(map[string]any{"recoveryKey": k.String()}, "Backups are on: the server keeps an encrypted copy of this device's keys, contacts and\n"+
			"history, made again at most every hour while you use sandi ('sandi backup now' makes one now).\n\n"+
			"Your recovery key (shown only this once; write it down and keep it away from this device):\n\n    "+k.String()+"\n\n"+
			"With it and your password, 'sandi login' then 'sandi restore' on a new device bring this account back.\n"+
			"Anyone with it and the backup can read what the backup holds.")
	case "now":
		if err := e.c.BackupNow(ctx); err != nil {
			return err
		}
		return e.out(map[string]any{"backup": true}, "backup made")
	case "status":
		on, last, err := e.c.BackupStatus()
		if err != nil {
			return err
		}
		text := "backups are off ('sandi backup enable' turns them on)"
		if on {
			text = "backups are on; last made " + time.UnixMilli(last).Format(time.RFC3339)
		}
		return e.out(map[string]any{"enabled": on, "last": last}, text)
	case "disable":
		if err := e.c.DisableBackup(ctx); err != nil {
			return err
		}
		return e.out(map[string]any{"enabled": false}, "backups are off; the server's copy is deleted")
	}
	return usageError{"usage: sandi backup enable|now|status|disable"}
}

// cmdRestore reads the recovery key (asked for without echo on a
// terminal, else a line on standard input), restores the account's backup
// on this device and says when that backup was made.
func cmdRestore(ctx context.Context, e *cli, args []string) error {
	if len(args) != 0 {
		return usageError{"usage: sandi restore (the recovery key is read from standard input)"}
	}
	if err := e.open(); err != nil {
		return err
	}
	key, err := readRecoveryKey(e)
	if err != nil {
		return err
	}
	if err := e.c.Restore(ctx, key); err != nil {
		return err
	}
	_, made, err := e.c.BackupStatus()
	if err != nil {
		return err
	}
	when := time.UnixMilli(made).Format(time.RFC3339)
	return e.out(map[string]any{"restored": true, "backupMade": made},
		"restored: this device has your account's keys, contacts and history back, from the backup made "+when+".\n"+
			"If you used sandi on your lost device well after that, the server gave this device an older backup than\n"+
			"your last one: what came later is missing (messages of newer sessions stay unreadable here).")
}

// readRecoveryKey reads the recovery key: on a terminal without echoing
// it (it opens the account's backup, as a password opens the account),
// otherwise the first line of standard input.
func readRecoveryKey(e *cli) (string, error) {
	const none = "no recovery key given"
	if f, ok := e.terminalIn(); ok {
		k, err := askHidden(e, f, "recovery key: ", none)
		return strings.TrimSpace(k), err
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if strings.TrimSpace(line) == "" {
		return "", usageError{none}
	}
	return strings.TrimSpace(line), nil
}

// parseHistory reads --history: all, none, or N days ("30d").
func parseHistory(s string, now time.Time) (client.LinkHistory, error) {
	switch s {
	case "all":
		return client.LinkHistory{Transfer: true}, nil
	case "none":
		return client.LinkHistory{}, nil
	}
	n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
	if !strings.HasSuffix(s, "d") || err != nil || n < 1 || n > 36500 {
		return client.LinkHistory{}, usageError{"--history is all, none or a number of days such as 30d"}
	}
	return client.LinkHistory{Transfer: true, Since: now.Add(-time.Duration(n) * 24 * time.Hour).UnixMilli()}, nil
}

// askHistory asks on the terminal whether to transfer the history.
func askHistory(e *cli) (client.LinkHistory, error) {
	fmt.Fprint(e.stderr, "Transfer this device's history to the new device? [all / N days, e.g. 30d / none] (all): ")
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return client.LinkHistory{}, err
	}
	if line = strings.TrimSpace(strings.ToLower(line)); line == "" {
		line = "all"
	}
	return parseHistory(line, time.Now())
}

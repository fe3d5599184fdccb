package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"sandi.dev/client"
)

// cmdSessions lists every device signed in to the account, keyless ones
// (signed in with the password, never linked) marked, or signs one out.
func cmdSessions(ctx context.Context, e *cli, args []string) error {
	if len(args) > 0 && args[0] == "remove" {
		return cmdSessionsRemove(ctx, e, args[1:])
	}
	if len(args) != 0 {
		return usageError{"usage: sandi sessions [remove ID]"}
	}
	if err := e.open(); err != nil {
		return err
	}
	ss, err := e.c.Sessions(ctx)
	if err != nil {
		return err
	}
	for _, s := range ss {
		if err := e.out(s, e.wrap(sessionLine(s))); err != nil {
			return err
		}
	}
	return nil
}

// sessionLine is one session as `sandi sessions` prints it.
func sessionLine(s client.Session) string {
	name := s.Name
	if name == "" {
		name = "-"
	}
	used := "expired"
	if s.LastUsed != 0 {
		used = time.UnixMilli(s.LastUsed).Format(time.DateTime)
	}
	state := "keys, in the signed list"
	switch {
	case s.Keyless:
		state = "KEYLESS: signed in with the password, not linked"
	case !s.Keys:
		state = "in the signed list, no keys yet"
	case !s.Listed:
		state = "keys, NOT in the signed list"
	}
	mark := ""
	if s.Current {
		mark = " (this device)"
	}
	return fmt.Sprintf("%s  %-20s  added %s  used %s  %s%s", s.Device, untrusted(name), time.UnixMilli(s.CreatedAt).Format(time.DateTime), used, state, mark)
}

// cmdSessionsRemove signs out a session the signed device list does not
// name.
func cmdSessionsRemove(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi sessions remove ID (a session id, or 4+ characters of it)"}
	}
	if err := e.open(); err != nil {
		return err
	}
	id, err := e.c.SignOutSession(ctx, args[0])
	if err != nil {
		return err
	}
	return e.out(map[string]any{"signedOut": id}, "signed out session "+id.String())
}

// keylessSessions prints, after `sandi devices`, the sessions that are not
// devices of the account: signed in with the password, never linked.
func (e *cli) keylessSessions(ctx context.Context, shown map[string]bool) error {
	ss, err := e.c.Sessions(ctx)
	if err != nil {
		return err
	}
	for _, s := range ss {
		if shown[s.Device.String()] {
			continue
		}
		if err := e.out(s, e.wrap(sessionLine(s))); err != nil {
			return err
		}
	}
	return nil
}

// cmdPasswd changes the account's password: the current one, then the new
// one, from standard input (one a line) or asked for on a terminal.
func cmdPasswd(ctx context.Context, e *cli, args []string) error {
	fs := flags("passwd", e)
	fs.Bool("password-stdin", false, "read the current and the new password from standard input, one a line")
	others := fs.Bool("sign-out-others", false, "also sign out every other session that the account's signed device list does not name")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"usage: sandi passwd --password-stdin [--sign-out-others]"}
	}
	old, neu, err := readPasswordChange(e)
	if err != nil {
		return err
	}
	if err := e.open(); err != nil {
		return err
	}
	revoked, err := e.c.ChangePassword(ctx, old, neu, *others)
	if client.IsCode(err, "bad_credentials") {
		return errors.New("the current password is wrong; nothing changed")
	}
	if err != nil {
		return err
	}
	text := "password changed"
	if *others {
		text += fmt.Sprintf("; %d other sessions signed out (devices in the signed list stay: remove them with 'sandi devices remove')", len(revoked))
	}
	return e.out(map[string]any{"changed": true, "signedOut": revoked}, text)
}

// readPasswordChange reads the current and the new password: on a
// terminal it asks for them (the new one twice), without echo; otherwise
// it reads two lines from standard input.
func readPasswordChange(e *cli) (string, string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var pws [3]string
		for i, prompt := range []string{"current password: ", "new password: ", "new password again: "} {
			fmt.Fprint(e.stderr, prompt)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(e.stderr)
			if err != nil {
				return "", "", err
			}
			pws[i] = string(b)
		}
		if pws[1] != pws[2] {
			return "", "", usageError{"the new passwords differ"}
		}
		if pws[0] == "" || pws[1] == "" {
			return "", "", usageError{"no password given"}
		}
		return pws[0], pws[1], nil
	}
	r := bufio.NewReader(e.stdin)
	var pws [2]string
	for i := range pws {
		line, err := r.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", "", err
		}
		pws[i] = strings.TrimRight(line, "\r\n")
		if pws[i] == "" {
			return "", "", usageError{"give the current password and the new one on standard input, one a line"}
		}
	}
	return pws[0], pws[1], nil
}

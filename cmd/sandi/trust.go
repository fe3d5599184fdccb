package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// The identity commands: verify a contact, accept a contact's changed key,
// list contacts and the alarm log (the trust store lives in the SDK).

func cmdVerify(ctx context.Context, e *cli, args []string) error {
	fs := flags("verify", e)
	number := fs.String("number", "", "the safety number USER's device shows (else it is read from standard input)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: sandi verify USER [--number DIGITS]"}
	}
	user := fs.Arg(0)
	if err := e.open(); err != nil {
		return err
	}
	mine, _, err := e.c.SafetyNumber(ctx, user)
	if err != nil {
		return err
	}
	theirs := *number
	if theirs == "" {
		fmt.Fprintf(e.stderr, "your safety number with %s:\n  %s\ntype or paste the number %s's device shows: ", untrustedName(user), mine, untrustedName(user))
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if theirs = strings.TrimSpace(line); theirs == "" {
			return usageError{"no safety number given"}
		}
	}
	if err := e.c.MarkVerified(ctx, user, []byte(theirs)); err != nil {
		return err
	}
	return e.out(map[string]any{"user": user, "verified": true, "safetyNumber": strings.ReplaceAll(mine, " ", "")},
		fmt.Sprintf("%s is verified: a change of %s's identity key will block sending until you accept it, unless the key you verified co-signs it", untrustedName(user), untrustedName(user)))
}

func cmdAccept(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi accept USER"}
	}
	if err := e.open(); err != nil {
		return err
	}
	old, fresh, err := e.c.AcceptIdentity(args[0])
	if err != nil {
		return err
	}
	who := untrustedName(args[0])
	if err := e.out(map[string]any{"user": args[0], "accepted": true, "oldSafetyNumber": strings.ReplaceAll(old, " ", ""), "safetyNumber": strings.ReplaceAll(fresh, " ", "")},
		fmt.Sprintf("accepted the new identity key of %s\nold safety number: %s\nnew safety number: %s\n%s is no longer verified: compare the new number and run 'sandi verify %s'",
			who, old, fresh, who, who)); err != nil {
		return err
	}
	// The messages held for the key are released now: a sync prints them
	// (and whatever else is new), as 'sandi sync' would.
	return e.syncPrint(ctx, nil)
}

func cmdReject(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi reject USER"}
	}
	if err := e.open(); err != nil {
		return err
	}
	if err := e.c.RejectIdentity(args[0]); err != nil {
		return err
	}
	return e.out(map[string]any{"user": args[0], "rejected": true},
		fmt.Sprintf("kept the identity key of %s you had; conversations that name the rejected key stay unusable, and the messages held for that key are dropped", untrustedName(args[0])))
}

func cmdContacts(ctx context.Context, e *cli, args []string) error {
	if len(args) != 0 {
		return usageError{"usage: sandi contacts"}
	}
	if err := e.open(); err != nil {
		return err
	}
	cts, err := e.c.Contacts()
	if err != nil {
		return err
	}
	for _, ct := range cts {
		state := "unverified"
		if ct.Verified {
			state = "verified"
		}
		text := fmt.Sprintf("%-20s  %-10s  %s", untrustedName(ct.Username), state, ct.SafetyNumber)
		if ct.Pending != nil {
			text += fmt.Sprintf("\n%-20s  %-10s  %s  (new key: compare, then 'sandi accept %s')", "", "CHANGED", ct.PendingSafetyNumber, untrustedName(ct.Username))
		}
		if len(ct.Rekeyed) > 0 {
			text += fmt.Sprintf("\n%-20s  %-10s  this key came through a rekey that the previous key did not co-sign, in %d conversation(s): it may be the server's; compare safety numbers", "", "REKEYED", len(ct.Rekeyed))
		}
		if err := e.out(ct, text); err != nil {
			return err
		}
	}
	return nil
}

func cmdAlarms(ctx context.Context, e *cli, args []string) error {
	if len(args) > 1 {
		return usageError{"usage: sandi alarms [CONV]"}
	}
	var conv protocol.ConversationID
	if len(args) == 1 {
		var err error
		if conv, err = e.conv(ctx, args[0]); err != nil {
			return err
		}
	} else if err := e.open(); err != nil {
		return err
	}
	as, err := e.c.Alarms(conv)
	if err != nil {
		return err
	}
	for _, a := range as {
		where := ""
		if !a.Conversation.IsZero() {
			where = " [" + a.Conversation.String()[:8] + "]"
		}
		text := fmt.Sprintf("%s  %-8s  %s%s: %s", time.UnixMilli(a.Time).Format(time.DateTime), strings.ToUpper(a.Severity), a.Kind, where, untrusted(a.Detail))
		if a.Kind == client.AlarmOwnRekey {
			text += "\n    if no device of yours reset this account's identity, restore your key and role: sandi rekey-back"
			if !a.Conversation.IsZero() {
				text += " " + a.Conversation.String()
			}
		}
		if err := e.out(a, e.wrap(text)); err != nil {
			return err
		}
	}
	return nil
}

// cmdRekeyBack restores this account's identity key and role where a rekey
// this account's key did not co-sign replaced them (a rekey the server
// forged): a rekey co-signed by the key this device holds (protocol.md
// §6.2).
func cmdRekeyBack(ctx context.Context, e *cli, args []string) error {
	if len(args) > 1 {
		return usageError{"usage: sandi rekey-back [CONV]"}
	}
	var convs []protocol.ConversationID
	if len(args) == 1 {
		conv, err := e.conv(ctx, args[0])
		if err != nil {
			return err
		}
		convs = append(convs, conv)
	} else if err := e.open(); err != nil {
		return err
	}
	done, err := e.c.RekeyBackIn(ctx, nil, convs...)
	for _, conv := range done {
		if err := e.out(map[string]any{"conversation": conv, "restored": true},
			fmt.Sprintf("[%s] restored this device's identity key and this account's role", conv.String()[:8])); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if len(done) == 0 && !e.g.json {
		fmt.Fprintln(e.stdout, "nothing to restore: no conversation shows a rekey of this account that its key did not co-sign")
	}
	return nil
}

// identityHint is the line printed after a command that an identity not
// accepted stopped: what to do about it.
func identityHint(err error) string {
	var ie *client.IdentityError
	if !errors.As(err, &ie) {
		return ""
	}
	who := ie.Username
	if who == "" {
		who = ie.User.String()
	}
	switch {
	case ie.Own:
		return "this account's identity key may have been changed by someone else: see 'sandi alarms'; if no device of yours did it, run 'sandi rekey-back'"
	case ie.Pending:
		return fmt.Sprintf("compare safety numbers with %s ('sandi contacts' shows the old and the new one), then run 'sandi accept %s' if the new one matches, or 'sandi reject %s' if not", untrustedName(who), untrustedName(who), untrustedName(who))
	}
	return fmt.Sprintf("a conversation names a key for %s other than the one accepted: see 'sandi alarms' and 'sandi contacts'", untrustedName(who))
}

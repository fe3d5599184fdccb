// Command sandi is the one binary of sandi: `sandi serve` runs the server,
// `sandi db` manages its database; the other commands are the command-line
// client.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		printError(os.Stderr, err)
		if hint := identityHint(err); hint != "" {
			fmt.Fprintln(os.Stderr, "sandi:", hint)
		}
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `sandi: a self-hosted end-to-end-encrypted messenger

Usage:
  sandi [--home DIR] [--server URL] [--json] COMMAND [ARGS]
  sandi --version

Server:
  serve [--addr HOST:PORT] [--data DIR] [--db URL] [--session-idle 90d]
        [--blobs DIR|s3://…]
                              run the server (defaults: 127.0.0.1:8080, ./sandi-data,
                              SQLite in DIR; --db postgres://… for PostgreSQL); a
                              token unused for --session-idle expires (0: never);
                              attachments in DIR/blobs, or --blobs names a
                              directory or an S3 bucket (docs/operations.md)
  db copy --from URL --to URL [--json]
                              copy the whole database into a new, empty one in one
                              transaction (URL: a SQLite file or postgres://…) and
                              print the rows per table; stop the server first to
                              move it to another database (see 'sandi db help')

Account and devices:
  register USERNAME --password-stdin
                              create an account; this device is its first device
                              (on a terminal the password is asked twice)
  login USERNAME --password-stdin
                              sign this device in to an existing account, then run
                              'sandi link' (or 'login --reset' with no other device)
  link [CODE]                 without CODE, on a new device: show a code (valid 10
                              minutes) and wait for another device to confirm it; with
                              CODE (dashes, spaces and case do not matter), on a device
                              that has the account's keys: confirm that new device
  whoami                      show this device's account, device and identity key
  devices                     list the account's devices and whether its signed
                              device list names them (only those get new messages)
  devices remove ID           remove another device of the account (ID: its id or
                              4+ characters of it): it is revoked at once
  devices rename ID NAME...   rename a device of the account (at most 64 bytes); the
                              name is signed by the account's key, so the server
                              cannot change it unnoticed
  sessions                    list every device signed in to the account, KEYLESS
                              ones (signed in with the password, never linked) too
  sessions remove ID          sign out a session the signed device list does not name
  passwd --password-stdin [--sign-out-others]
                              change the password (current, then new, one a line on
                              stdin); --sign-out-others signs out every session the
                              signed device list does not name
  link --history all|Nd|none CODE
                              confirm a new device and transfer this device's history
                              (all, the last N days, or none; asked on a terminal,
                              none from a pipe); 'link --resume' on the new device
                              retries a transfer that did not complete
  backup enable|now|status|disable
                              keep an encrypted backup on the server (enable shows a
                              recovery key once; it is updated at most hourly,
                              uploading what changed);
                              disable deletes the server's copy
  restore                     on a device that only signed in (login): read the
                              recovery key (asked without echo on a terminal, else
                              a line on stdin) and bring the account back from its
                              backup, with the same identity and history
  logout                      remove this device from the account: revoke it on the
                              server and erase its keys and messages here

Conversations:
  new [--title TITLE] USER... create a conversation with USERs; prints its id
  list                        list conversations with their unread counts (also
                              'conversations'); those you left or were removed
                              from are marked and read-only
  rename CONV TITLE...        set the conversation's title (every member sees it)
  timer CONV DURATION|off     set the conversation's disappearing-message timer
                              (30s, 5m, 1h, 1d, 1w...): messages sent from then on
                              are deleted that long after they were sent, on every
                              device and on the server
  add CONV USER...            add members (admins only)
  remove CONV USER...         remove members (admins only)
  leave CONV                  leave a conversation
  send CONV [--file PATH]... [TEXT...]
                              send a message (at most 32768 bytes), with files
                              attached (encrypted here; the text may then be left out)
  save CONV ATTACHMENT [--out PATH] [--force]
                              download, check and decrypt an attachment (ATTACHMENT:
                              the id sync shows) into PATH (default: its file name
                              here); an existing file is replaced only with --force
  sync [CONV] [--peek]        print new messages (of CONV only, if given) and mark
                              them read; --peek leaves them unread
  history CONV [--limit N]    print the messages this device holds of CONV, oldest
                              first, with their times (the newest N with --limit)
                              and each message's #id
  reply CONV MSG TEXT...      answer message MSG (its #id from history)
  react CONV MSG [EMOJI]      react to MSG with EMOJI (replaces your earlier
                              reaction; without EMOJI: remove it)
  edit CONV MSG TEXT...       replace the text of MSG, a message you sent
  delete CONV MSG             delete MSG, a message you sent, for everyone
  search TEXT [--conv CONV]   print the messages this device holds that contain
                              TEXT (case-insensitive), with conversation, sender
                              and time
  chat CONV                   interactive view of one conversation; with input
                              from a pipe, each line is a message (a longer one is
                              refused, and the exit status is 1 if any was not sent)
  safety-number USER          show the safety number to compare with USER
  read-receipts [on|off]      show or set whether this device tells the others
                              that you read their messages (delivered receipts
                              are always sent; sync and chat send both)

Requests and blocks:
  requests                    list message requests: conversations started by
                              someone you share no other conversation with; their
                              messages are not marked read until you accept one
  requests accept|delete|block CONV
                              accept a request, or leave it and erase it here
                              (delete), and also block its sender (block)
  block USER                  the server refuses USER's new conversations with you
  unblock USER                lift a block
  blocked                     list the accounts you blocked

Trust:
  verify USER [--number DIGITS]
                              compare safety numbers with USER and mark USER verified
                              (the other side's number is typed, pasted or given)
  accept USER                 accept USER's changed identity key after comparing the
                              old and new safety numbers (USER is then unverified)
  reject USER                 refuse USER's changed identity key and keep the old one
  contacts                    list the accounts this device knows, verified or not,
                              with their safety numbers and any key change waiting
  alarms [CONV]               show what this device detected the server doing wrong
  rekey-back [CONV]           after a rekey of this account that no device of yours
                              made (an own_rekey alarm): restore this device's key
                              and your role, co-signed by the key this device holds

Global flags:
  --home DIR     state directory (env SANDI_HOME; default: the user config dir)
  --server URL   server URL (env SANDI_SERVER); remembered after register or login;
                 HOST:PORT alone is http:// on a loopback address, else https://
  --json         one JSON object per line on stdout

CONV is a conversation id, a unique prefix of it (4+ characters) or its title;
history and search look it up among the conversations this device holds.
Others' texts are printed with control characters escaped (\x1b, \u{202e})
and further lines of a message indented under it; --json prints them exact.
Errors go to stderr with a non-zero exit status; a failed command changes nothing.
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	g, rest, err := parseGlobal(args)
	if err != nil {
		fmt.Fprint(stderr, usage)
		return err
	}
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	cmd, cargs := rest[0], rest[1:]
	switch cmd {
	case "serve":
		return serve(ctx, cargs, stderr)
	case "db":
		return dbCommand(ctx, cargs, g.json, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "--version":
		return printVersion(stdout)
	}
	h, ok := commands[cmd]
	if !ok {
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	e := &cli{g: g, stdin: stdin, stdout: stdout, stderr: stderr}
	defer e.close()
	err = h(ctx, e, cargs)
	if err == nil && e.c != nil && cmd != "backup" {
		// Backups, when on, are made again once an hour has passed.
		if _, berr := e.c.MaybeBackup(ctx); berr != nil {
			printError(stderr, fmt.Errorf("the backup was not updated: %w", berr))
		}
	}
	return explain(e, err)
}

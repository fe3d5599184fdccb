package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// global holds the flags that come before the command.
type global struct {
	home, server string
	json         bool
}

func parseGlobal(args []string) (global, []string, error) {
	g := global{home: os.Getenv("SANDI_HOME"), server: os.Getenv("SANDI_SERVER")}
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "json":
			g.json = true
			args = args[1:]
			continue
		case "home", "server":
			if !hasVal {
				if len(args) < 2 {
					return g, nil, usageError{"--" + name + " needs a value"}
				}
				val, args = args[1], args[1:]
			}
			args = args[1:]
			if name == "home" {
				g.home = val
			} else {
				g.server = val
			}
			continue
		case "h", "help":
			return g, []string{"help"}, nil
		case "version":
			return g, []string{"version"}, nil
		}
		return g, nil, usageError{fmt.Sprintf("unknown flag %s", a)}
	}
	if g.home == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return g, nil, fmt.Errorf("no --home given and no user config directory: %w", err)
		}
		g.home = filepath.Join(dir, "sandi")
	}
	return g, args, nil
}

// cli is one run of a client command.
type cli struct {
	g              global
	stdin          io.Reader
	stdout, stderr io.Writer
	c              *client.Client
	peek           bool // sync leaves what it prints unread
	// printed holds the messages printed by this process, by reference,
	// for the lines about replies and actions (actions.go); inListen says
	// the client is locked (Listen's callback) and must not be asked.
	printed  map[string]client.Message
	inListen bool
	// hist holds the local histories read for those lines by a command
	// that does not change them (history, search), each read once; nil:
	// read them every time.
	hist map[protocol.ConversationID][]client.Message
	// requests marks the conversations that are message requests, for
	// printMessage (filled by noteRequests).
	requests map[protocol.ConversationID]bool
}

type command func(ctx context.Context, e *cli, args []string) error

var commands = map[string]command{
	"register":      cmdRegister,
	"login":         cmdLogin,
	"link":          cmdLink,
	"logout":        cmdLogout,
	"whoami":        cmdWhoami,
	"devices":       cmdDevices,
	"sessions":      cmdSessions,
	"passwd":        cmdPasswd,
	"new":           cmdNew,
	"list":          cmdList,
	"add":           cmdAdd,
	"remove":        cmdRemove,
	"leave":         cmdLeave,
	"send":          cmdSend,
	"save":          cmdSave,
	"sync":          cmdSync,
	"history":       cmdHistory,
	"search":        cmdSearch,
	"reply":         cmdReply,
	"react":         cmdReact,
	"edit":          cmdEdit,
	"delete":        cmdDelete,
	"chat":          cmdChat,
	"safety-number": cmdSafetyNumber,
	"verify":        cmdVerify,
	"accept":        cmdAccept,
	"reject":        cmdReject,
	"contacts":      cmdContacts,
	"alarms":        cmdAlarms,
	"rekey-back":    cmdRekeyBack,
	"backup":        cmdBackup,
	"restore":       cmdRestore,
	"rename":        cmdRename,
	"timer":         cmdTimer,
	"conversations": cmdList,
	"requests":      cmdRequests,
	"block":         cmdBlock,
	"unblock":       cmdUnblock,
	"blocked":       cmdBlocked,
	"read-receipts": cmdReadReceipts,
}

// open opens the client state in the home directory and holds it (its
// lock) until close: a second sandi process on the same home directory is
// refused with a sentence naming the directory and this process.
func (e *cli) open() error {
	server, err := e.serverURL()
	if err != nil {
		return err
	}
	st, err := client.NewDirStorage(e.g.home)
	if errors.Is(err, client.ErrLocked) {
		return err
	}
	if err != nil {
		return fmt.Errorf("state directory %s: %w", e.g.home, err)
	}
	host, _ := os.Hostname()
	e.c, err = client.Open(client.Options{Server: server, Storage: st, DeviceName: "CLI on " + host})
	if err != nil {
		st.Close()
	}
	return err
}

// close releases the client state, if open.
func (e *cli) close() {
	if e.c != nil {
		e.c.Close()
		e.c = nil
	}
}

// out prints v as one JSON line with --json, else the text.
func (e *cli) out(v any, text string) error {
	if e.g.json {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	if text != "" {
		_, err := fmt.Fprintln(e.stdout, text)
		return err
	}
	return nil
}

func flags(name string, e *cli) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	// Flags may come after positional arguments: reorder them first.
	var pos, fl []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			fl = append(fl, a)
			name := strings.TrimLeft(a, "-")
			if f := fs.Lookup(name); f != nil && !strings.Contains(a, "=") {
				if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !bf.IsBoolFlag() {
					if i+1 < len(args) {
						fl = append(fl, args[i+1])
						i++
					}
				}
			}
			continue
		}
		pos = append(pos, a)
	}
	if err := fs.Parse(append(fl, pos...)); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// readPassword reads the password from the first line of standard input;
// when that is a terminal, it asks for it without echoing it.
func readPassword(e *cli) (string, error) {
	if f, ok := e.terminalIn(); ok {
		return askPassword(e, f, "password: ")
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageError{"no password on standard input"}
	}
	return pw, nil
}

func cmdRegister(ctx context.Context, e *cli, args []string) error {
	fs := flags("register", e)
	fs.Bool("password-stdin", false, "read the password from standard input")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: sandi register USERNAME --password-stdin"}
	}
	pw, err := readNewPassword(e)
	if err != nil {
		return err
	}
	if err := e.open(); err != nil {
		return err
	}
	if err := e.c.Register(ctx, fs.Arg(0), pw); err != nil {
		return err
	}
	return e.out(map[string]any{"username": e.c.Username(), "user": e.c.UserID(), "device": e.c.DeviceID()},
		fmt.Sprintf("registered %s on %s", untrustedName(e.c.Username()), untrusted(e.c.Server())))
}

func cmdLogin(ctx context.Context, e *cli, args []string) error {
	fs := flags("login", e)
	fs.Bool("password-stdin", false, "read the password from standard input")
	reset := fs.Bool("reset", false, "draw a new identity key for the account (signs out its other devices; contacts are warned)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: sandi login USERNAME --password-stdin [--reset]"}
	}
	pw, err := readPassword(e)
	if err != nil {
		return err
	}
	if err := e.open(); err != nil {
		return err
	}
	if err := e.c.Login(ctx, fs.Arg(0), pw); err != nil {
		return err
	}
	if *reset {
		if err := e.c.ResetIdentity(ctx); err != nil {
			return err
		}
		return e.out(map[string]any{"username": e.c.Username(), "device": e.c.DeviceID(), "reset": true},
			"logged in with a new identity key; your other devices are signed out and your contacts will see the change")
	}
	return e.out(map[string]any{"username": e.c.Username(), "device": e.c.DeviceID(), "linked": false},
		"logged in; now run 'sandi link' here and confirm the code on one of your other devices")
}

func cmdLogout(ctx context.Context, e *cli, args []string) error {
	if len(args) != 0 {
		return usageError{"usage: sandi logout"}
	}
	if err := e.open(); err != nil {
		return err
	}
	if err := e.c.Logout(ctx); err != nil {
		return err
	}
	return e.out(map[string]any{"loggedOut": true}, "signed out: this device is removed from the account and its keys are erased")
}

func cmdWhoami(ctx context.Context, e *cli, args []string) error {
	if len(args) != 0 {
		return usageError{"usage: sandi whoami"}
	}
	if err := e.open(); err != nil {
		return err
	}
	if e.c.Username() == "" {
		return client.ErrNoAccount // never registered, or logged out: explain names the home directory
	}
	idk, ok := e.c.IdentityKey()
	v := map[string]any{"username": e.c.Username(), "user": e.c.UserID(), "device": e.c.DeviceID(), "server": e.c.Server()}
	text := fmt.Sprintf("%s on %s\nuser   %s\ndevice %s", untrustedName(e.c.Username()), untrusted(e.c.Server()), e.c.UserID(), e.c.DeviceID())
	if ok {
		v["identityKey"] = idk
		text += "\nidentity " + idk.String()
	} else {
		text += "\nidentity: none yet (run 'sandi link')"
	}
	return e.out(v, text)
}

func cmdDevices(ctx context.Context, e *cli, args []string) (err error) {
	if len(args) > 0 && args[0] == "remove" {
		return cmdDevicesRemove(ctx, e, args[1:])
	}
	if len(args) > 0 && args[0] == "rename" {
		return cmdDevicesRename(ctx, e, args[1:])
	}
	if len(args) != 0 {
		return usageError{"usage: sandi devices [remove ID | rename ID NAME...]"}
	}
	if err := e.open(); err != nil {
		return err
	}
	devs, err := e.c.Devices(ctx)
	if client.IsCode(err, "keys_required") {
		// A device not linked yet sees its own session only.
		return e.keylessSessions(ctx, nil)
	}
	if err != nil {
		return err
	}
	shown := map[string]bool{}
	defer func() {
		// Sessions that are not devices (signed in with the password,
		// never linked) follow, marked.
		if err == nil {
			err = e.keylessSessions(ctx, shown)
		}
	}()
	for _, d := range devs {
		shown[d.ID.String()] = true
		name, added := d.Name, "-"
		if name == "" {
			name = "-"
		}
		if d.CreatedAt != 0 {
			added = time.UnixMilli(d.CreatedAt).Format(time.DateTime)
		}
		state := "signed"
		switch {
		case !d.Listed:
			state = "NOT in the signed list"
		case !d.Keys:
			state = "signed, no keys yet"
		}
		mark := ""
		if d.Current {
			mark = " (this device)"
		}
		line := fmt.Sprintf("%s  %-20s  added %-19s  %s%s", d.ID, untrusted(name), added, state, mark)
		if err := e.out(d, e.wrap(line)); err != nil {
			return err
		}
	}
	return nil
}

// cmdDevicesRemove removes another device of the account: it leaves the
// account's signed device list and the server revokes it at once.
func cmdDevicesRemove(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi devices remove ID (a device id, or 4+ characters of it)"}
	}
	if err := e.open(); err != nil {
		return err
	}
	// A session outside the signed list is signed out without a list.
	if s, err := e.c.FindSession(ctx, args[0]); err == nil && s.SignOut {
		if _, err := e.c.SignOutSession(ctx, s.Device.String()); err != nil {
			return err
		}
		return e.out(map[string]any{"removed": s.Device}, "signed out session "+s.Device.String())
	}
	id, err := e.c.RemoveDevice(ctx, args[0])
	if err != nil {
		return err
	}
	return e.out(map[string]any{"removed": id}, "removed device "+id.String()+"; it can no longer read new messages")
}

func cmdNew(ctx context.Context, e *cli, args []string) error {
	fs := flags("new", e)
	title := fs.String("title", "", "conversation title (sent encrypted)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"usage: sandi new [--title TITLE] USER..."}
	}
	if err := e.open(); err != nil {
		return err
	}
	id, err := e.c.CreateConversation(ctx, *title, fs.Args()...)
	if err != nil {
		return err
	}
	return e.out(map[string]any{"id": id}, id.String())
}

func cmdList(ctx context.Context, e *cli, args []string) error {
	if len(args) != 0 {
		return usageError{"usage: sandi list (or: sandi conversations)"}
	}
	if err := e.open(); err != nil {
		return err
	}
	convs, err := e.c.Conversations(ctx)
	if err != nil {
		return err
	}
	for _, cv := range convs {
		title := untrusted(cv.Title)
		if title == "" {
			title = "-"
		}
		line := fmt.Sprintf("%s  %-20s  %s  (%d unread)%s", cv.ID, title, untrustedList(cv.Members), cv.Unread, statusMark(cv.Status))
		if cv.Request {
			line += "  [request from " + untrustedName(cv.From) + ": sandi requests]"
		}
		if err := e.out(cv, e.wrap(line)); err != nil {
			return err
		}
	}
	return nil
}

func (e *cli) conv(ctx context.Context, s string) (protocol.ConversationID, error) {
	if err := e.open(); err != nil {
		return protocol.ConversationID{}, err
	}
	return e.c.FindConversation(ctx, s)
}

func cmdAdd(ctx context.Context, e *cli, args []string) error {
	if len(args) < 2 {
		return usageError{"usage: sandi add CONV USER..."}
	}
	id, err := e.conv(ctx, args[0])
	if err != nil {
		return err
	}
	if err := e.c.AddMembers(ctx, id, args[1:]...); err != nil {
		return err
	}
	return e.out(map[string]any{"conversation": id, "added": args[1:]}, "added "+strings.Join(args[1:], ", "))
}

func cmdRemove(ctx context.Context, e *cli, args []string) error {
	if len(args) < 2 {
		return usageError{"usage: sandi remove CONV USER..."}
	}
	id, err := e.conv(ctx, args[0])
	if err != nil {
		return err
	}
	if err := e.c.RemoveMembers(ctx, id, args[1:]...); err != nil {
		return err
	}
	return e.out(map[string]any{"conversation": id, "removed": args[1:]}, "removed "+strings.Join(args[1:], ", "))
}

func cmdLeave(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi leave CONV"}
	}
	id, err := e.conv(ctx, args[0])
	if err != nil {
		return err
	}
	if err := e.c.Leave(ctx, id); err != nil {
		return err
	}
	return e.out(map[string]any{"conversation": id, "left": true}, "left "+id.String())
}

func cmdSend(ctx context.Context, e *cli, args []string) error {
	files, words, err := sendArgs(args)
	if err != nil || len(words) < 1 || len(words) < 2 && len(files) == 0 {
		return usageError{"usage: sandi send CONV [--file PATH]... [TEXT...]"}
	}
	id, err := e.conv(ctx, words[0])
	if err != nil {
		return err
	}
	text := strings.Join(words[1:], " ")
	var m client.Message
	if len(files) == 0 {
		m, err = e.c.Send(ctx, id, text)
	} else {
		var atts []client.Attachment
		for _, f := range files {
			a, err := e.uploadFile(ctx, id, f)
			if err != nil {
				return err
			}
			atts = append(atts, a)
		}
		m, err = e.c.SendMessage(ctx, id, text, atts)
	}
	if err != nil {
		return err
	}
	return e.out(map[string]any{"conversation": id, "seq": m.Seq, "attachments": attachmentsJSON(m.Attachments)}, "")
}

// messageCont starts every further line of a message in the text output:
// under the sender, past "[conversation] ", with a bar.
const messageCont = "           | "

// printMessage prints one message: --json {"conversation","sender","text",…};
// else "[conv] sender: text", the text's further lines under it (framed).
func (e *cli) printMessage(m client.Message) error {
	conv := "[" + m.Conversation.String()[:8] + "] "
	if isAction(m) {
		return e.printAction(m)
	}
	if m.Type == client.ContentTitle {
		return e.out(map[string]any{"conversation": m.Conversation, "seq": m.Seq, "sender": m.Sender, "title": m.Text, "sentAt": m.SentAt},
			strings.Join(wrapHanging(conv+untrustedName(m.Sender)+` set the title to "`+untrusted(m.Text)+`"`, e.width(), messageCont), "\n"))
	}
	v := map[string]any{"conversation": m.Conversation, "seq": m.Seq, "sender": m.Sender, "text": m.Text, "sentAt": m.SentAt, "attachments": attachmentsJSON(m.Attachments)}
	if e.requests[m.Conversation] {
		v["request"] = true
	}
	actionJSON(v, m)
	return e.out(v, framed(conv+untrustedName(m.Sender)+": ", m.Text, messageCont, e.width())+e.attachmentLines(m.Attachments)+e.actionLines(m))
}

// width is the number of columns of standard output when it is a terminal,
// else 0 (no wrapping).
func (e *cli) width() int { return termWidth(e.stdout) }

// wrap wraps a line made of the program's text and untrusted() parts to the
// terminal's width, continuations indented.
func (e *cli) wrap(line string) string {
	return strings.Join(wrapHanging(line, e.width(), "    "), "\n")
}

func cmdSync(ctx context.Context, e *cli, args []string) error {
	fs := flags("sync", e)
	fs.BoolVar(&e.peek, "peek", false, "leave the messages printed unread")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageError{"usage: sandi sync [CONV] [--peek]"}
	}
	if err := e.open(); err != nil {
		return err
	}
	var only *protocol.ConversationID
	if fs.NArg() == 1 {
		id, err := e.c.FindConversation(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		only = &id
	}
	return e.syncPrint(ctx, only)
}

// syncPrint syncs the open client and prints the new messages (of only, if
// not nil), failures and warnings; what it printed is marked read unless
// e.peek.
func (e *cli) syncPrint(ctx context.Context, only *protocol.ConversationID) error {
	res, err := e.c.Sync(ctx)
	var printed []client.Message
	lines := res.Lines
	if only != nil {
		lines = slices.DeleteFunc(lines, func(l client.Line) bool { return l.Conversation != *only })
	}
	convs := make([]protocol.ConversationID, 0, len(res.Messages))
	for _, m := range res.Messages {
		convs = append(convs, m.Conversation)
	}
	if nerr := e.noteRequests(convs); nerr != nil {
		return nerr
	}
	for _, m := range res.Messages {
		if only != nil && m.Conversation != *only {
			continue
		}
		if err := e.linesBefore(&lines, m.Conversation, m.Seq, false); err != nil {
			return err
		}
		if err := e.printMessage(m); err != nil {
			return err
		}
		printed = append(printed, m)
	}
	for len(lines) > 0 {
		if err := e.linesBefore(&lines, lines[0].Conversation, 0, false); err != nil {
			return err
		}
	}
	if !e.peek {
		if err := e.markPrinted(printed); err != nil {
			return err
		}
	}
	e.noteRequestsPrinted(printed)
	if err == nil {
		e.sendReceipts(ctx, res.Messages) // delivered, and read unless --peek
	}
	for _, f := range res.Failures {
		printError(e.stderr, f)
	}
	for _, h := range res.Held {
		printError(e.stderr, fmt.Errorf("message %d in [%s] is held until you accept or reject a changed identity key: %w", h.Seq, h.Conversation.String()[:8], h.Err))
		if hint := identityHint(h.Err); hint != "" {
			printWrapped(e.stderr, "sandi: "+hint, errorCont)
		}
	}
	e.printWarnings()
	if err != nil {
		return err
	}
	if len(res.Failures) > 0 {
		return fmt.Errorf("%d messages could not be decrypted", len(res.Failures))
	}
	return nil
}

func (e *cli) printWarnings() {
	ws, err := e.c.Warnings()
	if err != nil {
		return
	}
	for _, w := range ws {
		if w.Kind == client.WarnIdentityChanged {
			who := w.User.String()
			if w.Username != "" {
				who = untrustedName(w.Username)
			}
			printWrapped(e.stderr, fmt.Sprintf("sandi: WARNING: the identity key of %s changed; compare safety numbers ('sandi safety-number %s') before trusting it", who, who), errorCont)
		}
		if w.Kind == client.WarnSessionAdded {
			printWrapped(e.stderr, fmt.Sprintf("sandi: WARNING: a new sign-in to your account with its password (session %s). If it was not you, sign it out ('sandi sessions remove %s') and change your password ('sandi passwd --sign-out-others')", w.Device, w.Device), errorCont)
		}
	}
}

func cmdSafetyNumber(ctx context.Context, e *cli, args []string) error {
	if len(args) != 1 {
		return usageError{"usage: sandi safety-number USER"}
	}
	if err := e.open(); err != nil {
		return err
	}
	n, qr, err := e.c.SafetyNumber(ctx, args[0])
	if err != nil {
		return err
	}
	return e.out(map[string]any{"user": args[0], "safetyNumber": strings.ReplaceAll(n, " ", ""), "qr": fmt.Sprintf("%x", qr)}, n)
}

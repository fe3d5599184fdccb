//go:build js && wasm

// Command wasm is the web client's WebAssembly module: sandi's Go SDK
// (package client) with the device's state in IndexedDB, offered to the
// page as the global object `sandi`. Every cryptographic operation of the
// web client happens here, in the same Go code the command-line client
// runs.
//
// Every function of `sandi` that may wait (on IndexedDB, the network or the
// client's lock) returns a Promise and does its work in a goroutine: code
// that blocks on the browser's event loop would deadlock the page. Values
// cross to JavaScript as JSON. A rejected Promise carries an Error whose
// `code` is the server's problem code (docs/api.md) when there is one.
//
// Build it with `go generate ./web`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
	"sandi.dev/web/internal/qr"
)

// dbName is the IndexedDB database of the device (one per origin).
const dbName = "sandi"

// Keys the web client keeps next to the SDK's in the same storage.
const (
	keyWarnings   = "app/warnings"    // shown until dismissed (JSON lines)
	keyFailures   = "app/failures/"   // + conversation: messages that did not decrypt
	keyAlarmsSeen = "app/alarms-seen" // how many alarms of the log the user has seen
)

type app struct {
	mu     sync.Mutex
	st     *client.IDBStorage
	c      *client.Client
	stop   context.CancelFunc // ends Listen
	change js.Value           // the page's onChange, set by listen
	unlink context.CancelFunc // ends WaitLink
	last   map[protocol.ConversationID]*client.Message

	jobs     jobs                         // running uploads and downloads
	uploaded map[string]client.Attachment // by handle, until sent
}

var a = &app{last: map[protocol.ConversationID]*client.Message{}, uploaded: map[string]client.Attachment{}}

func main() {
	if len(os.Args) > 1 && os.Args[1] == workerMode {
		worker()
		return
	}
	api := map[string]func(args []js.Value) (any, error){
		"open":            a.open,
		"state":           func([]js.Value) (any, error) { return a.state() },
		"register":        a.register,
		"login":           a.login,
		"startLink":       a.startLink,
		"waitLink":        a.waitLink,
		"pendingTransfer": a.pendingTransfer,
		"resumeTransfer":  a.resumeTransfer,
		"resetIdentity":   a.resetIdentity,
		"approveLink":     a.approveLink,
		"devices":         a.devices,
		"removeDevice":    a.removeDevice,
		"sessions":        a.sessions,
		"signOutSession":  a.signOutSession,
		"changePassword":  a.changePassword,
		"conversations":   a.conversations,
		"history":         a.history,
		"send":            a.send,
		"upload":          a.upload,
		"download":        a.download,
		"cancel":          a.cancel,
		"forget":          a.forget,
		"act":             a.act,
		"create":          a.create,
		"findUser":        a.findUser,
		"addMember":       a.addMember,
		"removeMember":    a.removeMember,
		"leave":           a.leave,
		"rename":          a.rename,
		"setTimer":        a.setTimer,
		"expire":          a.expire,
		"lines":           a.lines,
		"markRead":        a.markRead,
		"search":          a.search,
		"outbox":          a.outbox,
		"outboxPut":       a.outboxPut,
		"outboxDelete":    a.outboxDelete,
		"sendReceipts":    a.sendReceipts, // receipts.go
		"typing":          a.typing,
		"readReceipts":    a.readReceipts,
		"safety":          a.safety,
		"contacts":        a.contacts,
		"contact":         a.contact,
		"verify":          a.verify,
		"unverify":        a.unverify,
		"acceptIdentity":  a.acceptIdentity,
		"trust":           a.trust,
		"alarms":          a.alarms,
		"seeAlarms":       a.seeAlarms,
		"warnings":        a.warnings,
		"dismissWarnings": func([]js.Value) (any, error) {
			st, _, err := a.get()
			if err != nil {
				return nil, err
			}
			return nil, st.Delete(keyWarnings)
		},
		"logout":     a.logout,
		"kept":       keptHistories,
		"forgetKept": forgetKept,
		"rekeyBack":  a.rekeyBack,
		"restore":    a.restore,
		"backupStatus": func([]js.Value) (any, error) {
			return a.with(func(ctx context.Context, c *client.Client) (any, error) {
				on, last, err := c.BackupStatus()
				return map[string]any{"enabled": on, "last": last}, err
			})
		},
		// enableBackup turns backups on and answers with the recovery key,
		// to show once (protocol.md §14.3).
		"enableBackup": func([]js.Value) (any, error) {
			return a.with(func(ctx context.Context, c *client.Client) (any, error) {
				k, err := c.EnableBackup(ctx)
				if err != nil {
					return nil, err
				}
				return k.String(), nil
			})
		},
		// backupNow uploads a backup now; maybeBackup does if the last is
		// older than the client's BackupEvery (the page calls it while it
		// is used) and answers whether it did; disableBackup deletes the
		// server's copy and this browser's recovery key.
		"backupNow": func([]js.Value) (any, error) {
			return a.with(func(ctx context.Context, c *client.Client) (any, error) { return nil, c.BackupNow(ctx) })
		},
		"maybeBackup": func([]js.Value) (any, error) {
			return a.with(func(ctx context.Context, c *client.Client) (any, error) { return c.MaybeBackup(ctx) })
		},
		"disableBackup": func([]js.Value) (any, error) {
			return a.with(func(ctx context.Context, c *client.Client) (any, error) { return nil, c.DisableBackup(ctx) })
		},
	}
	for name, f := range a.requestFuncs() {
		api[name] = f
	}
	obj := js.Global().Get("Object").New()
	for name, f := range api {
		obj.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any { return promise(func() (any, error) { return f(args) }) }))
	}
	// listen starts the live event stream; it returns at once.
	obj.Set("listen", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 3 {
			return jsError(errors.New("listen(onMessage, onFailure, onChange)"))
		}
		go a.listen(args[0], args[1], args[2], arg(args, 3), arg(args, 4), arg(args, 5))
		return nil
	}))
	js.Global().Set("sandi", obj)
	if ready := js.Global().Get("sandiLoaded"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {}
}

// promise runs f in a goroutine and returns a Promise of its result.
func promise(f func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		go func() {
			v, err := f()
			if err != nil {
				reject.Invoke(jsError(err))
				return
			}
			resolve.Invoke(toJS(v))
		}()
		return nil
	})
	p := js.Global().Get("Promise").New(executor)
	executor.Release() // the executor has run: the Promise constructor calls it at once
	return p
}

// jsError turns err into a JavaScript Error with the server's problem
// code, if any, as `code`.
func jsError(err error) js.Value {
	e := js.Global().Get("Error").New(err.Error())
	var ae *client.APIError
	var ie *client.IdentityError
	switch {
	case errors.As(err, &ie):
		// identity_not_accepted: sending (or verifying) waits for the user;
		// the page names the account and offers what fits.
		e.Set("code", "identity_not_accepted")
		e.Set("user", ie.User.String())
		e.Set("username", ie.Username)
		e.Set("pending", ie.Pending)
		e.Set("own", ie.Own)
		if !ie.Conversation.IsZero() {
			e.Set("conversation", ie.Conversation.String())
		}
	case errors.Is(err, client.ErrSafetyNumberMismatch):
		e.Set("code", "safety_number_mismatch")
	case errors.As(err, &ae):
		e.Set("code", ae.Code)
		if ae.Detail != "" {
			e.Set("detail", ae.Detail)
		}
	case errors.Is(err, errCanceled):
		e.Set("code", "canceled")
	case errors.Is(err, client.ErrUnknownUser):
		e.Set("code", "unknown_user")
	case errors.Is(err, client.ErrNoIdentity):
		e.Set("code", "no_identity")
	case errors.Is(err, client.ErrNoAccount):
		e.Set("code", "no_account")
	case errors.Is(err, client.ErrAttachmentGone):
		e.Set("code", "attachment_gone")
	case errors.Is(err, client.ErrAttachmentCorrupt):
		e.Set("code", "attachment_corrupt")
	case errors.Is(err, client.ErrNotYours):
		e.Set("code", "not_yours")
	case errors.Is(err, client.ErrUnknownMessage):
		e.Set("code", "unknown_message")
	case errors.Is(err, client.ErrServerMisbehaved):
		e.Set("code", "server_misbehaved")
	case errors.Is(err, client.ErrLinkExpired):
		e.Set("code", "link_expired")
	case errors.Is(err, client.ErrLinkAmbiguous):
		e.Set("code", "link_ambiguous")
	case errors.Is(err, client.ErrNoLinkRequest):
		e.Set("code", "no_link_request")
	case errors.Is(err, client.ErrLinkCode):
		e.Set("code", "bad_link_code")
	}
	return e
}

// toJS converts a Go value to JavaScript through JSON.
func toJS(v any) any {
	if v == nil {
		return js.Undefined()
	}
	switch v := v.(type) {
	case string:
		return v
	case js.Value:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return jsError(err)
	}
	return js.Global().Get("JSON").Call("parse", string(b))
}

func str(args []js.Value, i int) string {
	if i >= len(args) || args[i].Type() != js.TypeString {
		return ""
	}
	return args[i].String()
}

func conv(args []js.Value) (protocol.ConversationID, error) {
	id, err := protocol.ParseConversationID(str(args, 0))
	if err != nil {
		return id, fmt.Errorf("not a conversation id: %q", str(args, 0))
	}
	return id, nil
}

// get returns the storage and client once open has run.
func (a *app) get() (*client.IDBStorage, *client.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c == nil {
		return nil, nil, errors.New("sandi is not open yet")
	}
	return a.st, a.c, nil
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// with runs f on the open client with a bounded context.
func (a *app) with(f func(ctx context.Context, c *client.Client) (any, error)) (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	ctx, cancel := ctx()
	defer cancel()
	return f(ctx, c)
}

// withState is with for a call that changes the account: it answers with
// the new state.
func (a *app) withState(f func(ctx context.Context, c *client.Client) error) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		if err := f(ctx, c); err != nil {
			return nil, err
		}
		return stateOf(c), nil
	})
}

// open opens the device's storage and client: open(deviceName).
func (a *app) open(args []js.Value) (any, error) {
	a.mu.Lock()
	if a.c != nil {
		a.mu.Unlock()
		return a.state()
	}
	defer a.mu.Unlock()
	st, err := client.OpenIDBStorage(dbName)
	if err != nil {
		return nil, err
	}
	name := str(args, 0)
	if name == "" {
		name = "web browser"
	}
	origin := js.Global().Get("location").Get("origin").String()
	c, err := client.Open(client.Options{Server: origin, Storage: st, DeviceName: name, OnChange: a.changed})
	if err != nil {
		st.Close()
		return nil, err
	}
	a.st, a.c = st, c
	return stateOf(c), nil
}

type state struct {
	Username    string `json:"username"`
	User        string `json:"userId,omitempty"`
	Device      string `json:"deviceId,omitempty"`
	HasAccount  bool   `json:"hasAccount"`
	HasIdentity bool   `json:"hasIdentity"`
}

func stateOf(c *client.Client) state {
	s := state{Username: c.Username()}
	if s.Username != "" {
		s.HasAccount = true
		s.User, s.Device = c.UserID().String(), c.DeviceID().String()
	}
	_, s.HasIdentity = c.IdentityKey()
	return s
}

func (a *app) state() (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	return stateOf(c), nil
}

func (a *app) register(args []js.Value) (any, error) {
	return a.withState(func(ctx context.Context, c *client.Client) error {
		return c.Register(ctx, str(args, 0), str(args, 1))
	})
}

func (a *app) login(args []js.Value) (any, error) {
	return a.withState(func(ctx context.Context, c *client.Client) error {
		return c.Login(ctx, str(args, 0), str(args, 1))
	})
}

// startLink starts linking this new device: {code, qr}, the code to show
// (protocol.md §11) and, as rows of "0" and "1", a QR code (level M) of
// its 26 characters without dashes, which is what a reader of the code
// accepts too.
func (a *app) startLink([]js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		code, err := c.StartLink(ctx)
		if err != nil {
			return nil, err
		}
		rows, err := qrRows([]byte(strings.ReplaceAll(code, "-", "")))
		if err != nil {
			return nil, err
		}
		return map[string]any{"code": code, "qr": rows}, nil
	})
}

// qrRows encodes data as a QR code at level M, as rows of "0" and "1".
func qrRows(data []byte) ([]string, error) {
	code, err := qr.Encode(data, qr.M)
	if err != nil {
		return nil, err
	}
	rows := make([]string, code.Size)
	for y := range code.Size {
		var sb strings.Builder
		for x := range code.Size {
			if code.Dark(x, y) {
				sb.WriteByte('1')
			} else {
				sb.WriteByte('0')
			}
		}
		rows[y] = sb.String()
	}
	return rows, nil
}

// waitLink resolves when another device has confirmed this device's link
// code. A later waitLink, resetIdentity or logout ends an earlier one.
func (a *app) waitLink([]js.Value) (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.mu.Lock()
	if a.unlink != nil {
		a.unlink()
	}
	a.unlink = cancel
	a.mu.Unlock()
	defer cancel()
	// A failed import of what the other device handed over leaves this
	// device linked, the offer kept: the main view tries it again
	// (pendingTransfer, resumeTransfer).
	if err := c.WaitLink(ctx, 1500*time.Millisecond); err != nil && !errors.Is(err, client.ErrTransfer) {
		return nil, err
	}
	return stateOf(c), nil
}

// pendingTransfer reports whether what another device handed over at
// this device's link (its history, or its block list and message
// requests) awaits an import that failed.
func (a *app) pendingTransfer([]js.Value) (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	return c.PendingTransfer(), nil
}

// resumeTransfer tries the pending import again (protocol.md §14.5); none
// pending is not an error.
func (a *app) resumeTransfer([]js.Value) (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	// The import bounds its own time (the SDK's archive timeout): a
	// history may take longer than ctx's two minutes.
	return nil, c.ResumeTransfer(context.Background())
}

func (a *app) resetIdentity([]js.Value) (any, error) {
	return a.withState(func(ctx context.Context, c *client.Client) error {
		a.mu.Lock()
		if a.unlink != nil {
			a.unlink()
		}
		a.mu.Unlock()
		return c.ResetIdentity(ctx)
	})
}

// approveLink(code, history) confirms a new device; history "all" also
// transfers this browser's history to it (protocol.md §14.5).
func (a *app) approveLink(args []js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		h := client.LinkHistory{Transfer: str(args, 1) == "all"}
		dev, err := c.ApproveLinkWith(ctx, strings.Join(strings.Fields(str(args, 0)), ""), h)
		if err != nil {
			return nil, err
		}
		return dev.String(), nil
	})
}

func (a *app) devices([]js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) { return c.Devices(ctx) })
}

// removeDevice(id) removes another device of the account: it leaves the
// signed device list and the server revokes it at once.
func (a *app) removeDevice(args []js.Value) (any, error) {
	if len(args) < 1 {
		return nil, errors.New("removeDevice(id)")
	}
	id := args[0].String()
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		dev, err := c.RemoveDevice(ctx, id)
		if err != nil {
			return nil, err
		}
		return dev.String(), nil
	})
}

// sessions lists every device signed in to the account (client.Session),
// keyless ones (signed in with the password, never linked) marked.
func (a *app) sessions([]js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) { return c.Sessions(ctx) })
}

// signOutSession(id) signs out a session the signed device list does not
// name; the server revokes it at once.
func (a *app) signOutSession(args []js.Value) (any, error) {
	if len(args) < 1 {
		return nil, errors.New("signOutSession(id)")
	}
	id := args[0].String()
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		dev, err := c.SignOutSession(ctx, id)
		if err != nil {
			return nil, err
		}
		return dev.String(), nil
	})
}

// changePassword(old, new, signOutOthers) changes the account's password
// and returns the ids of the sessions it signed out.
func (a *app) changePassword(args []js.Value) (any, error) {
	if len(args) < 3 {
		return nil, errors.New("changePassword(oldPassword, newPassword, signOutOthers)")
	}
	oldPw, newPw, others := args[0].String(), args[1].String(), args[2].Truthy()
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		revoked, err := c.ChangePassword(ctx, oldPw, newPw, others)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(revoked))
		for i, d := range revoked {
			out[i] = d.String()
		}
		return out, nil
	})
}

// lastOf returns the last text or title message of a conversation,
// reading the history once and keeping it up to date after that.
func (a *app) lastOf(c *client.Client, id protocol.ConversationID) (*client.Message, error) {
	a.mu.Lock()
	m, ok := a.last[id]
	a.mu.Unlock()
	if ok && (m == nil || m.ExpiresAt == 0 || m.ExpiresAt > time.Now().UnixMilli()) {
		return m, nil
	}
	if ok { // its timer ran out: the history holds it no more
		a.mu.Lock()
		delete(a.last, id)
		a.mu.Unlock()
	}
	h, err := c.History(id)
	if err != nil {
		return nil, err
	}
	if len(h) > 0 {
		m = &h[len(h)-1]
	}
	a.noteLast(id, m)
	return m, nil
}

// noteLast remembers m as the last message of a conversation unless a
// later one is known (m nil: the conversation has none yet).
func (a *app) noteLast(id protocol.ConversationID, m *client.Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.last[id]; old != nil && (m == nil || old.Seq > m.Seq) {
		return
	}
	a.last[id] = m
}

func (a *app) conversations([]js.Value) (any, error) {
	st, c, err := a.get()
	if err != nil {
		return nil, err
	}
	ctx, cancel := ctx()
	defer cancel()
	list, err := c.Conversations(ctx)
	if err != nil {
		return storedConversations(st, err)
	}
	out := make([]convView, len(list))
	for i := range list {
		out[i].Conversation = list[i]
		last, err := a.lastOf(c, list[i].ID)
		if err != nil {
			return nil, err
		}
		if last != nil {
			v := view(*last)
			out[i].Last = &v
		}
	}
	keepConversations(st, out)
	return out, nil
}

// convView is a conversation as the page sees it: its last message
// without attachment keys.
type convView struct {
	client.Conversation
	Last *msgView `json:"last,omitempty"`
}

// failure is a message that did not decrypt, as the page shows it.
type failure struct {
	Conversation protocol.ConversationID `json:"conversation"`
	Seq          uint64                  `json:"seq"`
	Reason       string                  `json:"reason"`
	Detail       string                  `json:"detail"`
	At           int64                   `json:"at"`
}

func (a *app) failures(st *client.IDBStorage, id protocol.ConversationID) ([]failure, error) {
	b, err := st.Get(keyFailures + id.String())
	if errors.Is(err, client.ErrNoValue) {
		return []failure{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []failure{}
	for _, line := range strings.Split(string(b), "\n") {
		var f failure
		if json.Unmarshal([]byte(line), &f) == nil {
			out = append(out, f)
		}
	}
	return out, nil
}

// history returns {messages, failures} of a conversation.
func (a *app) history(args []js.Value) (any, error) {
	st, c, err := a.get()
	if err != nil {
		return nil, err
	}
	id, err := conv(args)
	if err != nil {
		return nil, err
	}
	h, err := c.History(id)
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = []client.Message{}
	}
	fs, err := a.failures(st, id)
	if err != nil {
		return nil, err
	}
	lines, err := c.Lines(id)
	if err != nil {
		return nil, err
	}
	if lines == nil {
		lines = []client.Line{}
	}
	// lines: the timeline lines (each after the messages up to its
	// afterSeq). The page schedules expire from the messages it shows
	// (their expiresAt), live ones included.
	return map[string]any{"messages": views(h), "failures": fs, "lines": lines}, nil
}

func (a *app) send(args []js.Value) (any, error) {
	c, id, err := a.inConv(args)
	if err != nil {
		return nil, err
	}
	ctx, cancel := ctx()
	defer cancel()
	// send(conv, text, clientId): the page keeps one client id per pending
	// message, so Retry re-sends the same envelope and the server stores
	// the message once even if an earlier attempt's outcome was lost.
	clientID := str(args, 2)
	if clientID == "" {
		clientID = client.NewClientID()
	}
	// send(conv, text, clientId, handles): handles of uploads (upload).
	atts, handles, err := a.attachments(args)
	if err != nil {
		return nil, err
	}
	var m client.Message
	if len(atts) > 0 {
		m, err = c.SendMessageWithID(ctx, id, clientID, str(args, 1), atts)
	} else {
		m, err = c.SendWithID(ctx, id, clientID, str(args, 1))
	}
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	for _, h := range handles {
		delete(a.uploaded, h)
	}
	a.mu.Unlock()
	a.noteLast(id, &m)
	return view(m), nil
}

// create makes a conversation: create(title, [usernames]).
func (a *app) create(args []js.Value) (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	var users []string
	if len(args) > 1 && args[1].Type() == js.TypeObject {
		for i := range args[1].Length() {
			users = append(users, args[1].Index(i).String())
		}
	}
	if len(users) == 0 {
		return nil, errors.New("pick at least one other member")
	}
	ctx, cancel := ctx()
	defer cancel()
	id, err := c.CreateConversation(ctx, strings.TrimSpace(str(args, 0)), users...)
	if err != nil {
		return nil, err
	}
	return id.String(), nil
}

func (a *app) findUser(args []js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		return c.FindUser(ctx, strings.TrimSpace(str(args, 0)))
	})
}

func (a *app) member(args []js.Value, f func(ctx context.Context, c *client.Client, id protocol.ConversationID, user string) error) (any, error) {
	id, err := conv(args)
	if err != nil {
		return nil, err
	}
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		return nil, f(ctx, c, id, strings.TrimSpace(str(args, 1)))
	})
}

func (a *app) addMember(args []js.Value) (any, error) {
	return a.member(args, func(ctx context.Context, c *client.Client, id protocol.ConversationID, user string) error {
		return c.AddMembers(ctx, id, user)
	})
}

func (a *app) removeMember(args []js.Value) (any, error) {
	return a.member(args, func(ctx context.Context, c *client.Client, id protocol.ConversationID, user string) error {
		return c.RemoveMembers(ctx, id, user)
	})
}

func (a *app) rename(args []js.Value) (any, error) {
	return a.member(args, func(ctx context.Context, c *client.Client, id protocol.ConversationID, title string) error {
		return c.Rename(ctx, id, title)
	})
}

// setTimer(conv, seconds) sets the disappearing-message timer (0: off).
func (a *app) setTimer(args []js.Value) (any, error) {
	if len(args) < 2 || args[1].Type() != js.TypeNumber || args[1].Float() < 0 || args[1].Float() > math.MaxUint32 || args[1].Float() != math.Trunc(args[1].Float()) {
		return nil, errors.New("setTimer(conv, seconds): seconds is a whole number from 0 to 2^32-1")
	}
	secs := uint32(args[1].Float())
	return a.member(args[:1], func(ctx context.Context, c *client.Client, id protocol.ConversationID, _ string) error {
		return c.SetTimer(ctx, id, secs)
	})
}

// lines returns the timeline lines of a conversation (without reading
// its history).
func (a *app) lines(args []js.Value) (any, error) {
	c, id, err := a.inConv(args)
	if err != nil {
		return nil, err
	}
	ls, err := c.Lines(id)
	if ls == nil {
		ls = []client.Line{}
	}
	return ls, err
}

// expire erases the messages whose timer ran out (the page then shows the
// history again).
func (a *app) expire([]js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		return nil, c.ExpireMessages()
	})
}

func (a *app) leave(args []js.Value) (any, error) {
	return a.member(args, func(ctx context.Context, c *client.Client, id protocol.ConversationID, _ string) error {
		return c.Leave(ctx, id)
	})
}

func (a *app) markRead(args []js.Value) (any, error) {
	c, id, err := a.inConv(args)
	if err != nil {
		return nil, err
	}
	return nil, c.MarkRead(id)
}

// safety returns the safety number with a user and its QR code as rows of
// "0" and "1" (level M: the 65-byte payload is a 37×37 symbol).
func (a *app) safety(args []js.Value) (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	ctx, cancel := ctx()
	defer cancel()
	number, payload, err := c.SafetyNumber(ctx, strings.TrimSpace(str(args, 0)))
	if err != nil {
		return nil, err
	}
	code, err := qr.Encode(payload, qr.M)
	if err != nil {
		return nil, err
	}
	rows := make([]string, code.Size)
	for y := range code.Size {
		var sb strings.Builder
		for x := range code.Size {
			if code.Dark(x, y) {
				sb.WriteByte('1')
			} else {
				sb.WriteByte('0')
			}
		}
		rows[y] = sb.String()
	}
	return map[string]any{"number": number, "qr": rows}, nil
}

// contacts lists the accounts this device has pinned (protocol.md §10.1).
func (a *app) contacts([]js.Value) (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	cts, err := c.Contacts()
	if cts == nil {
		cts = []client.Contact{}
	}
	return cts, err
}

// contact(user) is one account as the trust store holds it (pinned on
// first contact, as a lookup does).
func (a *app) contact(args []js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		return c.Contact(ctx, strings.TrimSpace(str(args, 0)))
	})
}

// verify(user, number) marks user verified if number (typed or pasted:
// digits, spaces and hyphens) is the safety number of the pinned keys. A
// wrong number is the error safety_number_mismatch and changes nothing; a
// pending key change is identity_not_accepted. It answers with the contact.
func (a *app) verify(args []js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		user := strings.TrimSpace(str(args, 0))
		if err := c.MarkVerified(ctx, user, []byte(strings.TrimSpace(str(args, 1)))); err != nil {
			return nil, err
		}
		return c.Contact(ctx, user)
	})
}

// unverify(user) clears the mark; it answers with the contact.
func (a *app) unverify(args []js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		user := strings.TrimSpace(str(args, 0))
		if err := c.Unverify(ctx, user); err != nil {
			return nil, err
		}
		return c.Contact(ctx, user)
	})
}

// acceptIdentity(user) accepts user's pending key: {old, new}, the safety
// numbers of the key replaced and of the key now pinned.
func (a *app) acceptIdentity(args []js.Value) (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	old, fresh, err := c.AcceptIdentity(strings.TrimSpace(str(args, 0)))
	if err != nil {
		return nil, err
	}
	a.changed()
	return map[string]string{"old": old, "new": fresh}, nil
}

// memberTrust is one member of a conversation as the members panel shows it.
type memberTrust struct {
	Name string `json:"name"` // as the conversation list names it
	client.Contact
}

// blocked says why sending in a conversation waits (nil: it does not).
type blocked struct {
	User     string `json:"user"`
	Username string `json:"username"`
	// Pending: a new key of the contact waits for acceptIdentity; the
	// safety numbers of the pinned (old) and of the new key.
	Pending   bool   `json:"pending"`
	OldNumber string `json:"oldSafetyNumber,omitempty"`
	NewNumber string `json:"newSafetyNumber,omitempty"`
	// Own: the conversation names a key for this account that is not
	// this device's.
	Own    bool   `json:"own"`
	Detail string `json:"detail"`
}

// trust(conv, [member names]) answers {members, blocked}: the trust state
// of each other member, and why sending in conv waits, if it does.
func (a *app) trust(args []js.Value) (any, error) {
	id, err := conv(args)
	if err != nil {
		return nil, err
	}
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		out := struct {
			Members []memberTrust `json:"members"`
			Blocked *blocked      `json:"blocked"`
		}{Members: []memberTrust{}}
		me := c.Username()
		if len(args) > 1 && args[1].Type() == js.TypeObject {
			for i := range args[1].Length() {
				name := args[1].Index(i).String()
				if name == me {
					continue
				}
				ct, err := c.Contact(ctx, name)
				if err != nil {
					continue // shown without a state (an account deleted, a lookup that failed)
				}
				out.Members = append(out.Members, memberTrust{Name: name, Contact: ct})
			}
		}
		err := c.CheckTrust(id)
		var ie *client.IdentityError
		if errors.As(err, &ie) {
			b := &blocked{User: ie.User.String(), Username: ie.Username, Pending: ie.Pending, Own: ie.Own, Detail: ie.Error()}
			if ie.Pending {
				if ct, err := c.Contact(ctx, ie.User.String()); err == nil {
					b.OldNumber, b.NewNumber = ct.SafetyNumber, ct.PendingSafetyNumber
					if b.Username == "" {
						b.Username = ct.Username
					}
				}
			}
			out.Blocked = b
		} else if err != nil {
			return nil, err
		}
		return out, nil
	})
}

// alarms answers {alarms, seen}: the device's whole alarm log, oldest
// first (it survives reloads: it is in the SDK's storage), and how many of
// them the user has seen (seeAlarms).
func (a *app) alarms([]js.Value) (any, error) {
	st, c, err := a.get()
	if err != nil {
		return nil, err
	}
	as, err := c.Alarms(protocol.ConversationID{})
	if err != nil {
		return nil, err
	}
	if as == nil {
		as = []client.Alarm{}
	}
	seen := 0
	if b, err := st.Get(keyAlarmsSeen); err == nil {
		// A count this page wrote; anything else reads as none seen.
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			seen = n
		}
	} else if !errors.Is(err, client.ErrNoValue) {
		return nil, err
	}
	return map[string]any{"alarms": as, "seen": min(seen, len(as))}, nil
}

// seeAlarms(n) records that the user has seen the first n alarms.
func (a *app) seeAlarms(args []js.Value) (any, error) {
	st, _, err := a.get()
	if err != nil {
		return nil, err
	}
	n := 0
	if len(args) > 0 && args[0].Type() == js.TypeNumber {
		n = args[0].Int()
	}
	if n < 0 {
		return nil, errors.New("seeAlarms(n): n is a count")
	}
	return nil, st.Put(keyAlarmsSeen, []byte(fmt.Sprint(n)))
}

// warnings returns the warnings not yet dismissed, newest last. The SDK
// hands each warning over once; they are kept here until the user
// dismisses them, so a reload does not lose one.
func (a *app) warnings([]js.Value) (any, error) {
	st, c, err := a.get()
	if err != nil {
		return nil, err
	}
	ws, err := c.Warnings()
	if err != nil {
		return nil, err
	}
	me := c.UserID()
	for _, w := range ws {
		if w.Kind == client.WarnIdentityChanged && w.User == me {
			continue // this account's own new key (a reset on another device)
		}
		b, err := json.Marshal(w)
		if err != nil {
			return nil, err
		}
		if err := st.Append(keyWarnings, append(b, '\n')); err != nil {
			return nil, err
		}
	}
	b, err := st.Get(keyWarnings)
	if errors.Is(err, client.ErrNoValue) {
		return []client.Warning{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []client.Warning{}
	for _, line := range strings.Split(string(b), "\n") {
		var w client.Warning
		if json.Unmarshal([]byte(line), &w) == nil {
			out = append(out, w)
		}
	}
	return out, nil
}

// changed tells the page that something other than a message changed
// (members, keys, devices): it runs with the client locked, so the page
// only schedules a refresh.
func (a *app) changed() {
	a.mu.Lock()
	f := a.change
	a.mu.Unlock()
	if f.Type() == js.TypeFunction {
		f.Invoke()
	}
}

// listen runs the live event stream until logout, calling onMessage(m) for
// each new message, onFailure(f) for each that does not decrypt (the
// failure is stored too, so a reload still shows it) and onChange() when
// something else changed; and, if given, onReceipt and onTyping
// (receipts.go), and onConnection(up) when the event stream's connection
// comes up or drops (the page's connection indicator).
func (a *app) listen(onMessage, onFailure, onChange, onReceipt, onTyping, onConnection js.Value) {
	st, c, err := a.get()
	if err != nil {
		return
	}
	liveReceipts(c, onReceipt, onTyping)
	if onConnection.Type() == js.TypeFunction {
		c.OnConnection(func(up bool) { onConnection.Invoke(up) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.mu.Lock()
	if a.stop != nil {
		a.stop()
	}
	a.stop = cancel
	a.change = onChange
	a.mu.Unlock()
	c.Listen(ctx, func(m client.Message) {
		if !isAction(m) {
			a.noteLast(m.Conversation, &m)
		}
		onMessage.Invoke(toJS(view(m)))
	}, func(de *client.DecryptError) {
		f := failure{Conversation: de.Conversation, Seq: de.Seq, Reason: de.Reason, Detail: de.Err.Error(), At: time.Now().UnixMilli()}
		if b, err := json.Marshal(f); err == nil {
			st.Append(keyFailures+f.Conversation.String(), append(b, '\n'))
		}
		onFailure.Invoke(toJS(f))
	})
}

// logout(keepHistory) signs the device out on the server and deletes its
// IndexedDB database: keys, protocol state and history. The local data
// goes even when the server cannot be reached; the answer then says so.
// With keepHistory, a read-only copy of the decrypted history is kept
// first (kept.go; a failure there logs nothing out).
func (a *app) logout(args []js.Value) (any, error) {
	st, c, err := a.get()
	if err != nil {
		return nil, err
	}
	if len(args) > 0 && args[0].Truthy() {
		if err := keepHistory(c); err != nil {
			return nil, fmt.Errorf("the history could not be kept, so nothing was logged out: %w", err)
		}
	}
	a.mu.Lock()
	for _, stop := range []context.CancelFunc{a.stop, a.unlink} {
		if stop != nil {
			stop()
		}
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	serverErr := c.Logout(ctx)
	if errors.Is(serverErr, client.ErrNoAccount) {
		serverErr = nil
	}
	a.mu.Lock()
	a.c, a.st = nil, nil
	a.mu.Unlock()
	st.Close()
	if err := client.DeleteIDBStorage(dbName); err != nil {
		return nil, fmt.Errorf("delete this browser's sandi data: %w", err)
	}
	if serverErr != nil {
		return map[string]string{"warning": "the server could not be told (" + serverErr.Error() + "); this browser's data is deleted"}, nil
	}
	return map[string]string{}, nil
}

// rekeyBack(conv?) restores this device's identity key and the account's
// role where a rekey of the account that its key did not co-sign replaced
// them (an own_rekey alarm; protocol.md §6.2), in conv or in every
// conversation; it answers with the ids of the conversations restored.
func (a *app) rekeyBack(args []js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		var convs []protocol.ConversationID
		if s := str(args, 0); s != "" {
			id, err := protocol.ParseConversationID(s)
			if err != nil {
				return nil, err
			}
			convs = append(convs, id)
		}
		done, err := c.RekeyBackIn(ctx, nil, convs...)
		if err != nil {
			return nil, err
		}
		out := []string{}
		for _, id := range done {
			out = append(out, id.String())
		}
		a.changed()
		return out, nil
	})
}

// restore(recoveryKey) brings the account back from its backup on this
// browser, which signed in and holds no keys (protocol.md §14.4), and
// answers with the new state and backupMade, when the restored backup was
// made (Unix ms; the page shows it). Once restored, it ends a pending
// waitLink (a failed restore leaves the link code usable).
func (a *app) restore(args []js.Value) (any, error) {
	return a.with(func(ctx context.Context, c *client.Client) (any, error) {
		if err := c.Restore(ctx, str(args, 0)); err != nil {
			return nil, err
		}
		a.mu.Lock()
		if a.unlink != nil {
			a.unlink()
		}
		a.mu.Unlock()
		_, made, err := c.BackupStatus()
		if err != nil {
			return nil, err
		}
		return struct {
			state
			BackupMade int64 `json:"backupMade"`
		}{stateOf(c), made}, nil
	})
}

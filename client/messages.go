package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Content types of a message's plaintext.
const (
	ContentText  = "text"
	ContentTitle = "title" // sets the conversation's title
)

// Content is a message's plaintext: a small JSON object (protocol.md leaves
// the plaintext to the application; this is sandi's).
type Content struct {
	Type   string `json:"type"`
	Text   string `json:"text"`
	SentAt int64  `json:"sentAt,omitempty"` // the sender's clock, Unix ms
	// Attachments are files shared by a text message (attachments.go,
	// protocol.md §13.5); the text may then be empty.
	Attachments []Attachment `json:"attachments,omitempty"`
	// Target is the Ref of the message a reply, reaction, edit or delete
	// is about (actions.go, protocol.md §13.7).
	Target string `json:"target,omitempty"`
	// Timer is the disappearing-message timer, in seconds, of the
	// conversation state the sender held (disappear.go, protocol.md
	// §13.10); absent when off.
	Timer uint32 `json:"timer,omitempty"`
}

// MaxText is the longest message text, in bytes.
const MaxText = 32 * 1024

// ParseContent decodes and checks a decrypted plaintext.
func ParseContent(b []byte) (Content, error) {
	var ct Content
	if len(b) > secret.MaxPlaintext {
		return ct, errors.New("message content: longer than a message's plaintext may be")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ct); err != nil {
		return ct, fmt.Errorf("message content: %w", err)
	}
	if dec.More() {
		return ct, errors.New("message content: trailing data")
	}
	if ct.Type != ContentText && ct.Type != ContentTitle && ct.Type != ContentReceipt && !isAction(ct.Type) {
		return ct, fmt.Errorf("message content: unknown type %q", ct.Type)
	}
	if !utf8.ValidString(ct.Text) || len(ct.Text) > MaxText {
		return ct, errors.New("message content: text is not valid UTF-8 or too long")
	}
	check := checkAction
	if ct.Type == ContentReceipt {
		check = checkReceipt // receipts.go
	}
	if err := check(ct); err != nil {
		return ct, fmt.Errorf("message content: %w", err)
	}
	if err := checkAttachments(ct.Type, ct.Attachments); err != nil {
		return ct, fmt.Errorf("message content: %w", err)
	}
	if len(ct.Attachments) == 0 {
		ct.Attachments = nil // [] and null and nothing are one content
	}
	return ct, nil
}

// Message is a message as the application sees it.
type Message struct {
	Conversation protocol.ConversationID `json:"conversation"`
	Seq          uint64                  `json:"seq"`
	Sender       string                  `json:"sender"` // username
	SenderID     protocol.UserID         `json:"senderId"`
	Device       protocol.DeviceID       `json:"device"`
	Type         string                  `json:"type"`
	Text         string                  `json:"text"`
	Attachments  []Attachment            `json:"attachments,omitempty"`
	SentAt       int64                   `json:"sentAt"`
	ReceivedAt   int64                   `json:"receivedAt"`
	Epoch        uint64                  `json:"epoch"`
	Own          bool                    `json:"own,omitempty"`
	// Lost: the server no longer has this message. It was rolled back
	// (restored from a backup) and gave its sequence number to another
	// message; Seq is then 0. See rollback.go.
	Lost bool `json:"lost,omitempty"`
	// Ref names the envelope (a hash), to tell apart two messages under
	// one sequence number.
	Ref string `json:"ref,omitempty"`
	// ReplyTo is the Ref of the message a reply answers (Type
	// ContentReply); Target that of the message a reaction, edit or
	// delete is about (actions.go).
	ReplyTo string `json:"replyTo,omitempty"`
	Target  string `json:"target,omitempty"`
	// The view of History (actions.go applies reactions, edits and
	// deletes to their targets): Reactions maps an emoji to the usernames
	// that chose it; Edited says the text is an edit's (EditedAt, the
	// editor's clock); Deleted, that the sender deleted the message (its
	// text and attachments are gone).
	Reactions map[string][]string `json:"reactions,omitempty"`
	Edited    bool                `json:"edited,omitempty"`
	EditedAt  int64               `json:"editedAt,omitempty"`
	Deleted   bool                `json:"deleted,omitempty"`
	// ExpiresAt is when the message disappears from this device (Unix
	// ms, its own clock; 0: never): see disappear.go.
	ExpiresAt int64 `json:"expiresAt,omitempty"`
	// DeliveredTo and ReadBy are the usernames of the accounts (not the
	// sender's, not this device's) whose receipts say they hold, or read,
	// the message (receipts.go).
	DeliveredTo []string `json:"deliveredTo,omitempty"`
	ReadBy      []string `json:"readBy,omitempty"`
}

func historyKey(conv protocol.ConversationID) string { return "history/" + conv.String() }

// Send encrypts text and sends it to a conversation. It rotates first when
// the server requires a new epoch, and retries with the same client message
// id so a message is stored at most once.
func (c *Client) Send(ctx context.Context, conv protocol.ConversationID, text string) (Message, error) {
	return c.sendText(ctx, conv, "", text)
}

// NewClientID returns a fresh client message id for SendWithID.
func NewClientID() string { return protocol.NewConversationID().String() }

// SendWithID is Send with a caller-chosen client message id (8 to 64
// characters, from NewClientID). Calling it again with the same id after a
// failure whose outcome was unknown (a timeout, a dropped connection)
// re-sends the very envelope of the first attempt, so the server stores the
// message once whatever happened: this is how an application retries.
func (c *Client) SendWithID(ctx context.Context, conv protocol.ConversationID, clientID, text string) (Message, error) {
	if err := checkClientID(clientID); err != nil {
		return Message{}, err
	}
	return c.sendText(ctx, conv, clientID, text)
}

// sendText is Send and SendWithID: an empty clientID takes a fresh one.
func (c *Client) sendText(ctx context.Context, conv protocol.ConversationID, clientID, text string) (Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return Message{}, err
	}
	if text == "" || len(text) > MaxText || !utf8.ValidString(text) {
		return Message{}, fmt.Errorf("a message is 1 to %d bytes of UTF-8 text", MaxText)
	}
	cs, err := c.conv(conv)
	if err != nil {
		return Message{}, err
	}
	if cs == nil {
		cs = c.newConv(conv)
	}
	return c.send(ctx, cs, clientID, Content{Type: ContentText, Text: text})
}

// checkClientID accepts a caller-chosen client message id: 8 to 64
// characters that make a storage key (outbox/CLIENTID).
func checkClientID(id string) error {
	if len(id) < 8 || len(id) > 64 || validKey("outbox/"+id) != nil {
		return fmt.Errorf("a client message id has 8 to 64 characters of [a-z0-9._-]")
	}
	return nil
}

// outgoing is a message whose envelope left (or was about to leave) this
// device without a known outcome (storage key outbox/CLIENTID).
type outgoing struct {
	Conversation protocol.ConversationID `json:"conversation"`
	Epoch        uint64                  `json:"epoch"`
	Envelope     b64                     `json:"envelope"`
	Content      Content                 `json:"content"`
}

// send sends ct under clientID (an empty one takes a fresh one), or
// re-sends the envelope an earlier attempt under it left in the outbox.
func (c *Client) send(ctx context.Context, cs *convState, clientID string, ct Content) (Message, error) {
	if clientID == "" {
		clientID = NewClientID()
	} else if err := checkClientID(clientID); err != nil {
		return Message{}, err
	}
	if err := c.stillMember(ctx, cs); err != nil {
		return Message{}, err
	}
	key := "outbox/" + clientID
	var out outgoing
	if b, err := c.st.Get(key); err == nil {
		if err := json.Unmarshal(b, &out); err != nil {
			return Message{}, err
		}
		if out.Conversation != cs.ID {
			return Message{}, fmt.Errorf("client message id %s belongs to another conversation", clientID)
		}
		ct = out.Content
	} else if !errors.Is(err, ErrNoValue) {
		return Message{}, err
	} else {
		ct.Timer = cs.timer() // the timer of the state held now (§13.10)
	}
	if ct.SentAt == 0 {
		ct.SentAt = c.now().UnixMilli()
	}
	pt, err := json.Marshal(ct)
	if err != nil {
		return Message{}, err
	}
	for try := 0; ; try++ {
		if out.Envelope == nil {
			// Refuse at once in a conversation that names a key this
			// device has not accepted, before asking the server anything
			// about its epochs; checked again on the head current verifies.
			if err := c.trustedBeforeSync(cs); err != nil {
				return Message{}, err
			}
			e, n, err := c.current(ctx, cs)
			if err != nil {
				return Message{}, err
			}
			if err := c.trusted(cs); err != nil {
				return Message{}, err
			}
			env, err := e.ep.Encrypt(c.id, pt)
			if err != nil {
				return Message{}, err
			}
			// The ratchet advanced: store it, and the envelope, before the
			// envelope leaves, so a crash never reuses a message key and a
			// retry sends the same bytes.
			if err := c.saveEpoch(cs, n, e); err != nil {
				return Message{}, err
			}
			out = outgoing{Conversation: cs.ID, Epoch: n, Envelope: env.Marshal(), Content: ct}
			b, err := json.Marshal(out)
			if err != nil {
				return Message{}, err
			}
			if err := c.st.Put(key, b); err != nil {
				return Message{}, err
			}
		}
		var sa struct {
			Seq       uint64 `json:"seq"`
			CreatedAt int64  `json:"createdAt"`
			ExpiresAt int64  `json:"expiresAt"`
		}
		req := map[string]any{"clientId": clientID, "envelope": out.Envelope}
		if blobs := blobIDs(out.Content.Attachments); len(blobs) > 0 {
			req["blobs"] = blobs // the server binds them to the message (protocol.md §13.5)
		}
		if out.Content.Timer > 0 {
			req["timer"] = out.Content.Timer // the server deletes the envelope at the expiry (§13.10)
		}
		err = c.api.do(ctx, "POST", "/api/conversations/"+cs.ID.String()+"/messages", req, &sa)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status < 500 && ae.Status != 429 {
			// Refused whole: nothing was stored under the id.
			if derr := c.st.Delete(key); derr != nil {
				return Message{}, derr
			}
			if ae.Code == "rotation_required" && try < 3 {
				out = outgoing{}
				continue
			}
		}
		if err != nil {
			return Message{}, err
		}
		m := Message{Conversation: cs.ID, Seq: sa.Seq, Sender: c.acct.Username, SenderID: c.acct.User, Device: c.acct.Device,
			ReceivedAt: sa.CreatedAt, Epoch: out.Epoch, Own: true, Ref: envelopeRef(out.Envelope)}
		m.setContent(out.Content)
		m.ExpiresAt = expiry(out.Content, c.now().UnixMilli())
		if err := c.checkExpiry(cs.ID, sa.Seq, out.Content.Timer, sa.CreatedAt, sa.ExpiresAt); err != nil {
			return m, err
		}
		if err := c.recordLater(cs, m); err != nil {
			return m, err
		}
		if err := c.flush(); err != nil {
			return m, err
		}
		return m, c.st.Delete(key)
	}
}

// record appends a message to the local history. Received messages arrive
// through sync in seq order and advance LastSeq, the mark below which a
// message is a duplicate; this device's own messages are recorded when sent
// and do not move it (earlier messages of others may still be on their
// way). History sorts by seq.
func (c *Client) record(cs *convState, m Message) error {
	if err := c.recordLater(cs, m); err != nil {
		return err
	}
	return c.flush()
}

// recordLater is record with the writes left for the next flush.
func (c *Client) recordLater(cs *convState, m Message) error {
	if !m.Own {
		if m.Seq <= cs.LastSeq {
			return nil
		}
		cs.LastSeq = m.Seq
	}
	if c.countsUnread(m) {
		cs.Unread++
	}
	c.noteExpiry(cs, m.ExpiresAt)
	if m.Own || m.SenderID == c.acct.User {
		cs.accepted() // this account answered: no longer a request
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	c.pend.history[cs.ID] = append(append(c.pend.history[cs.ID], b...), '\n')
	if m.Type == ContentTitle {
		cs.Title = m.Text
	}
	c.noteRecorded(cs.ID, m, false)
	c.noteReceipt(cs.ID, m)
	c.pend.convs[cs.ID] = cs
	return nil
}

// pending holds the writes of the receive path, made once per sync page
// rather than once per message (each write is synced to disk). A crash
// before the flush leaves the cursor before the page, which is then
// processed again: ratchets and history come back to the same state (the
// history is read with duplicates removed).
type pending struct {
	history map[protocol.ConversationID][]byte
	// actions: the edits and deletes recorded since the last flush,
	// checked (and deletes applied to storage) by flush (actions.go).
	actions map[protocol.ConversationID][]Message
	// receipts: this account's receipts recorded since the last flush,
	// applied by flush (receipts.go).
	receipts map[protocol.ConversationID][]Message
	convs    map[protocol.ConversationID]*convState
	epochs   map[epochRef]*epochEntry
}

type epochRef struct {
	conv protocol.ConversationID
	n    uint64
}

func newPending() pending {
	return pending{history: map[protocol.ConversationID][]byte{}, actions: map[protocol.ConversationID][]Message{}, receipts: map[protocol.ConversationID][]Message{}, convs: map[protocol.ConversationID]*convState{}, epochs: map[epochRef]*epochEntry{}}
}

// flush writes what recordLater and receive left pending: history first,
// then ratchets, then conversation state.
func (c *Client) flush() error {
	for id, b := range c.pend.history {
		if err := c.st.Append(historyKey(id), b); err != nil {
			return err
		}
		delete(c.pend.history, id)
	}
	for id, ms := range c.pend.actions {
		if err := c.checkActions(id, ms); err != nil {
			return err
		}
		delete(c.pend.actions, id)
	}
	for id, rs := range c.pend.receipts {
		cs, err := c.conv(id)
		if err != nil {
			return err
		}
		if err := c.applyOwnReceipts(cs, rs); err != nil {
			return err
		}
		delete(c.pend.receipts, id)
	}
	for ref, e := range c.pend.epochs {
		if err := c.saveEpoch(c.convs[ref.conv], ref.n, e); err != nil {
			return err
		}
		delete(c.pend.epochs, ref)
	}
	for id, cs := range c.pend.convs {
		if err := c.saveConv(cs); err != nil {
			return err
		}
		delete(c.pend.convs, id)
	}
	return nil
}

// History returns the stored messages of a conversation, oldest first.
func (c *Client) History(conv protocol.ConversationID) ([]Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.history(conv)
}

func (c *Client) history(conv protocol.ConversationID) ([]Message, error) {
	lines, err := c.historyLines(conv)
	if err != nil || lines == nil {
		return nil, err
	}
	// A message that disappeared is never shown, and reading finds it
	// erased (it may have come back in an archive: disappear.go).
	now := c.now().UnixMilli()
	expired := func(m Message) bool { return m.expired(now) }
	if slices.ContainsFunc(lines, expired) {
		if err := c.eraseExpired(conv, lines, now); err != nil {
			return nil, err
		}
		lines = slices.DeleteFunc(lines, expired)
	}
	return foldReceipts(foldActions(liveHistory(lines)), c.acct.User), nil
}

// failure classifies a decrypt error for Stats.DecryptFailed.
func failure(err error) string {
	switch {
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, errNoSession):
		return "no_session"
	case errors.Is(err, protocol.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, secret.ErrTooFarAhead):
		return "too_far_ahead"
	case errors.Is(err, secret.ErrUnknownSender):
		return "unknown_sender"
	case errors.Is(err, ErrServerMisbehaved):
		return "server_misbehaved"
	case errors.Is(err, ErrIdentityNotAccepted):
		return "identity_not_accepted"
	}
	return "undecryptable"
}

// DecryptError is a message this device could not decrypt, with its class.
type DecryptError struct {
	Conversation protocol.ConversationID
	Seq          uint64
	Reason       string
	Err          error
	epoch        bool // the message's epoch could not be opened
}

func (e *DecryptError) Error() string {
	return fmt.Sprintf("message %d of %s cannot be decrypted (%s): %v", e.Seq, e.Conversation, e.Reason, e.Err)
}

func (e *DecryptError) Unwrap() error { return e.Err }

type messageAnswer struct {
	Conversation protocol.ConversationID `json:"conversation"`
	Seq          uint64                  `json:"seq"`
	Sender       protocol.DeviceID       `json:"sender"`
	SenderUser   protocol.UserID         `json:"senderUser"`
	Epoch        uint64                  `json:"epoch"`
	Envelope     b64                     `json:"envelope"`
	CreatedAt    int64                   `json:"createdAt"`
}

// receive runs the one decrypt path for a message: find (or open) the
// epoch, verify the sender's signature with the identity the membership
// named then, decrypt. Duplicates are dropped silently (counted). A message
// refused only because an identity key it depends on is pending is held
// (held.go): a *DecryptError with Reason ReasonHeld, not counted as a
// failure.
func (c *Client) receive(ctx context.Context, ma *messageAnswer) (*Message, error) {
	cs, err := c.conv(ma.Conversation)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		cs = c.newConv(ma.Conversation)
	}
	if ma.Seq <= cs.LastSeq {
		c.stats.Duplicates++
		return nil, nil
	}
	if ma.Sender == c.acct.Device {
		return nil, nil // sent by this device: recorded when sent
	}
	m, err := c.decrypt(ctx, cs, ma, cs.StreamSeq)
	var de *DecryptError
	if errors.As(err, &de) {
		if de.Reason == "identity_not_accepted" {
			held, herr := c.hold(ctx, cs, ma, de)
			if herr != nil {
				return nil, herr
			}
			if held {
				return nil, &DecryptError{Conversation: ma.Conversation, Seq: ma.Seq, Reason: ReasonHeld, Err: de.Err}
			}
		}
		c.stats.DecryptFailed[de.Reason]++
		return nil, de
	}
	if err != nil || m == nil {
		return nil, err
	}
	c.stats.Decrypted++
	if m.expired(c.now().UnixMilli()) {
		// Its timer ran out before it came (a server that held it back,
		// or serves it again): not shown, not stored (§13.10). Actions
		// about it that came before it go at the next purge.
		c.stats.Expired++
		cs.LastSeq = max(cs.LastSeq, m.Seq)
		cs.noteGone(m.Ref)
		c.noteExpiry(cs, m.ExpiresAt)
		c.pend.convs[cs.ID] = cs
		return nil, nil
	}
	if cs.namesGone(m) {
		// About a message that disappeared here: gone with it (§13.10).
		cs.LastSeq = max(cs.LastSeq, m.Seq)
		c.pend.convs[cs.ID] = cs
		return nil, nil
	}
	return m, c.recordLater(cs, *m)
}

// decrypt decrypts message ma of cs, which arrived when the conversation's
// StreamSeq was streamSeq. A classified failure is a *DecryptError (not
// counted here); other errors (network, storage) are not decrypt failures.
// A duplicate is nil, nil.
func (c *Client) decrypt(ctx context.Context, cs *convState, ma *messageAnswer, streamSeq uint64) (*Message, error) {
	fail := func(err error) (*Message, error) {
		reason := failure(err)
		if reason == "expired" {
			if err := c.raiseExpired(ma.Conversation, ma.Seq); err != nil {
				return nil, err
			}
		}
		return nil, &DecryptError{Conversation: ma.Conversation, Seq: ma.Seq, Reason: reason, Err: err}
	}
	env, err := protocol.ParseEnvelope(ma.Envelope)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrServerMisbehaved, err))
	}
	if env.Conversation != ma.Conversation || env.Sender.Device != ma.Sender || env.Sender.User != ma.SenderUser || env.Epoch != ma.Epoch {
		return fail(fmt.Errorf("%w: envelope header differs from the message's metadata", ErrServerMisbehaved))
	}
	e, err := c.epochAt(ctx, cs, env.Epoch, streamSeq)
	if err != nil {
		if errors.Is(err, errNoSession) || errors.Is(err, ErrServerMisbehaved) || errors.Is(err, ErrIdentityNotAccepted) {
			_, ferr := fail(err)
			if de, ok := ferr.(*DecryptError); ok {
				de.epoch = true
			}
			return nil, ferr
		}
		// The server could not be reached, or storage failed: not a
		// decrypt failure. The caller stops before this event and the
		// next sync processes it again.
		return nil, err
	}
	if e == nil {
		return fail(errNoSession)
	}
	// Every message of an epoch made for a record older than one the
	// stream delivered came before that record's event (§7.4 step 9): a
	// later one is a removed member writing on, or a stale epoch replayed.
	if e.ChainSeq < streamSeq {
		detail := fmt.Sprintf("A message in epoch %d, made for membership record %d, came after record %d.", env.Epoch, e.ChainSeq, streamSeq)
		if err := c.alarmOnce(cs, fmt.Sprintf("late/%d", env.Epoch), Alarm{Kind: AlarmStaleEpoch, User: env.Sender.User, Detail: detail}); err != nil {
			return nil, err
		}
		return fail(fmt.Errorf("%w: %w: %s", ErrServerMisbehaved, errStale, detail))
	}
	id, ok := e.Identities[env.Sender.User]
	if !ok {
		return fail(secret.ErrUnknownSender)
	}
	if err := c.refuseUnaccepted(env.Sender.User, id, cs.ID, fmt.Sprintf("message %d", ma.Seq)); err != nil {
		if errors.Is(err, ErrIdentityNotAccepted) {
			return fail(err)
		}
		return nil, err
	}
	pt, err := e.ep.DecryptAt(env, id, c.now().Unix())
	if errors.Is(err, secret.ErrDuplicate) {
		c.stats.Duplicates++
		return nil, nil
	}
	if err != nil {
		return fail(err)
	}
	c.pend.epochs[epochRef{cs.ID, env.Epoch}] = e
	ct, err := ParseContent(pt)
	if err != nil {
		return nil, &DecryptError{Conversation: ma.Conversation, Seq: ma.Seq, Reason: "bad_content", Err: err}
	}
	m := &Message{Conversation: cs.ID, Seq: ma.Seq, Sender: c.usernameOf(ctx, env.Sender.User), SenderID: env.Sender.User, Device: env.Sender.Device,
		ReceivedAt: ma.CreatedAt, Epoch: env.Epoch, Ref: envelopeRef(ma.Envelope)}
	m.setContent(ct)
	m.ExpiresAt = expiry(ct, c.now().UnixMilli())
	return m, nil
}

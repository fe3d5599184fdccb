package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sandi.dev/protocol"
)

// Warning is something the user must be shown.
type Warning struct {
	Kind         string                  `json:"kind"`
	User         protocol.UserID         `json:"user"`
	Username     string                  `json:"username,omitempty"`
	Conversation protocol.ConversationID `json:"conversation,omitzero"` // omitzero: a zero id does not parse back
	// Device is the device concerned (WarnSessionAdded: the new one).
	Device protocol.DeviceID `json:"device,omitzero"`
}

// Warning kinds.
const (
	WarnIdentityChanged = "identity_changed" // a contact's identity key changed: compare safety numbers
	// WarnSessionAdded: someone signed in to this account with its
	// password (a new device, Device). It sees nothing until linked, but
	// if it was not the user, the password is known to someone else:
	// sign the session out and change the password.
	WarnSessionAdded = "session_added"
)

func (c *Client) warn(w Warning) {
	b, err := json.Marshal(w)
	if err == nil {
		c.st.Append("warnings", append(b, '\n'))
	}
	if w.Kind == WarnIdentityChanged {
		c.identityLine(w.User, w.Username, w.Conversation) // best effort, as the warning
	}
}

// Warnings returns the warnings recorded so far and clears them.
func (c *Client) Warnings() ([]Warning, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := c.st.Get("warnings")
	if errors.Is(err, ErrNoValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Warning
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var w Warning
		if dec.Decode(&w) != nil {
			break
		}
		out = append(out, w)
	}
	return out, c.st.Delete("warnings")
}

type eventAnswer struct {
	ID           int64                    `json:"id"`
	Kind         string                   `json:"kind"`
	Conversation *protocol.ConversationID `json:"conversation"`
	User         *protocol.UserID         `json:"user"`
	Seq          uint64                   `json:"seq"`
	Epoch        uint64                   `json:"epoch"`
	Reason       string                   `json:"reason"`
	Message      *messageAnswer           `json:"message"`
}

type syncPage struct {
	Events      []eventAnswer `json:"events"`
	Cursor      int64         `json:"cursor"`
	More        bool          `json:"more"`
	Incarnation string        `json:"incarnation"`
	Head        int64         `json:"head"`
	Resume      *int64        `json:"resume"`
}

// syncQuery is the query of a sync request or WebSocket: the cursor, and
// the store incarnation it belongs to (see rollback.go).
func (c *Client) syncQuery() string {
	q := fmt.Sprintf("since=%d", c.acct.Cursor)
	if c.acct.Incarnation != "" {
		q += "&incarnation=" + queryEscape(c.acct.Incarnation)
	}
	return q
}

// SyncResult is what one Sync brought.
type SyncResult struct {
	Messages []Message
	Failures []*DecryptError
	// Held are messages held until the user accepts or rejects a pending
	// identity key (Reason ReasonHeld): they come in Messages (or
	// Failures) of a later Sync, once the key is decided.
	Held []*DecryptError
	// Lines are the timeline lines this Sync wrote (timeline.go).
	Lines []Line
	// Receipts are the receipts that came (receipts.go): they change the
	// DeliveredTo and ReadBy of messages in History and are not in
	// Messages.
	Receipts []Message
}

// Sync reads every event since the stored cursor, processes it (decrypts
// messages, follows membership, tops up pre-keys) and returns the new
// messages. The cursor advances only past processed pages, so an
// interrupted Sync resumes where it stopped; the messages it had already
// stored are returned with the error and are not returned again.
func (c *Client) Sync(ctx context.Context) (res SyncResult, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer res.sortReceipts()
	if err := c.ready(); err != nil {
		return res, err
	}
	if c.now().Unix()-c.acct.Maintained > maintainEvery {
		if err := c.maintainPreKeys(ctx); err != nil {
			return res, err
		}
	}
	if err := c.ensureDeviceList(ctx); err != nil {
		return res, err
	}
	for resyncs := 0; ; {
		var page syncPage
		if err := c.api.do(ctx, "GET", "/api/sync?"+c.syncQuery()+"&limit=500", nil, &page); err != nil {
			return res, err
		}
		// "More" with a cursor that does not move would have the device ask
		// for the same page for ever; refused before anything is stored
		// (a rolled-back store moves the cursor back on purpose: rollback.go).
		if page.More && page.Cursor <= c.acct.Cursor && !c.rolledBack(&page) {
			err := fmt.Errorf("%w: the sync answer says more events follow cursor %d but does not advance it", ErrServerMisbehaved, c.acct.Cursor)
			return res, errors.Join(err, c.raise(Alarm{Kind: AlarmServerData, Detail: "The server's event stream did not advance while it said more events follow."}))
		}
		if err := c.process(ctx, page, &res); errors.Is(err, errResync) && resyncs < maxResyncs {
			resyncs++
			continue
		} else if err != nil {
			return res, err
		}
		if !page.More {
			return res, nil
		}
	}
}

// process handles one page of events and advances the cursor.
func (c *Client) process(ctx context.Context, page syncPage, res *SyncResult) error {
	if err := c.checkIncarnation(&page); err != nil {
		return err
	}
	lowKeys, changed := false, false
	// Messages released from hold since the last page (AcceptIdentity).
	res.Messages, res.Failures = append(res.Messages, c.release.Messages...), append(res.Failures, c.release.Failures...)
	c.release = SyncResult{}
	for i := range page.Events {
		ev := &page.Events[i]
		changed = changed || ev.Kind != "message"
		switch ev.Kind {
		case "message":
			if ev.Message == nil {
				continue
			}
			m, err := c.receive(ctx, ev.Message)
			var de *DecryptError
			if errors.As(err, &de) && de.Reason == ReasonHeld {
				res.Held = append(res.Held, de)
			} else if errors.As(err, &de) {
				res.Failures = append(res.Failures, de)
			} else if err != nil {
				return errors.Join(err, c.flush())
			} else if m != nil {
				res.Messages = append(res.Messages, *m)
			}
		case "membership", "removed":
			if ev.Conversation == nil {
				continue
			}
			cs, err := c.conv(*ev.Conversation)
			if err != nil {
				return err
			}
			if cs == nil {
				cs = c.newConv(*ev.Conversation)
			}
			if ev.Kind == "removed" {
				cs.Left = true
				if err := c.saveConv(cs); err != nil {
					return err
				}
				continue
			}
			if err := c.syncChain(ctx, cs); err != nil && !IsCode(err, "not_found") {
				return err
			}
			if err := c.streamed(cs, ev.Seq); err != nil {
				return err
			}
		case "identity_changed":
			if ev.User != nil {
				if _, err := c.lookup(ctx, ev.User.String()); err != nil && !errors.Is(err, ErrUnknownUser) {
					return err
				}
			}
		case "session":
			// A new epoch for this device: open it now, while the pre-key it
			// is sealed to is surely kept (expiry.go erases replaced ones).
			// A failure here is reported with the first message in it (or
			// holds it, for a creator's key that waits for the user).
			if ev.Conversation == nil {
				continue
			}
			cs, err := c.convOrNew(*ev.Conversation)
			if err != nil {
				return err
			}
			if _, err := c.openEpoch(ctx, cs, ev.Epoch); err != nil && !errors.Is(err, errNoSession) && !errors.Is(err, ErrServerMisbehaved) && !errors.Is(err, ErrIdentityNotAccepted) {
				return errors.Join(err, c.flush())
			}
		case "state":
			// The conversation's state changed (§7.6): fetch and check it.
			if ev.Conversation == nil {
				continue
			}
			cs, err := c.convOrNew(*ev.Conversation)
			if err != nil {
				return err
			}
			if err := c.refreshState(ctx, cs); err != nil {
				return errors.Join(err, c.flush())
			}
		case "prekeys_low":
			lowKeys = true
		case "session_added":
			// A login to this account (the server announces each one to
			// the account's other devices): a warning, not an alarm, as
			// it is most often the user's own; the user judges it.
			w := Warning{Kind: WarnSessionAdded, User: c.acct.User}
			if d, err := protocol.ParseDeviceID(ev.Reason); err == nil {
				if d == c.acct.Device {
					continue
				}
				w.Device = d
			}
			c.warn(w)
		}
	}
	if err := c.flush(); err != nil {
		return err
	}
	res.Lines = append(res.Lines, c.takeLines()...)
	// A pending key accepted on this page (a rekey that moved a pin)
	// releases what was held for it.
	ms, fs, err := c.releaseHeld(ctx, nil, false)
	res.Messages, res.Failures = append(res.Messages, ms...), append(res.Failures, fs...)
	if err != nil {
		return err
	}
	if changed && c.onChange != nil {
		c.onChange()
	}
	if lowKeys {
		if err := c.maintainPreKeys(ctx); err != nil {
			return err
		}
	}
	if page.Cursor > c.acct.Cursor {
		c.acct.Cursor = page.Cursor
		if err := c.saveAccount(); err != nil {
			return err
		}
	}
	if !page.More {
		return c.upkeep(ctx) // caught up: rotate and erase keys when due
	}
	return nil
}

// Listen keeps a WebSocket to the server and processes events as they come,
// calling onMessage for each new message (onMessage runs with the client
// locked: it must not call the client). It reconnects after any drop, from
// the stored cursor, until ctx ends: 200 ms after a connection that the
// server had accepted (it restarted, or the network dropped), else after a
// delay that doubles from 200 ms up to 10 s while the server cannot be
// reached.
func (c *Client) Listen(ctx context.Context, onMessage func(Message), onFailure func(*DecryptError)) error {
	const firstDelay = 200 * time.Millisecond
	delay := firstDelay
	for {
		connected, err := c.listenOnce(ctx, onMessage, onFailure)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.connection(false)
		if errors.Is(err, ErrNoAccount) || errors.Is(err, ErrNoIdentity) {
			return err
		}
		if connected {
			// The server was there: a restart or a dropped connection,
			// not an outage that grew the delay.
			delay = firstDelay
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// OnConnection sets a function that Listen calls, with the client
// unlocked, with true when its WebSocket is up and false when it dropped
// or could not be opened (Listen then tries again by itself).
func (c *Client) OnConnection(f func(up bool)) {
	c.mu.Lock()
	c.onConnect = f
	c.mu.Unlock()
}

func (c *Client) connection(up bool) {
	c.mu.Lock()
	f := c.onConnect
	c.mu.Unlock()
	if f != nil {
		f(up)
	}
}

// listenOnce runs one WebSocket; connected reports that the server
// accepted it.
func (c *Client) listenOnce(ctx context.Context, onMessage func(Message), onFailure func(*DecryptError)) (connected bool, err error) {
	c.mu.Lock()
	if err := c.ready(); err != nil {
		c.mu.Unlock()
		return false, err
	}
	u := c.acct.Server + "/api/ws?" + c.syncQuery()
	token := c.acct.Token
	c.mu.Unlock()
	conn, err := dialWS(ctx, u, token)
	if err != nil {
		return false, err
	}
	defer conn.close()
	c.connection(true)
	for {
		data, err := conn.read(ctx)
		if err != nil {
			return true, err
		}
		if typing, err := c.typingFrame(ctx, data); typing {
			if err != nil {
				return true, err
			}
			continue
		}
		var page syncPage
		if err := json.Unmarshal(data, &page); err != nil {
			return true, fmt.Errorf("websocket frame: %w", err)
		}
		var res SyncResult
		c.mu.Lock()
		err = c.process(ctx, page, &res)
		res.sortReceipts()
		// Messages processed before an error are stored: hand them over
		// whatever happened, or they would never be shown.
		for _, m := range res.Receipts {
			if c.onReceipt != nil {
				c.onReceipt(m)
			}
		}
		for _, m := range res.Messages {
			if onMessage != nil {
				onMessage(m)
			}
		}
		for _, f := range res.Failures {
			if onFailure != nil {
				onFailure(f)
			}
		}
		for _, l := range res.Lines {
			if c.onLine != nil {
				c.onLine(l)
			}
		}
		c.mu.Unlock()
		if err != nil {
			return true, err
		}
	}
}

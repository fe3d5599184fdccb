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
}

// Warning kinds.
const (
	WarnIdentityChanged = "identity_changed" // a contact's identity key changed: compare safety numbers
)

func (c *Client) warn(w Warning) {
	b, err := json.Marshal(w)
	if err == nil {
		c.st.Append("warnings", append(b, '\n'))
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
	Message      *messageAnswer           `json:"message"`
}

type syncPage struct {
	Events []eventAnswer `json:"events"`
	Cursor int64         `json:"cursor"`
	More   bool          `json:"more"`
}

// SyncResult is what one Sync brought.
type SyncResult struct {
	Messages []Message
	Failures []*DecryptError
	// Held are messages held until the user accepts or rejects a pending
	// identity key (Reason ReasonHeld): they come in Messages (or
	// Failures) of a later Sync, once the key is decided.
	Held []*DecryptError
}

// Sync reads every event since the stored cursor, processes it (decrypts
// messages, follows membership, tops up pre-keys) and returns the new
// messages. The cursor advances only past processed pages, so an
// interrupted Sync resumes where it stopped; the messages it had already
// stored are returned with the error and are not returned again.
func (c *Client) Sync(ctx context.Context) (SyncResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var res SyncResult
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
	for {
		var page syncPage
		if err := c.api.do(ctx, "GET", fmt.Sprintf("/api/sync?since=%d&limit=500", c.acct.Cursor), nil, &page); err != nil {
			return res, err
		}
		if err := c.process(ctx, page, &res); err != nil {
			return res, err
		}
		if !page.More {
			return res, nil
		}
	}
}

// process handles one page of events and advances the cursor.
func (c *Client) process(ctx context.Context, page syncPage, res *SyncResult) error {
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
		case "prekeys_low":
			lowKeys = true
		}
	}
	if err := c.flush(); err != nil {
		return err
	}
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
		return c.saveAccount()
	}
	return nil
}

// Listen keeps a WebSocket to the server and processes events as they come,
// calling onMessage for each new message (onMessage runs with the client
// locked: it must not call the client). It reconnects after any drop, from
// the stored cursor, until ctx ends.
func (c *Client) Listen(ctx context.Context, onMessage func(Message), onFailure func(*DecryptError)) error {
	delay := 200 * time.Millisecond
	for {
		err := c.listenOnce(ctx, onMessage, onFailure)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrNoAccount) || errors.Is(err, ErrNoIdentity) {
			return err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func (c *Client) listenOnce(ctx context.Context, onMessage func(Message), onFailure func(*DecryptError)) error {
	c.mu.Lock()
	if err := c.ready(); err != nil {
		c.mu.Unlock()
		return err
	}
	u := fmt.Sprintf("%s/api/ws?since=%d", c.acct.Server, c.acct.Cursor)
	token := c.acct.Token
	c.mu.Unlock()
	conn, err := dialWS(ctx, u, token)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(64 << 20)
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		var page syncPage
		if err := json.Unmarshal(data, &page); err != nil {
			return fmt.Errorf("websocket frame: %w", err)
		}
		var res SyncResult
		c.mu.Lock()
		err = c.process(ctx, page, &res)
		// Messages processed before an error are stored: hand them over
		// whatever happened, or they would never be shown.
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
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

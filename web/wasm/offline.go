//go:build js && wasm

package main

import (
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"syscall/js"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// Keys of what lets the page work while the server cannot be reached.
const (
	keyOutbox        = "app/outbox/"       // + client id: a message not yet sent (JSON)
	keyConversations = "app/conversations" // the last list the server gave (JSON)
)

// outboxEntry is a text message the page has not yet seen sent: kept in
// the device's storage, so a reload sends it again under the same client id
// (the server stores it once however many times it is sent).
type outboxEntry struct {
	ClientID     string                  `json:"clientId"`
	Conversation protocol.ConversationID `json:"conversation"`
	Text         string                  `json:"text"`
	At           int64                   `json:"at"`
}

// outboxPut(clientId, conv, text) keeps a message until outboxDelete.
func (a *app) outboxPut(args []js.Value) (any, error) {
	st, _, err := a.get()
	if err != nil {
		return nil, err
	}
	id, err := protocol.ParseConversationID(str(args, 1))
	if err != nil {
		return nil, errors.New("not a conversation id")
	}
	e := outboxEntry{ClientID: str(args, 0), Conversation: id, Text: str(args, 2), At: time.Now().UnixMilli()}
	if len(e.ClientID) != 32 || strings.Trim(e.ClientID, "0123456789abcdef") != "" {
		return nil, errors.New("a client id is 32 hex digits")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return nil, st.Put(keyOutbox+e.ClientID, b)
}

// outboxDelete(clientId) forgets a message once it is sent or dropped.
func (a *app) outboxDelete(args []js.Value) (any, error) {
	st, _, err := a.get()
	if err != nil {
		return nil, err
	}
	return nil, st.Delete(keyOutbox + str(args, 0))
}

// outbox() lists the kept messages, oldest first.
func (a *app) outbox([]js.Value) (any, error) {
	st, _, err := a.get()
	if err != nil {
		return nil, err
	}
	keys, err := st.List(keyOutbox)
	if err != nil {
		return nil, err
	}
	out := []outboxEntry{}
	for _, k := range keys {
		b, err := st.Get(k)
		if err != nil {
			return nil, err
		}
		var e outboxEntry
		if json.Unmarshal(b, &e) == nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At < out[j].At }) // see keptHistories

	return out, nil
}

// search(text) finds the messages of the local history that contain text
// (case-insensitive), in every conversation: the latest searchLimit, the
// newest first.
func (a *app) search(args []js.Value) (any, error) {
	_, c, err := a.get()
	if err != nil {
		return nil, err
	}
	q := strings.TrimSpace(str(args, 0))
	if q == "" {
		return []msgView{}, nil
	}
	ms, err := c.Search(q, nil)
	if err != nil {
		return nil, err
	}
	ms = ms[max(0, len(ms)-searchLimit):]
	slices.Reverse(ms)
	return views(ms), nil
}

// searchLimit bounds what one search hands the page.
const searchLimit = 50

// keepConversations stores the list the server gave; storedConversations
// gives it back when the server cannot be reached (an error that is not
// an answer of the server), so the page opens with its conversations. The
// stored list is this device's own earlier, verified view; a server that
// sends what does not verify still raises its alarm in the SDK.
func keepConversations(st *client.IDBStorage, list []convView) {
	if b, err := json.Marshal(list); err == nil {
		st.Put(keyConversations, b) // a cache: losing it costs the offline list only
	}
}

func storedConversations(st *client.IDBStorage, cause error) ([]convView, error) {
	var ae *client.APIError
	if errors.As(cause, &ae) {
		return nil, cause
	}
	b, err := st.Get(keyConversations)
	if err != nil {
		return nil, cause
	}
	var list []convView
	if json.Unmarshal(b, &list) != nil {
		return nil, cause
	}
	return list, nil
}

//go:build js && wasm

package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"syscall/js"
	"time"

	"sandi.dev/client"
)

// keptDB is the IndexedDB database of the history kept after a logout
// (logout(true)): plaintext the browser already held, and no key of any
// kind, so nothing in it can read, sign or send anything new.
const keptDB = "sandi-kept"

// kept is the read-only copy of one account's history, as its device held
// it when it logged out.
type kept struct {
	Username      string     `json:"username"`
	User          string     `json:"userId"`
	LoggedOutAt   int64      `json:"loggedOutAt"`
	Conversations []keptConv `json:"conversations"`
}

type keptConv struct {
	ID       string    `json:"id"`
	Title    string    `json:"title,omitempty"`
	Messages []msgView `json:"messages"`
}

// keepHistory copies the device's decrypted history into keptDB, under
// the account (a later logout of the same account replaces it). It reads
// local storage only, so it works with the server out of reach.
func keepHistory(c *client.Client) error {
	convs, err := c.LocalConversations()
	if err != nil {
		return err
	}
	k := kept{Username: c.Username(), User: c.UserID().String(), LoggedOutAt: time.Now().UnixMilli(), Conversations: []keptConv{}}
	for _, cv := range convs {
		h, err := c.History(cv.ID)
		if err != nil {
			return err
		}
		kc := keptConv{ID: cv.ID.String(), Title: cv.Title, Messages: []msgView{}}
		for _, m := range h {
			if !isAction(m) {
				kc.Messages = append(kc.Messages, view(m))
			}
		}
		k.Conversations = append(k.Conversations, kc)
	}
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	st, err := client.OpenIDBStorage(keptDB)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.Put("kept/"+k.User, b)
}

// keptHistories answers kept(): every history kept in this browser, most
// recent logout first; it needs no account and opens no client.
func keptHistories([]js.Value) (any, error) {
	st, err := client.OpenIDBStorage(keptDB)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	keys, err := st.List("kept/")
	if err != nil {
		return nil, err
	}
	out := []kept{}
	for _, key := range keys {
		b, err := st.Get(key)
		if err != nil {
			return nil, err
		}
		var k kept
		if err := json.Unmarshal(b, &k); err != nil {
			return nil, fmt.Errorf("the history kept in this browser is damaged: %w", err)
		}
		out = append(out, k)
	}
	// sort.Slice, not slices.SortFunc: each element type makes a copy of
	// the generic sort in the module (20 KB).
	sort.Slice(out, func(i, j int) bool { return out[i].LoggedOutAt > out[j].LoggedOutAt })
	return out, nil
}

// forgetKept answers forgetKept(): it deletes every history kept in this
// browser.
func forgetKept([]js.Value) (any, error) {
	return nil, client.DeleteIDBStorage(keptDB)
}

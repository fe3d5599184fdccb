//go:build !js

package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// forEachArchiveDB is forEachDB with a blob store, where account archives
// are kept.
func forEachArchiveDB(t *testing.T, f func(t *testing.T, n *node)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) { f(t, startNode(t, dbs(t)[name](t), blobConfig(t))) })
	}
}

// archiveTransport stands for a server that misbehaves on account
// archives: while fault is set, each archive download is handed to it
// (to cut it short or change its bytes).
type archiveTransport struct {
	mu    sync.Mutex
	fault func(*http.Response) error
}

func (a *archiveTransport) set(f func(*http.Response) error) {
	a.mu.Lock()
	a.fault = f
	a.mu.Unlock()
}

func (a *archiveTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	a.mu.Lock()
	f := a.fault
	a.mu.Unlock()
	if err != nil || f == nil || r.Method != "GET" || !strings.HasPrefix(r.URL.Path, "/api/archives/") || resp.StatusCode != 200 {
		return resp, err
	}
	if err := f(resp); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// flipByte serves the archive with one byte changed: same size, another
// digest.
func flipByte(resp *http.Response) error {
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	b[len(b)/2] ^= 1
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

// linkWithHistory links a new device of c's account, with its history
// transferred; it returns the new device and WaitLink's error.
func linkWithHistory(t *testing.T, n *node, c *client.Client, password string, rt http.RoundTripper) (*client.Client, error) {
	t.Helper()
	ctx := context.Background()
	phone := newClientWith(t, n, rt)
	if err := phone.Login(ctx, c.Username(), password); err != nil {
		t.Fatal(err)
	}
	code, err := phone.StartLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApproveLinkWith(ctx, code, client.LinkHistory{Transfer: true}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return phone, phone.WaitLink(wctx, 10*time.Millisecond)
}

// TestLinkTransfer: a linked device gets the history its approver holds
// (in order, with senders, the title and the verified flag), after an
// interrupted download and a server that changes the archive's bytes
// (an alarm, nothing imported) have both failed; then it reads and sends
// live, with no message it cannot decrypt.
func TestLinkTransfer(t *testing.T) {
	forEachArchiveDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob := register(t, n, "alice"), register(t, n, "bob")
		conv, err := alice.CreateConversation(ctx, "the plan", "bob")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 6 {
			from := alice
			if i%2 == 1 {
				from = bob
			}
			if _, err := from.Send(ctx, conv, fmt.Sprintf("message %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		syncTexts(t, alice)
		syncTexts(t, bob)
		verify(t, alice, bob)
		want := historyTexts(t, alice, conv)
		if len(want) != 6 {
			t.Fatalf("alice holds %v", want)
		}

		rt := &archiveTransport{}
		rt.set(func(*http.Response) error { return errors.New("connection reset") })
		phone, err := linkWithHistory(t, n, alice, "password of alice", rt)
		if !errors.Is(err, client.ErrTransfer) || !phone.PendingTransfer() {
			t.Fatalf("an interrupted transfer: %v (pending %v)", err, phone.PendingTransfer())
		}
		if got := historyTexts(t, phone, conv); len(got) != 0 {
			t.Fatalf("an interrupted transfer imported %v", got)
		}
		// The server changes a byte: an alarm, nothing imported.
		rt.set(flipByte)
		if err := phone.ResumeTransfer(ctx); !errors.Is(err, client.ErrServerMisbehaved) {
			t.Fatalf("a changed archive: %v", err)
		}
		alarms, _ := phone.Alarms(protocol.ConversationID{})
		if len(alarms) != 1 || alarms[0].Kind != client.AlarmBlobDigest {
			t.Fatalf("alarms after a changed archive: %+v", alarms)
		}
		if got := historyTexts(t, phone, conv); len(got) != 0 || !phone.PendingTransfer() {
			t.Fatalf("a changed archive imported %v", got)
		}
		rt.set(nil)
		if err := phone.ResumeTransfer(ctx); err != nil {
			t.Fatal(err)
		}
		if phone.PendingTransfer() {
			t.Fatal("the transfer is still pending after its import")
		}
		if got := historyTexts(t, phone, conv); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("phone's history %v, want %v", got, want)
		}
		convs, err := phone.LocalConversations()
		if err != nil || len(convs) != 1 || convs[0].Title != "the plan" {
			t.Fatalf("phone's conversations %+v %v", convs, err)
		}
		contacts, err := phone.Contacts()
		if err != nil || len(contacts) != 1 || !contacts[0].Verified {
			t.Fatalf("phone's contacts %+v %v", contacts, err)
		}
		// Live: both ways, nothing undecryptable.
		if _, err := bob.Send(ctx, conv, "after the link"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, phone); strings.Join(got, "|") != "bob: after the link" {
			t.Fatalf("phone reads %v", got)
		}
		if _, err := phone.Send(ctx, conv, "from the phone"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, bob); strings.Join(got, "|") != "alice: from the phone" {
			t.Fatalf("bob reads %v", got)
		}
		if got := syncTexts(t, alice); strings.Join(got, "|") != "bob: after the link|alice: from the phone" {
			t.Fatalf("alice reads %v", got)
		}
		for _, c := range []*client.Client{phone, bob, alice} {
			if f := c.Stats().DecryptFailed; len(f) != 0 {
				t.Fatalf("%s: decrypt failures %v", c.Username(), f)
			}
		}
	})
}

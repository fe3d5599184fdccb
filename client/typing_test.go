//go:build !js

package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// typingTap records the typing notices a client posts and, while replace
// is set, posts replace instead.
type typingTap struct {
	mu      sync.Mutex
	notices [][]byte
	replace []byte
}

func (tt *typingTap) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/typing") {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		var req struct{ Notice string }
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, err
		}
		notice, err := base64.RawURLEncoding.DecodeString(req.Notice)
		if err != nil {
			return nil, err
		}
		tt.mu.Lock()
		tt.notices = append(tt.notices, notice)
		if tt.replace != nil {
			body, _ = json.Marshal(map[string]string{"notice": b64u(tt.replace)})
		}
		tt.mu.Unlock()
		r = r.Clone(r.Context())
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	return http.DefaultTransport.RoundTrip(r)
}

// listenTyping runs c.Listen until the test ends and returns the typing
// notices and the messages it delivers.
func listenTyping(t *testing.T, c *client.Client) (<-chan client.Typing, <-chan client.Message) {
	ctx, cancel := context.WithCancel(context.Background())
	typing, msgs := make(chan client.Typing, 16), make(chan client.Message, 16)
	c.OnTyping(func(tp client.Typing) { typing <- tp })
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Listen(ctx, func(m client.Message) { msgs <- m }, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return typing, msgs
}

func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
	}
	var zero T
	return zero
}

// Typing notices reach the other member's live connection, verified and
// attributed, unless too old (a replay); the server stores nothing of
// them; a member cannot post one in another's name.
func TestTyping(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	tap := &typingTap{}
	alice := registerWith(t, n, "alice", tap, "")
	bobTap := &typingTap{}
	bob := registerWith(t, n, "bob", bobTap, "")
	// Carol's clock is a minute behind: her notices look replayed.
	carol, err := client.Open(client.Options{Server: n.url(), Storage: client.NewMemStorage(), Now: func() time.Time { return time.Now().Add(-time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.Register(ctx, "carol", "password of carol"); err != nil {
		t.Fatal(err)
	}
	conv, err := alice.CreateConversation(ctx, "", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	typing, msgs := listenTyping(t, bob)
	if _, err := alice.Send(ctx, conv, "hello"); err != nil {
		t.Fatal(err)
	}
	await(t, msgs, "message on bob's WebSocket") // bob is live and holds the epoch

	for _, on := range []bool{true, false} {
		if err := carol.SendTyping(ctx, conv, on); err != nil {
			t.Fatal(err)
		}
		if err := alice.SendTyping(ctx, conv, on); err != nil {
			t.Fatal(err)
		}
		got := await(t, typing, "typing notice")
		if got.Conversation != conv || got.User != alice.UserID() || got.Username != "alice" || got.Typing != on {
			t.Fatalf("bob got %+v, want alice typing %v", got, on)
		}
	}

	// Nothing of a notice is in the database: its nonce (24 random
	// bytes) is in no file of it.
	tap.mu.Lock()
	notice := tap.notices[0]
	tap.mu.Unlock()
	nt, err := protocol.ParseTyping(notice)
	if err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(n.db + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, nt.Nonce[:]) || bytes.Contains(b, nt.Signature[:]) {
			t.Fatalf("the typing notice is stored in %s", n.db+suffix)
		}
	}

	// Bob posts alice's notice as his own: the server refuses it. (He
	// accepts alice's request first: in a request nothing is posted.)
	if err := bob.Accept(conv); err != nil {
		t.Fatal(err)
	}
	bobTap.mu.Lock()
	bobTap.replace = notice
	bobTap.mu.Unlock()
	err = bob.SendTyping(ctx, conv, true)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("bob posting alice's notice: %v, want 400", err)
	}

	// A notice altered on its way (the server relays what it likes) does
	// not verify: bob drops it and raises one alarm for the conversation,
	// however often it comes. A notice that verifies then shows alone.
	bad := bytes.Clone(notice)
	bad[len(bad)-1] ^= 1
	tap.mu.Lock()
	tap.replace = bad
	tap.mu.Unlock()
	for range 2 {
		if err := alice.SendTyping(ctx, conv, true); err != nil {
			t.Fatal(err)
		}
	}
	tap.mu.Lock()
	tap.replace = nil
	tap.mu.Unlock()
	if err := alice.SendTyping(ctx, conv, false); err != nil {
		t.Fatal(err)
	}
	if got := await(t, typing, "typing notice after the altered ones"); got.Typing {
		t.Fatalf("bob was shown an altered notice: %+v", got)
	}
	alarms, err := bob.Alarms(conv)
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms) != 1 || alarms[0].Kind != client.AlarmBadSignature || alarms[0].User != alice.UserID() {
		t.Fatalf("bob's alarms after two altered notices: %+v; want one bad signature of alice", alarms)
	}
}

// A removed member's notices are dropped, though the device still holds
// an epoch the member was in and the server (which keeps the member in
// its table) relays them: a notice speaks only for a member of the chain
// the device has verified. A member that has not yet seen the removal
// still speaks in that epoch, and is shown.
func TestTypingRemovedMember(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	alice, bob, carol, dave := register(t, n, "alice"), register(t, n, "bob"), register(t, n, "carol"), register(t, n, "dave")
	conv, err := alice.CreateConversation(ctx, "", "bob", "carol", "dave")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "hello"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{bob, carol, dave} {
		syncTexts(t, c)
		if err := c.Accept(conv); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.RemoveMembers(ctx, conv, "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "carol is out"); err != nil { // a new epoch, without carol
		t.Fatal(err)
	}
	syncTexts(t, bob) // bob has verified the removal; carol and dave have not looked
	// The server keeps carol in: it takes her notices and relays them.
	n.stop()
	execDB(t, n, `UPDATE members SET left_event_id = NULL WHERE conversation_id = ? AND user_id = ?`, conv[:], idBytes(carol.UserID()))
	n.restart()

	typing, msgs := listenTyping(t, bob)
	if _, err := alice.Send(ctx, conv, "still here"); err != nil {
		t.Fatal(err)
	}
	await(t, msgs, "message on bob's WebSocket")
	for _, c := range []*client.Client{carol, dave} { // both in the epoch before the removal
		if err := c.SendTyping(ctx, conv, true); err != nil {
			t.Fatalf("%s: %v", c.Username(), err)
		}
	}
	if got := await(t, typing, "typing notice"); got.User != dave.UserID() {
		t.Fatalf("bob was shown %+v, want dave's notice only", got)
	}
	if alarms, err := bob.Alarms(conv); err != nil || len(alarms) != 0 {
		t.Fatalf("bob's alarms %+v, %v", alarms, err)
	}
}

// A server relays what it likes to a live connection: a device's own
// notice back to its account, a notice whose epoch the device does not
// hold, a member's notice into a conversation the device is not in. Each
// is dropped without an alarm (none of them is a forgery the device can
// tell from the server's mischief); the member's genuine notice, relayed
// after them, is the first shown.
func TestTypingServerInjects(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	aliceTap, bobTap := &typingTap{}, &typingTap{}
	alice := registerWith(t, n, "alice", aliceTap, "")
	bob := registerWith(t, n, "bob", bobTap, "")
	carol := register(t, n, "carol")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	other, err := bob.CreateConversation(ctx, "", "carol") // alice is not in it
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "hello"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	if err := bob.Accept(conv); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, carol)
	for _, c := range []*client.Client{alice, bob} {
		if err := c.SendTyping(ctx, conv, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.SendTyping(ctx, other, true); err != nil {
		t.Fatal(err)
	}
	last := func(tt *typingTap, i int) []byte {
		tt.mu.Lock()
		defer tt.mu.Unlock()
		if len(tt.notices) <= i {
			t.Fatalf("%d notices captured, want %d", len(tt.notices), i+1)
		}
		return tt.notices[i]
	}
	own, bobs, elsewhere := last(aliceTap, 0), last(bobTap, 0), last(bobTap, 1)
	nt, err := protocol.ParseTyping(bobs)
	if err != nil {
		t.Fatal(err)
	}
	nt.Epoch += 99 // an epoch alice does not hold
	unheld := nt.Marshal()

	typing, msgs := listenTyping(t, alice)
	if _, err := bob.Send(ctx, conv, "hi"); err != nil {
		t.Fatal(err)
	}
	await(t, msgs, "message on alice's WebSocket") // alice is live
	for _, notice := range [][]byte{own, unheld, elsewhere, bobs} {
		n.srv.Hub().Typing([]protocol.UserID{alice.UserID()}, notice)
	}
	if got := await(t, typing, "typing notice"); got.User != bob.UserID() || got.Conversation != conv {
		t.Fatalf("alice was shown %+v first, want bob's notice in their conversation", got)
	}
	for _, c := range []protocol.ConversationID{conv, other} {
		if alarms, err := alice.Alarms(c); err != nil || len(alarms) != 0 {
			t.Fatalf("alice's alarms in %s: %+v, %v", c, alarms, err)
		}
	}
}

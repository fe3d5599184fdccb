package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// typingNotice makes a notice of d in conv naming sender (the server reads
// its header only; the members open it).
func typingNotice(t *testing.T, d *device, conv protocol.ConversationID, sender protocol.DeviceRef) []byte {
	t.Helper()
	var k secret.TypingKey
	n, err := secret.SealTyping(d.id, &k, protocol.TypingHeader{Conversation: conv, Epoch: 1, Sender: sender}, true, time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	return n.Marshal()
}

func (d *device) postTyping(conv protocol.ConversationID, notice []byte) error {
	return d.do("POST", "/api/conversations/"+conv.String()+"/typing", map[string]any{"notice": b64(notice)}, nil)
}

// readTyping reads c's frames until a typing notice and returns it.
func readTyping(ctx context.Context, c *websocket.Conn) ([]byte, error) {
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		if !bytes.HasPrefix(data, []byte(`{"typing":`)) {
			continue // a page of events
		}
		var f struct {
			Typing struct{ Notice string } `json:"typing"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("typing frame %q: %w", data, err)
		}
		return b64dec(f.Typing.Notice)
	}
}

// liveSocket opens to's WebSocket from its newest event and returns it
// once it is live: it delivered a message from.
func liveSocket(ctx context.Context, t *testing.T, from, to *device, conv protocol.ConversationID) *websocket.Conn {
	t.Helper()
	to.events(500)
	ws, err := to.dialWS(ctx, nil, to.cursor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if _, err := from.send(conv, 1, "here"); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(ctx, ws); err != nil {
		t.Fatal(err)
	}
	return ws
}

// A typing notice reaches the other member's WebSocket as posted, and no
// event, row or stream position is made of it; a notice naming another
// sender or conversation, or undecodable, is refused; a non-member gets
// 404; a device's rate is limited.
func TestTypingRelay(t *testing.T) {
	forEachDB(t, server.Config{TypingPerMinute: 3}, func(t *testing.T, e *env) {
		alice, bob, mallory := e.register("alice"), e.register("bob"), e.register("mallory")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ws := liveSocket(ctx, t, alice, bob, conv)
		bob.events(500)
		before := bob.cursor

		aliceRef := protocol.DeviceRef{User: alice.user, Device: alice.dev}
		notice := typingNotice(t, alice, conv, aliceRef)
		alice.must("POST", "/api/conversations/"+conv.String()+"/typing", map[string]any{"notice": b64(notice)}, nil)
		got, err := readTyping(ctx, ws)
		if err != nil || !bytes.Equal(got, notice) {
			t.Fatalf("bob's socket: %x, %v; want the notice", got, err)
		}
		if evs := bob.events(500); len(evs) != 0 || bob.cursor != before {
			t.Fatalf("a typing notice made events %+v (cursor %d → %d)", evs, before, bob.cursor)
		}

		other, err := alice.create([]*device{mallory})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			notice []byte
			what   string
		}{
			{typingNotice(t, alice, conv, protocol.DeviceRef{User: bob.user, Device: bob.dev}), "in bob's name"},
			{typingNotice(t, alice, other, aliceRef), "of another conversation"},
			{notice[:len(notice)-1], "truncated"},
		} {
			wantCode(t, alice.postTyping(conv, c.notice), 400, server.CodeBadRequest)
		}
		wantCode(t, mallory.postTyping(conv, typingNotice(t, mallory, conv, protocol.DeviceRef{User: mallory.user, Device: mallory.dev})), 404, server.CodeNotFound)

		for range 2 { // the limit is 3 a minute; refused notices took none
			if err := alice.postTyping(conv, notice); err != nil {
				t.Fatal(err)
			}
		}
		wantCode(t, alice.postTyping(conv, notice), 429, server.CodeRateLimited)
	})
}

// A notice posted through one node reaches a WebSocket on another, over
// NATS.
func TestClusterTyping(t *testing.T) {
	es, _ := openCluster(t, 2, time.Hour)
	alice, bob := es[0].register("alice"), es[0].register("bob")
	conv, err := alice.create([]*device{bob})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws := liveSocket(ctx, t, alice, bob.on(es[1]), conv)
	notice := typingNotice(t, alice, conv, protocol.DeviceRef{User: alice.user, Device: alice.dev})
	if err := alice.postTyping(conv, notice); err != nil {
		t.Fatal(err)
	}
	if got, err := readTyping(ctx, ws); err != nil || !bytes.Equal(got, notice) {
		t.Fatalf("the other node's socket: %x, %v", got, err)
	}
}

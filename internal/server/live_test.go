package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
)

// cutter dials TCP connections and can cut every open one at once, as a
// network drop does: the peer sees the connection die mid-stream.
type cutter struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
	return conn, nil
}

// cut closes every connection dialed so far and returns how many.
func (c *cutter) cut() int {
	c.mu.Lock()
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for _, conn := range conns {
		conn.Close()
	}
	return len(conns)
}

// A receiver on the WebSocket whose TCP connection is cut again and again
// while two members send at least 300 messages gets each message exactly once, in
// seq order, and decrypts all of them, by reconnecting from its cursor.
func TestWebSocketResumesAfterCuts(t *testing.T) {
	const perSender = 150
	forEachDB(t, server.Config{RotateAfterMessages: 10_000}, func(t *testing.T, e *env) {
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		conv, err := alice.create([]*device{bob, carol})
		if err != nil {
			t.Fatal(err)
		}
		// Open the epoch on every device here, so the senders' goroutines
		// never reach a helper that calls t.Fatal.
		for _, d := range []*device{alice, bob, carol} {
			if _, err := d.epoch(conv, 1); err != nil {
				t.Fatal(err)
			}
		}
		names := map[protocol.UserID]string{alice.user: alice.name, carol.user: carol.name}

		cut := &cutter{}
		tr := &http.Transport{DialContext: cut.dial}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}

		// Each sender sends perSender messages, and goes on until the
		// receiver's connection has been cut at least 3 times while
		// sending (however fast the server is), up to maxPerSender.
		const maxPerSender = 5000
		var cutsWhileSending, cuts atomic.Int64
		var sending atomic.Bool
		var total atomic.Int64 // messages sent
		sending.Store(true)
		sendErr := make(chan error, 2)
		var senders sync.WaitGroup
		for _, d := range []*device{alice, carol} {
			senders.Go(func() {
				for i := 0; i < maxPerSender && (i < perSender || cutsWhileSending.Load() < 3); i++ {
					if _, err := d.send(conv, 1, fmt.Sprintf("%s %03d", d.name, i)); err != nil {
						sendErr <- fmt.Errorf("%s: send %d: %w", d.name, i, err)
						return
					}
					total.Add(1)
				}
			})
		}
		defer senders.Wait() // no sender outlives the test, even a failed one
		go func() { senders.Wait(); sending.Store(false) }()

		// bob's connections are cut at random moments, 5 to 60 ms apart,
		// during and after the sends, whatever each connection is doing.
		stopCuts := make(chan struct{})
		cutsDone := make(chan struct{})
		go func() {
			defer close(cutsDone)
			for {
				select {
				case <-stopCuts:
					return
				case <-time.After(time.Duration(5+rand.IntN(55)) * time.Millisecond):
				}
				if cut.cut() > 0 {
					cuts.Add(1)
					if sending.Load() {
						cutsWhileSending.Add(1)
					}
				}
			}
		}()
		defer func() { close(stopCuts); <-cutsDone }()

		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		cursor := bob.cursor
		var lastID int64
		nextSeq := uint64(1)
		sent := map[string]int{} // per sender, how many read
		frames, dropped, conns := 0, 0, 0
		defer cut.cut()
		// Once sending is over, total is final.
		for sending.Load() || nextSeq <= uint64(total.Load()) {
			select {
			case err := <-sendErr:
				t.Fatal(err)
			default:
			}
			if ctx.Err() != nil {
				t.Fatalf("timed out with %d of %d messages (%d connections, %d frames)", nextSeq-1, total.Load(), conns, frames)
			}
			c, err := bob.dialWS(ctx, client, cursor)
			if err != nil {
				time.Sleep(2 * time.Millisecond) // cut during the handshake
				continue
			}
			conns++
			for {
				p, err := readFrame(ctx, c)
				if err != nil {
					break // cut: reconnect from the cursor
				}
				frames++
				if frames%5 == 0 {
					// A client that dies after receiving a frame and before
					// saving it: drop it and reconnect from the old cursor.
					dropped++
					break
				}
				for _, ev := range p.Events {
					if ev.ID <= lastID {
						t.Fatalf("event %d (%s) after event %d: repeated or out of order across a reconnect", ev.ID, ev.Kind, lastID)
					}
					lastID = ev.ID
					if ev.Kind != "message" {
						continue
					}
					if ev.Message == nil || ev.Message.Seq != nextSeq {
						t.Fatalf("message event %d: %+v, want seq %d", ev.ID, ev.Message, nextSeq)
					}
					text, err := bob.decrypt(ev)
					if err != nil {
						t.Fatal(err)
					}
					name := names[ev.Message.SenderUser]
					if want := fmt.Sprintf("%s %03d", name, sent[name]); text != want {
						t.Fatalf("seq %d decrypts to %q, want %q", nextSeq, text, want)
					}
					sent[name]++
					nextSeq++
				}
				if p.Cursor != lastID && len(p.Events) > 0 {
					t.Fatalf("frame cursor %d, last event %d", p.Cursor, lastID)
				}
				cursor = p.Cursor
			}
			c.CloseNow()
		}
		senders.Wait()
		select {
		case err := <-sendErr:
			t.Fatal(err)
		default:
		}
		// The cuts did happen mid-stream, and the receiver reconnected.
		if cutsWhileSending.Load() < 3 || conns < 5 || dropped == 0 {
			t.Fatalf("only %d cuts while sending (%d in all), %d connections, %d dropped frames: the stream was not interrupted", cutsWhileSending.Load(), cuts.Load(), conns, dropped)
		}
		// Nothing is left over: no message event after the cursor.
		bob.cursor = cursor
		if rest := bob.events(500); countKind(rest, "message") != 0 {
			t.Fatalf("message events after the last cursor: %v", kindsOf(rest))
		}
		t.Logf("%d messages over %d connections, %d frames (%d dropped), %d cuts (%d while sending)", nextSeq-1, conns, frames, dropped, cuts.Load(), cutsWhileSending.Load())
	})
}

// Events are pushed live: a connected WebSocket gets a frame for a message
// right away (well before the server's 20 s safety poll), with the
// Authorization header or, as a browser does, with a token frame; a bad
// token closes the connection with a policy violation.
func TestWebSocketPushAndAuth(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		start := bob.cursor
		bob.events(500) // bob's cursor is now after the creation events
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()

		// Header path: connect at the current cursor; nothing is pending.
		hc, err := bob.dialWS(ctx, nil, bob.cursor)
		if err != nil {
			t.Fatal(err)
		}
		defer hc.CloseNow()
		// Browser path: no header; the token comes as the first frame.
		bc, _, err := websocket.Dial(ctx, e.wsURL(start), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer bc.CloseNow()
		bc.SetReadLimit(16 << 20)
		if err := bc.Write(ctx, websocket.MessageText, []byte(`{"token": "`+bob.token+`"}`)); err != nil {
			t.Fatal(err)
		}
		// The browser connection started before the conversation: its
		// first frame holds the creation events.
		p, err := readFrame(ctx, bc)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(kindsOf(p.Events), "session") || p.Cursor != bob.cursor {
			t.Fatalf("browser connection's first frame: %v cursor %d, want the session event up to %d", kindsOf(p.Events), p.Cursor, bob.cursor)
		}

		sentAt := time.Now()
		if _, err := alice.send(conv, 1, "live"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*websocket.Conn{hc, bc} {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			p, err := readFrame(rctx, c)
			rcancel()
			if err != nil {
				t.Fatalf("no frame within 5 s of a send: %v", err)
			}
			if len(p.Events) != 1 || p.Events[0].Kind != "message" || p.Events[0].Message.Seq != 1 || p.Cursor != p.Events[0].ID {
				t.Fatalf("frame after a send: %+v", p)
			}
			if c == hc {
				text, err := bob.decrypt(p.Events[0])
				if err != nil || text != "live" {
					t.Fatalf("decrypt: %q %v", text, err)
				}
			}
		}
		t.Logf("pushed in %v", time.Since(sentAt))

		// A bad token frame, and a first frame that is not a token, close
		// with a policy violation.
		for _, first := range []string{`{"token": "sandi_not-a-token"}`, `{"token": ""}`, `hello`} {
			c, _, err := websocket.Dial(ctx, e.wsURL(0), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Write(ctx, websocket.MessageText, []byte(first)); err != nil {
				t.Fatal(err)
			}
			_, data, err := c.Read(ctx)
			if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
				t.Fatalf("first frame %q: read %q, %v (close status %v), want a policy violation", first, data, err, got)
			}
			c.CloseNow()
		}
		// A bad token in the header is refused at the handshake.
		h := http.Header{"Authorization": {"Bearer sandi_not-a-token"}}
		_, resp, err := websocket.Dial(ctx, e.wsURL(0), &websocket.DialOptions{HTTPHeader: h})
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial with a bad token: %v, %v", resp, err)
		}
		// A revoked token no longer opens a stream, by either path.
		alice2 := e.login("alice", alice.id)
		alice2.must("POST", "/api/auth/logout", nil, nil)
		if _, err := alice2.dialWS(ctx, nil, 0); err == nil {
			t.Fatal("a logged-out token opened a WebSocket")
		}
		c, _, err := websocket.Dial(ctx, e.wsURL(0), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"token": "`+alice2.token+`"}`)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("logged-out token frame: %v", err)
		}
	})
}

// GET /api/sync pages: with any limit, the pages hold every event exactly
// once, in id order, also while new events commit between the pages.
func TestSyncPaging(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		start := bob.cursor
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			if _, err := alice.send(conv, 1, fmt.Sprint("one ", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := alice.change(conv, protocol.OpAdd, []protocol.Member{carol.member(protocol.RoleMember)}, nil); err != nil {
			t.Fatal(err)
		}
		if err := alice.rotate(conv, 2); err != nil {
			t.Fatal(err)
		}
		for i := range 13 {
			if _, err := alice.send(conv, 2, fmt.Sprint("two ", i)); err != nil {
				t.Fatal(err)
			}
		}

		// One page holds everything.
		var all pageAnswer
		bob.must("GET", fmt.Sprintf("/api/sync?since=%d&limit=500", start), nil, &all)
		if all.More || countKind(all.Events, "message") != 23 || len(all.Events) < 28 {
			t.Fatalf("one page: more %v, %d events %v", all.More, len(all.Events), kindsOf(all.Events))
		}
		for _, k := range []string{"session", "membership", "rotation_required"} {
			if !slices.Contains(kindsOf(all.Events), k) {
				t.Fatalf("no %s event in %v", k, kindsOf(all.Events))
			}
		}
		wantIDs := make([]int64, len(all.Events))
		for i, ev := range all.Events {
			wantIDs[i] = ev.ID
		}

		// Small pages give the same events.
		for _, limit := range []int{1, 4, 7, len(all.Events)} {
			var got []int64
			since := start
			for pages := 0; ; pages++ {
				if pages > len(all.Events)+1 {
					t.Fatalf("limit %d: paging does not end", limit)
				}
				var p pageAnswer
				bob.must("GET", fmt.Sprintf("/api/sync?since=%d&limit=%d", since, limit), nil, &p)
				if len(p.Events) > limit {
					t.Fatalf("limit %d: page of %d", limit, len(p.Events))
				}
				if p.More != (len(p.Events) == limit) {
					t.Fatalf("limit %d: page of %d with more=%v", limit, len(p.Events), p.More)
				}
				if len(p.Events) == 0 && p.Cursor != since {
					t.Fatalf("limit %d: empty page moved the cursor from %d to %d", limit, since, p.Cursor)
				}
				for _, ev := range p.Events {
					got = append(got, ev.ID)
				}
				if len(p.Events) > 0 && p.Cursor != p.Events[len(p.Events)-1].ID {
					t.Fatalf("limit %d: cursor %d is not the page's last event", limit, p.Cursor)
				}
				since = p.Cursor
				if !p.More {
					break
				}
			}
			if !slices.Equal(got, wantIDs) {
				t.Fatalf("limit %d: paged ids %v, want %v", limit, got, wantIDs)
			}
		}

		// Paging while messages commit between the pages: every message
		// once, in order, and it decrypts.
		bob.cursor = start
		var texts []string
		var lastID int64
		nextSeq := uint64(1)
		for i := 0; ; i++ {
			if i < 10 {
				if _, err := alice.send(conv, 2, fmt.Sprint("late ", i)); err != nil {
					t.Fatal(err)
				}
			}
			var p pageAnswer
			bob.must("GET", fmt.Sprintf("/api/sync?since=%d&limit=3", bob.cursor), nil, &p)
			for _, ev := range p.Events {
				if ev.ID <= lastID {
					t.Fatalf("event %d after %d", ev.ID, lastID)
				}
				lastID = ev.ID
				if ev.Kind != "message" {
					continue
				}
				if ev.Message.Seq != nextSeq {
					t.Fatalf("seq %d, want %d", ev.Message.Seq, nextSeq)
				}
				nextSeq++
				text, err := bob.decrypt(ev)
				if err != nil {
					t.Fatal(err)
				}
				texts = append(texts, text)
			}
			bob.cursor = p.Cursor
			if !p.More && i >= 10 {
				break
			}
		}
		if len(texts) != 33 || texts[0] != "one 0" || texts[10] != "two 0" || texts[23] != "late 0" || texts[32] != "late 9" {
			t.Fatalf("read %d messages: %q", len(texts), texts)
		}

		// Bad paging parameters are refused.
		for _, q := range []string{"limit=0", "limit=501", "limit=x", "since=-1", "since=x"} {
			wantCode(t, bob.do("GET", "/api/sync?"+q, nil, nil), 400, server.CodeBadRequest)
		}
		// A device's stream holds nothing of a conversation it is not in.
		outsider := e.register("dave")
		var p pageAnswer
		outsider.must("GET", "/api/sync?since=0&limit=500", nil, &p)
		for _, ev := range p.Events {
			if ev.Conversation != nil && *ev.Conversation == conv {
				t.Fatalf("outsider sees event %+v", ev)
			}
		}
	})
}

// Server.Close ends the open WebSockets with a going-away close, so that
// clients reconnect (to another node, or after a restart) at once.
func TestServerCloseEndsWebSockets(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice := e.register("alice")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := alice.dialWS(ctx, nil, alice.cursor)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		eventually(t, 5*time.Second, "the WebSocket is open", func() bool { return e.metricOr0("sandi_websockets_open") == 1 })
		// The client reads, as a live client does, and so answers the
		// server's close handshake.
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		readErr := make(chan error, 1)
		go func() {
			_, _, err := c.Read(rctx)
			readErr <- err
		}()
		start := time.Now()
		e.srv.Close()
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Server.Close took %v with a reading client", d)
		}
		if got := websocket.CloseStatus(<-readErr); got != websocket.StatusGoingAway {
			t.Fatalf("after Server.Close: close status %v, want going away", got)
		}
		eventually(t, 5*time.Second, "no WebSocket open after Close", func() bool { return e.metricOr0("sandi_websockets_open") == 0 })
		// A connection opened after Close is ended at once too.
		c2, err := alice.dialWS(ctx, nil, alice.cursor)
		if err == nil {
			defer c2.CloseNow()
			for err == nil { // pending events may come first
				_, _, err = c2.Read(rctx)
			}
			if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
				t.Fatalf("connection after Close: %v", err)
			}
		}
	})
}

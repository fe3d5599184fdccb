package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// A live socket is what stays in memory for each open WebSocket, and idle
// sockets (most of them, most of the time) must cost little: an idle
// socket has one goroutine, its reader, blocked in a read with a fresh,
// small stack; one runtime timer for its next poll; small I/O buffers; and
// the structures below. The work of a socket (reading its events from the
// store and writing them, polling, pinging, closing) runs on a goroutine
// that exists only while there is work: a wake-up from the hub, the poll
// timer or a revocation starts it, and it ends when the socket is caught
// up.

// liveEvent is a reason for a live socket to work; several merge.
type liveEvent uint8

const (
	evWake     liveEvent = 1 << iota // events may be waiting in the store
	evPoll                           // quiet for a while: check the token, ping
	evRevoked                        // the device was revoked: close
	evShutdown                       // the server is closing: close
	evTyping                         // typing notices wait (typing.go)
)

// Sizes of the buffers of a hijacked WebSocket connection (net/http's are
// 4 KiB each). Every control frame (at most 125 bytes of payload) fits in
// one write; the clients send nothing but control frames after the first
// frame, so a read buffer of the same size takes each in one read. A
// larger frame is written in two system calls (its start, then the rest
// directly from the message) and read in a few.
const (
	wsReadBuffer  = 128
	wsWriteBuffer = 128
)

type liveSocket struct {
	s     *Server
	conn  *websocket.Conn
	ref   protocol.DeviceRef
	token []byte // hash of the bearer token
	named string // the incarnation the client named
	since int64  // the cursor; only the working goroutine uses it
	// release gives back the socket's place under the WebSocket caps.
	release func()
	counted bool // subscribed before the hub closed (Hub.live)

	mu      sync.Mutex // guards the fields below
	pending liveEvent
	// wokenFor, with evWake pending, is the newest event id the wake-ups
	// named, or 0 when one named none (Hub.NotifyAt).
	wokenFor int64
	running  bool // a goroutine is working (or the handler is setting up)
	closing  bool // the work closed the connection: no more work
	ended    bool // the reader has returned: the connection is closed
	timer    *time.Timer
	typing   [][]byte // frames of typing notices to write (typing.go)
}

// kick records ev and starts a working goroutine unless one is running
// (it then sees ev before it stops).
func (k *liveSocket) kick(ev liveEvent) { k.kickAt(ev, 0) }

// kickAt is kick for a wake-up that names the newest event id of the
// commit it announces (at; 0: none).
func (k *liveSocket) kickAt(ev liveEvent, at int64) {
	if k.postAt(ev, at) {
		go k.work()
	}
}

// post records ev and reports whether the caller must now run work: no
// goroutine was working, and the socket is open.
func (k *liveSocket) post(ev liveEvent) bool { return k.postAt(ev, 0) }

// postAt is post for a wake-up for at (see kickAt). Merged wake-ups read
// up to the newest event named, or, if one named none, up to a head
// settled after the read begins (which covers every named one).
func (k *liveSocket) postAt(ev liveEvent, at int64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ev&evWake != 0 {
		switch {
		case k.pending&evWake == 0:
			k.wokenFor = at
		case k.wokenFor == 0 || at == 0:
			k.wokenFor = 0
		default:
			k.wokenFor = max(k.wokenFor, at)
		}
	}
	k.pending |= ev
	if k.running || k.closing || k.ended {
		return false
	}
	k.running = true
	if k.timer != nil {
		k.timer.Stop() // re-armed when the work ends
	}
	return true
}

// interrupted reports whether a revocation or the shutdown is waiting.
func (k *liveSocket) interrupted() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pending&(evRevoked|evShutdown) != 0
}

// work handles the pending events until there are none, then arms the
// poll timer (measured from the end of the last work, as a ping is due
// after a quiet interval) and returns. Whoever finds the connection
// closed with nothing running (the reader or the work) finishes.
func (k *liveSocket) work() {
	alive := true
	for {
		k.mu.Lock()
		ev, at := k.pending, k.wokenFor
		k.pending, k.wokenFor = 0, 0
		if ev == 0 || !alive || k.ended {
			k.running = false
			if !alive {
				k.closing = true
			} else if !k.ended {
				d := min(pollInterval, k.s.cfg.WebSocketPing)
				if k.timer == nil {
					// The timer's own goroutine does the work.
					k.timer = time.AfterFunc(d, func() {
						if k.post(evPoll) {
							k.work()
						}
					})
				} else {
					k.timer.Reset(d)
				}
			}
			ended := k.ended
			k.mu.Unlock()
			if ended {
				k.finish()
			}
			return
		}
		k.mu.Unlock()
		if alive = k.step(ev, at); !alive {
			k.conn.CloseNow()
		}
	}
}

// read is the socket's reader: reading keeps the connection's control
// frames flowing (pongs, the peer's close) and notices the client
// closing; clients send nothing else after authenticating. It runs on a
// goroutine of its own, started with a fresh stack, for as long as the
// connection is open. A context with no Done channel costs the library
// no timer or registration per read.
func (k *liveSocket) read() {
	_, _, err := k.conn.Reader(context.Background())
	if err == nil {
		k.conn.Close(websocket.StatusPolicyViolation, "unexpected data message")
	}
	k.conn.CloseNow()
	k.mu.Lock()
	k.ended = true
	if k.timer != nil {
		k.timer.Stop()
	}
	idle := !k.running
	k.mu.Unlock()
	if idle {
		k.finish()
	}
}

// finish gives back what the socket held; it runs once, after the
// connection closed and its work ended.
func (k *liveSocket) finish() {
	k.s.hub.unsubscribe(k)
	k.release()
	k.s.metrics.websockets.Dec()
}

// step handles ev and reports whether the connection stays open; at is
// the event the wake-ups named (see wokenFor).
func (k *liveSocket) step(ev liveEvent, at int64) bool {
	s, conn := k.s, k.conn
	switch {
	case ev&evShutdown != 0:
		conn.Close(websocket.StatusGoingAway, "server shutting down")
		return false
	case ev&evRevoked != 0:
		conn.Close(websocket.StatusPolicyViolation, "device revoked")
		return false
	}
	ctx := context.Background()
	if ev&evTyping != 0 {
		for _, data := range k.takeTyping() {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Write(wctx, websocket.MessageText, data)
			cancel()
			if err != nil {
				return false
			}
		}
		if ev == evTyping {
			return true // nothing else to do: no store read
		}
	}
	if ev&evPoll != 0 {
		// The safety net for a revocation made on another node: a token
		// that no longer resolves ends the connection. An open connection
		// is a use of its token (recorded at most once an hour), so it
		// does not expire while connected.
		d, err := s.store.DeviceByToken(ctx, k.token)
		if errors.Is(err, store.ErrNotFound) || err == nil && s.tokenUsed(ctx, d, k.token) != nil {
			conn.Close(websocket.StatusPolicyViolation, "device revoked")
			return false
		}
		// Quiet for a while: check that the peer is still there.
		if !k.ping() {
			return false
		}
	}
	if ev&(evWake|evPoll) != evWake {
		at = 0 // a poll, or no wake-up: a head settled after the read begins
	}
	if at > 0 && at <= k.since && s.currentIncarnation(k.named) {
		// Woken only for commits whose events the socket has sent
		// already: its cursor (the last event it sent) is at or past
		// every event they named, and a read finds nothing at or below
		// the cursor. These come after a read that a later commit's
		// wake-up caused, which read up to a head covering their commits
		// too (a third of the wake-ups on three nodes at 1,000 sends/s).
		// Their read could only find events of later commits, whose own
		// wake-ups follow. A cursor of another incarnation reads: the
		// read tells the client to resume.
		s.metrics.wsReads.WithLabelValues("delivered").Inc()
		return true
	}
	for more := false; ; more = true {
		page, err := s.readEvents(ctx, k.ref, k.since, 200, k.named, pageRead{afterFull: more, wokenFor: at})
		if err != nil {
			s.log.Warn("websocket: read events", "err", err)
			conn.Close(websocket.StatusInternalError, "internal error")
			return false
		}
		if len(page.Events) == 0 && page.Resume == nil {
			if !more {
				s.metrics.wsReads.WithLabelValues("empty").Inc()
			}
			return true
		}
		if !more {
			s.metrics.wsReads.WithLabelValues("events").Inc()
		}
		data, err := json.Marshal(page)
		if err != nil {
			return false
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = conn.Write(wctx, websocket.MessageText, data)
		cancel()
		if err != nil {
			return false
		}
		if page.Resume != nil {
			// The client starts again from the resume point, on a new
			// connection that names the current incarnation.
			conn.Close(websocket.StatusNormalClosure, "resynchronise")
			return false
		}
		k.since = page.Cursor
		if !page.More || k.interrupted() {
			return true
		}
	}
}

// ping pings the peer and reports whether the pong came back within
// Config.WebSocketPongWait. A peer that vanished without closing (a
// dropped network, a suspended laptop) would otherwise hold its
// connection and subscription for ever. The pong is read by the reader.
func (k *liveSocket) ping() bool {
	pctx, cancel := context.WithTimeout(context.Background(), k.s.cfg.WebSocketPongWait)
	defer cancel()
	if err := k.conn.Ping(pctx); err != nil {
		k.mu.Lock()
		ended := k.ended
		k.mu.Unlock()
		if !ended {
			k.s.log.Debug("websocket: no pong, closing", "err", err)
		}
		return false
	}
	return true
}

// smallBuffers is the ResponseWriter handed to websocket.Accept: its
// Hijack gives the library buffers of wsReadBuffer and wsWriteBuffer
// bytes over the connection instead of net/http's, which the library
// keeps for the connection's life.
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 || brw.Writer.Buffered() > 0 {
		// Bytes the client sent after its request are in net/http's
		// buffer (a client may not send frames before the answer, but
		// nothing is lost if it does): keep that buffer.
		return conn, brw, err
	}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(conn, wsReadBuffer), bufio.NewWriterSize(conn, wsWriteBuffer)), nil
}

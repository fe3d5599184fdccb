package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// EventInfo is one event of a device's stream as the API sends it.
type EventInfo struct {
	ID           int64                    `json:"id"`
	Kind         string                   `json:"kind"`
	Conversation *protocol.ConversationID `json:"conversation,omitempty"`
	User         *protocol.UserID         `json:"user,omitempty"`
	Seq          uint64                   `json:"seq,omitempty"`
	Epoch        uint64                   `json:"epoch,omitempty"`
	Reason       string                   `json:"reason,omitempty"`
	Message      *messageInfo             `json:"message,omitempty"`
	CreatedAt    int64                    `json:"createdAt"`
}

// SyncPage is the answer of GET /api/sync and each WebSocket frame.
type SyncPage struct {
	Events []EventInfo `json:"events"`
	Cursor int64       `json:"cursor"` // pass as since= to continue
	More   bool        `json:"more"`   // another page is ready now
	// Incarnation names the store's history (base64url of 16 bytes); a
	// restore from a backup changes it. Head is the newest event id: a
	// cursor beyond it was handed out by a store that has been rolled back.
	Incarnation string `json:"incarnation"`
	Head        int64  `json:"head"`
	// Resume is set, with no events, when the request named another
	// incarnation than the current one: the cursor to read again from
	// (where the named incarnation's history and this one's part; 0 when
	// the named one is unknown).
	Resume *int64 `json:"resume,omitempty"`
}

// incarnationText is the API form of an incarnation id.
func incarnationText(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// resumePoint returns the cursor from which a client of incarnation named
// must read again: the base of the first incarnation after it (events up
// to that one are the same in both histories), or 0 if it is unknown. ok
// is false when named is the current incarnation (or empty).
func (s *Server) resumePoint(ctx context.Context, named string) (int64, bool, error) {
	if s.currentIncarnation(named) {
		return 0, false, nil
	}
	all, err := s.store.Incarnations(ctx)
	if err != nil {
		return 0, false, err
	}
	for i, in := range all {
		if incarnationText(in.ID) == named && i+1 < len(all) {
			return all[i+1].Base, true, nil
		}
	}
	return 0, true, nil
}

// currentIncarnation reports whether a cursor naming named belongs to the
// store's current incarnation (named "": a client that names none).
func (s *Server) currentIncarnation(named string) bool {
	return named == "" || named == incarnationText(s.store.Incarnation().ID)
}

// pageRead says how readEvents reads a page; the zero value suits a
// WebSocket's first read.
type pageRead struct {
	// whole: a page without events is answered in full, with the head
	// (GET /api/sync). Without it (a WebSocket sends no empty page) such
	// a page is returned bare, and the head is not read.
	whole bool
	// afterFull: the read follows a full page, so a store whose stream
	// has a settled head reads up to the head settled already instead of
	// waiting for a new one.
	afterFull bool
	// wokenFor, when not 0, is the newest event id of the commit that
	// woke the reader: a store whose stream has a settled head reads once
	// it has settled that far (SyncWoken), a hint it does not trust.
	wokenFor int64
}

// readEvents reads a page of at most limit of ref's events after since,
// as how says; named is the incarnation the caller's cursor belongs to.
func (s *Server) readEvents(ctx context.Context, ref protocol.DeviceRef, since int64, limit int, named string, how pageRead) (SyncPage, error) {
	if resume, ok, err := s.resumePoint(ctx, named); err != nil {
		return SyncPage{}, err
	} else if ok {
		head, err := s.store.LastEventID(ctx)
		if err != nil {
			return SyncPage{}, err
		}
		return SyncPage{Events: []EventInfo{}, Cursor: resume, Incarnation: incarnationText(s.store.Incarnation().ID), Head: head, Resume: &resume}, nil
	}
	var evs []store.Event
	var err error
	switch {
	case how.afterFull && s.stream != nil:
		evs, err = s.stream.SyncSettled(ctx, ref.User, ref.Device, since, limit)
	case how.wokenFor > 0 && s.stream != nil:
		evs, err = s.stream.SyncWoken(ctx, ref.User, ref.Device, since, limit, how.wokenFor)
	default:
		evs, err = s.store.Sync(ctx, ref.User, ref.Device, since, limit)
	}
	if err != nil {
		return SyncPage{}, err
	}
	if len(evs) == 0 && !how.whole {
		return SyncPage{Cursor: since}, nil
	}
	inc := incarnationText(s.store.Incarnation().ID)
	head, err := s.pageHead(ctx, evs)
	if err != nil {
		return SyncPage{}, err
	}
	page := SyncPage{Events: make([]EventInfo, len(evs)), Cursor: since, More: len(evs) == limit, Incarnation: inc, Head: head}
	for i := range evs {
		e := &evs[i]
		page.Events[i] = EventInfo{ID: e.ID, Kind: e.Kind, Conversation: e.Conversation, User: e.User, Seq: e.Seq,
			Epoch: e.Epoch, Reason: e.Reason, CreatedAt: e.CreatedAt}
		if e.Message != nil {
			page.Events[i].Message = msgInfo(e.Message)
		}
		page.Cursor = e.ID
	}
	return page, nil
}

// pageHead is the head a page names, read after its events: at least the
// last of them. On a store whose stream has a settled head it is that
// head, which every read stays at or below, known without a query (a
// delivery on PostgreSQL saves a statement); elsewhere, and for a page
// without events (whose head must be at least any cursor a client holds,
// and may come from another node's page), the newest event id stored.
func (s *Server) pageHead(ctx context.Context, evs []store.Event) (int64, error) {
	if s.stream != nil && len(evs) > 0 {
		settled, _, _, _ := s.stream.StreamHead()
		return max(settled, evs[len(evs)-1].ID), nil
	}
	return s.store.LastEventID(ctx)
}

func sinceQuery(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("since is a non-negative event id", err)
	}
	return n, nil
}

// sync returns the caller's events after the cursor: GET /api/sync?since=N&limit=M.
func (s *Server) sync(w http.ResponseWriter, r *http.Request, c *call) error {
	since, err := sinceQuery(r)
	if err != nil {
		return err
	}
	limit, err := limitQuery(r, 200)
	if err != nil {
		return err
	}
	page, err := s.readEvents(r.Context(), c.ref(), since, limit, r.URL.Query().Get("incarnation"), pageRead{whole: true})
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, page)
	return nil
}

// wsAuth is the first frame of a browser's WebSocket, which cannot carry an
// Authorization header.
type wsAuth struct {
	Token string `json:"token"`
}

// pollInterval bounds how long a connection waits without a wake-up before
// it reads the store anyway (a safety net for lost cross-node signals).
const pollInterval = 20 * time.Second

// websocket streams the caller's events: GET /api/ws?since=N. Each frame is
// a SyncPage; the client keeps the last cursor and reconnects with it, so a
// dropped connection loses nothing. The handler authenticates, catches the
// socket up and returns; the socket then lives on as a liveSocket.
func (s *Server) websocket(w http.ResponseWriter, r *http.Request, c *call) error {
	since, err := sinceQuery(r)
	if err != nil {
		return err
	}
	var release func()
	if c != nil {
		if release, err = s.sockets.acquire(c.ref()); err != nil {
			return err
		}
	}
	conn, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{})
	if err != nil {
		if release != nil {
			release()
		}
		return nil // Accept has answered
	}
	conn.SetReadLimit(4 << 10)
	ctx := r.Context()
	if c == nil {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, data, err := conn.Read(actx)
		cancel()
		var a wsAuth
		if err == nil {
			err = json.Unmarshal(data, &a)
		}
		if err == nil {
			c, err = s.authenticate(r, a.Token)
		}
		if err == nil && !hasKeys(c) {
			err = errKeysRequired
		}
		if err != nil {
			conn.Close(websocket.StatusPolicyViolation, "authentication failed")
			return nil
		}
		if release, err = s.sockets.acquire(c.ref()); err != nil {
			conn.Close(websocket.StatusTryAgainLater, "too many live connections")
			return nil
		}
	}
	s.metrics.websockets.Inc()
	k := &liveSocket{s: s, conn: conn, ref: c.ref(), token: c.token, named: r.URL.Query().Get("incarnation"),
		since: since, release: release, running: true, pending: evWake}
	s.hub.subscribe(k)
	// A revocation that ran between the authentication and the subscription
	// did not see this connection: check once more now that it would.
	if _, err := s.store.DeviceByToken(ctx, c.token); err != nil {
		conn.Close(websocket.StatusPolicyViolation, "device revoked")
		k.finish()
		return nil
	}
	go k.read()
	k.work() // the catch-up runs here; later work on goroutines of its own
	return nil
}

package server

import (
	"context"
	"sync"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Hub wakes the live connections of users when events for them are
// committed. It carries no data: a woken connection reads its events from
// the store from its cursor, so a missed or merged wake-up loses nothing.
type Hub struct {
	mu     sync.Mutex
	subs   map[protocol.UserID]map[*subscriber]struct{}
	closed bool
	done   chan struct{}  // closed by Close: live connections end
	live   sync.WaitGroup // subscribers that joined before Close
	// Forward, if set, is called with every local notification so a bus
	// can carry it to other nodes.
	Forward func(users []protocol.UserID)
}

type subscriber struct {
	wake   chan struct{}
	device protocol.DeviceID
	// revoked is closed when the device is revoked: its connection ends.
	revoked chan struct{}
	once    sync.Once
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{subs: map[protocol.UserID]map[*subscriber]struct{}{}, done: make(chan struct{})}
}

// subscribe registers a subscriber for one device of user; call the
// returned function to leave.
func (h *Hub) subscribe(user protocol.UserID, device protocol.DeviceID) (*subscriber, func()) {
	s := &subscriber{wake: make(chan struct{}, 1), device: device, revoked: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[user] == nil {
		h.subs[user] = map[*subscriber]struct{}{}
	}
	h.subs[user][s] = struct{}{}
	counted := !h.closed // after Close, nothing is added to live
	if counted {
		h.live.Add(1)
	}
	return s, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[user], s)
		if len(h.subs[user]) == 0 {
			delete(h.subs, user)
		}
		if counted {
			h.live.Done()
		}
	}
}

// wait waits, at most d, for the connections that subscribed before Close
// to leave, and reports whether they all did.
func (h *Hub) wait(d time.Duration) bool {
	left := make(chan struct{})
	go func() { h.live.Wait(); close(left) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-left:
		return true
	case <-t.C:
		return false
	}
}

// Notify wakes every connection of the given users and forwards the
// notification to other nodes.
func (h *Hub) Notify(users ...protocol.UserID) {
	h.Deliver(users)
	if h.Forward != nil {
		h.Forward(users)
	}
}

// Deliver wakes local connections only (a bus calls it for remote events).
func (h *Hub) Deliver(users []protocol.UserID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range users {
		for s := range h.subs[u] {
			select {
			case s.wake <- struct{}{}:
			default: // already pending
			}
		}
	}
}

// Revoke ends at once the live connections of the given devices of user on
// this node (a logout, a device removed from its account's list). A
// connection on another node notices at its next poll (pollInterval),
// when it finds its token gone.
func (h *Hub) Revoke(user protocol.UserID, devices ...protocol.DeviceID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[user] {
		for _, d := range devices {
			if s.device == d {
				s.once.Do(func() { close(s.revoked) })
			}
		}
	}
}

// RevokeOthers ends the live connections of every device of user but keep
// on this node (an identity reset signs the account's other devices out).
func (h *Hub) RevokeOthers(user protocol.UserID, keep protocol.DeviceID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[user] {
		if s.device != keep {
			s.once.Do(func() { close(s.revoked) })
		}
	}
}

// NotifyAll wakes every local connection: only a fallback when the
// audience of an event cannot be read (see notifyContacts), since with
// many connections it costs every one of them a store read.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	users := make([]protocol.UserID, 0, len(h.subs))
	for u := range h.subs {
		users = append(users, u)
	}
	h.mu.Unlock()
	h.Notify(users...)
}

// Close ends every live connection, present and future (a hijacked
// WebSocket outlives http.Server.Shutdown: its request context is not
// cancelled). Calling it again does nothing.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		if h.done != nil {
			close(h.done)
		}
	}
}

func (s *Server) notifyMembers(ms []protocol.Member) {
	users := make([]protocol.UserID, len(ms))
	for i, m := range ms {
		users[i] = m.User
	}
	s.hub.Notify(users...)
}

// notifyConversation wakes the members of conv. ms, when not nil, are its
// members as the caller read them; otherwise they are read here.
func (s *Server) notifyConversation(ctx context.Context, conv protocol.ConversationID, ms []store.MemberRow) {
	if ms == nil {
		var err error
		if ms, err = s.store.Members(ctx, conv); err != nil {
			s.log.Warn("notify: members", "conversation", conv, "err", err)
			s.hub.NotifyAll()
			return
		}
	}
	users := make([]protocol.UserID, len(ms))
	for i, m := range ms {
		users[i] = m.User
	}
	s.hub.Notify(users...)
}

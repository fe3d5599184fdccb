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
	subs   map[protocol.UserID]map[*liveSocket]struct{}
	closed bool
	live   sync.WaitGroup // subscribers that joined before Close
	// Forward, if set, is called with every local notification so a bus
	// can carry it to other nodes; at is as NotifyAt's.
	Forward func(users []protocol.UserID, at int64)
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{subs: map[protocol.UserID]map[*liveSocket]struct{}{}}
}

// subscribe registers a live socket, which is then woken by Deliver and
// ended by Revoke, RevokeOthers and Close (also when the hub is closed
// already); unsubscribe removes it.
func (h *Hub) subscribe(k *liveSocket) {
	h.mu.Lock()
	if h.subs[k.ref.User] == nil {
		h.subs[k.ref.User] = map[*liveSocket]struct{}{}
	}
	h.subs[k.ref.User][k] = struct{}{}
	closed := h.closed
	k.counted = !closed // after Close, nothing is added to live
	if k.counted {
		h.live.Add(1)
	}
	h.mu.Unlock()
	if closed {
		k.kick(evShutdown)
	}
}

func (h *Hub) unsubscribe(k *liveSocket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[k.ref.User], k)
	if len(h.subs[k.ref.User]) == 0 {
		delete(h.subs, k.ref.User)
	}
	if k.counted {
		h.live.Done()
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
func (h *Hub) Notify(users ...protocol.UserID) { h.NotifyAt(0, users...) }

// NotifyAt is Notify for a commit whose newest event id is at (0: not
// known): a connection woken for it reads once the stream's head has
// settled that far (sqlstore's SyncWoken), not waiting for a newer one.
func (h *Hub) NotifyAt(at int64, users ...protocol.UserID) {
	h.Deliver(users, at)
	if h.Forward != nil {
		h.Forward(users, at)
	}
}

// Deliver wakes local connections only (a bus calls it for remote
// events); at is as NotifyAt's, a hint that is never trusted.
func (h *Hub) Deliver(users []protocol.UserID, at int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range users {
		for k := range h.subs[u] {
			k.kickAt(evWake, at)
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
	for k := range h.subs[user] {
		for _, d := range devices {
			if k.ref.Device == d {
				k.kick(evRevoked)
			}
		}
	}
}

// RevokeOthers ends the live connections of every device of user but keep
// on this node (an identity reset signs the account's other devices out).
func (h *Hub) RevokeOthers(user protocol.UserID, keep protocol.DeviceID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.subs[user] {
		if k.ref.Device != keep {
			k.kick(evRevoked)
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
		for _, ks := range h.subs {
			for k := range ks {
				k.kick(evShutdown)
			}
		}
	}
}

func (s *Server) notifyMembers(ms []protocol.Member) {
	users := make([]protocol.UserID, len(ms))
	for i, m := range ms {
		users[i] = m.User
	}
	s.forgetEverywhere() // the members changed: other nodes' remembered members are stale
	s.hub.Notify(users...)
}

// notifyConversation wakes the members of conv for a commit whose newest
// event id is at (0: not known). ms, when not nil, are its members as the
// caller read them; otherwise they are read here.
func (s *Server) notifyConversation(ctx context.Context, conv protocol.ConversationID, ms []store.MemberRow, at int64) {
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
	s.hub.NotifyAt(at, users...)
}

package server

import (
	"encoding/binary"
	"encoding/json"
	"net/http"

	"sandi.dev/protocol"
)

// Typing notices (protocol.md §13.9) are relayed, never stored: a member's
// device posts one, and the server writes it at once to the live
// WebSockets of the conversation's other members, on this node and,
// through the cluster, on the others. A member that is not connected
// misses it, as it should: a typing notice says something only for a few
// seconds. The server checks that the notice names the conversation of
// the route and the calling device as its sender (the members check the
// signature), and limits each device's rate.

// typingPerMinute is the default limit of notices a device may post.
const typingPerMinute = 60

// maxTypingQueue bounds the notices waiting for one socket: past it, the
// newer are dropped (a slow reader misses typing, nothing else).
const maxTypingQueue = 16

type typingRequest struct {
	Notice B64 `json:"notice"`
}

// typingFrame is the WebSocket frame that carries a notice; its first
// bytes, `{"typing":`, tell it from a page of events.
type typingFrame struct {
	Typing struct {
		Notice B64 `json:"notice"`
	} `json:"typing"`
}

// postTyping relays a typing notice to the live connections of the
// conversation's other members.
func (s *Server) postTyping(w http.ResponseWriter, r *http.Request, c *call) error {
	var req typingRequest
	if err := decode(r, &req, 1024); err != nil {
		return err
	}
	n, err := protocol.ParseTyping(req.Notice)
	if err != nil {
		return badRequest("the typing notice does not decode", err)
	}
	if n.Conversation != c.conv || n.Sender != c.ref() {
		return badRequest("the typing notice names another conversation or sender", nil)
	}
	if err := s.limits.typing.allow(c.device.ID.String()); err != nil {
		return err
	}
	var users []protocol.UserID
	for _, m := range c.members {
		if m.User != c.user() {
			users = append(users, m.User)
		}
	}
	s.hub.Typing(users, req.Notice)
	if s.cluster != nil && len(users) > 0 {
		s.cluster.typing(users, req.Notice)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Typing writes a typing notice to the live connections of users on this
// node.
func (h *Hub) Typing(users []protocol.UserID, notice []byte) {
	var f typingFrame
	f.Typing.Notice = notice
	data, err := json.Marshal(f)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range users {
		for k := range h.subs[u] {
			k.mu.Lock()
			queued := len(k.typing) < maxTypingQueue
			if queued {
				k.typing = append(k.typing, data)
			}
			k.mu.Unlock()
			if queued {
				k.kick(evTyping)
			}
		}
	}
}

// takeTyping returns the notices waiting for k, and forgets them.
func (k *liveSocket) takeTyping() [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	q := k.typing
	k.typing = nil
	return q
}

// A cluster message of kind cmTyping carries a notice to the other
// nodes: body = user count u16 || user ids (16 bytes each) || notice.
func typingBody(users []protocol.UserID, notice []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(users)))
	for _, u := range users {
		b = append(b, u[:]...)
	}
	return append(b, notice...)
}

// parseTypingBody is typingBody's inverse, for untrusted input.
func parseTypingBody(b []byte) ([]protocol.UserID, []byte, bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if n == 0 || n > maxTypingUsers || len(b) != 2+n*protocol.IDSize+protocol.TypingSize {
		return nil, nil, false
	}
	users := make([]protocol.UserID, n)
	for i := range users {
		copy(users[i][:], b[2+i*protocol.IDSize:])
	}
	return users, b[2+n*protocol.IDSize:], true
}

// maxTypingUsers bounds the users of one cluster typing message (a
// larger conversation's notice is sent in several).
const maxTypingUsers = 4096

// typing tells the other nodes to relay a notice to users.
func (c *cluster) typing(users []protocol.UserID, notice []byte) {
	for len(users) > 0 {
		n := min(len(users), maxTypingUsers)
		c.publish(clusterMsg{kind: cmTyping, typing: typingBody(users[:n], notice)})
		users = users[n:]
	}
}

package server

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Access says who may call a route.
type Access int

const (
	// Public routes need no token (register, login).
	Public Access = iota
	// Device routes need a valid token of a device that holds the
	// account's keys (it uploaded a bundle). A device without keys (one
	// that only signed in with the password and is not linked yet) gets
	// 403 keys_required: it sees nothing of the account's conversations.
	Device
	// Member routes need a device token whose account is a current member
	// of the conversation named by the {id} path value. Anyone else gets
	// 404, so a non-member cannot even learn that the conversation exists.
	Member
	// FormerMember routes also admit an account that was a member and was
	// removed or left, limited to what it saw as a member: the membership
	// records up to the one that removed it, and its own epoch keys. A
	// message sent while it was a member must still decrypt after it left.
	FormerMember
	// AnyDevice routes need a valid device token, with or without keys:
	// what a device that only signed in may do (link, upload its bundle,
	// list its own session, log out).
	AnyDevice
)

// Route is one API route. The table is data so that the authorization test
// can walk it: a route without an entry there fails that test.
type Route struct {
	Method  string
	Pattern string
	Access  Access
	handle  func(w http.ResponseWriter, r *http.Request, c *call) error
}

// call is what the wrapper resolved for a handler.
type call struct {
	device store.Device
	token  []byte // hash of the bearer token
	conv   protocol.ConversationID
	// until, for a former member, is the seq of the membership record that
	// removed it; nil for a current member.
	until *uint64
	// members, for a current member, are conv's members as read by the
	// membership check (a send wakes them without reading them again).
	members []store.MemberRow
}

func (c *call) user() protocol.UserID { return c.device.User }
func (c *call) ref() protocol.DeviceRef {
	return protocol.DeviceRef{User: c.device.User, Device: c.device.ID}
}

func (s *Server) routes() []Route {
	return []Route{
		{"POST", "/api/auth/register", Public, s.register},
		{"POST", "/api/auth/login", Public, s.login},
		{"POST", "/api/auth/logout", AnyDevice, s.logout},
		{"GET", "/api/me", AnyDevice, s.me},
		{"POST", "/api/devices/link", AnyDevice, s.setting(s.startLink)},
		{"GET", "/api/devices/link", Device, s.listLinks},
		{"GET", "/api/devices/link/self", AnyDevice, s.linkResult},
		{"POST", "/api/devices/link/{device}", Device, s.setting(s.approveLink)},
		{"POST", "/api/devices/list", Device, s.setting(s.publishDeviceList)},
		{"DELETE", "/api/devices/{device}", Device, s.setting(s.removeDevice)},
		{"PUT", "/api/devices/{device}/name", Device, s.setting(s.putDeviceName)},
		{"GET", "/api/sessions", AnyDevice, s.listSessions},
		{"DELETE", "/api/sessions/{device}", Device, s.setting(s.revokeSession)},
		{"POST", "/api/auth/password", Device, s.changePassword},
		{"POST", "/api/keys/prekey-bundle", AnyDevice, s.putBundle},
		{"POST", "/api/keys/one-time", Device, s.addOneTime},
		{"GET", "/api/keys/count", Device, s.countOneTime},
		{"POST", "/api/keys/claim", Device, s.claim},
		{"GET", "/api/users", Device, s.findUser},
		{"GET", "/api/users/{user}", Device, s.getUser},
		{"GET", "/api/users/{user}/device-list", Device, s.getDeviceList},
		{"POST", "/api/blocks", Device, s.setting(s.block)},
		{"GET", "/api/blocks", Device, s.listBlocks},
		{"DELETE", "/api/blocks/{user}", Device, s.setting(s.unblock)},
		{"POST", "/api/conversations", Device, s.conversationChange(s.createConversation)},
		{"GET", "/api/conversations", Device, s.listConversations},
		{"GET", "/api/conversations/{id}", Member, s.getConversation},
		{"GET", "/api/conversations/{id}/records", FormerMember, s.getRecords},
		{"POST", "/api/conversations/{id}/members", Member, s.conversationChange(s.addMembers)},
		{"DELETE", "/api/conversations/{id}/members/{user}", Member, s.conversationChange(s.removeMember)},
		{"POST", "/api/conversations/{id}/sessions", Member, s.postSession},
		{"PUT", "/api/conversations/{id}/state", Member, s.conversationChange(s.putState)},
		{"POST", "/api/conversations/{id}/typing", Member, s.postTyping},
		{"GET", "/api/conversations/{id}/sessions/{epoch}/initial-session", FormerMember, s.initialSession},
		{"POST", "/api/conversations/{id}/messages", Member, s.sendMessage},
		{"GET", "/api/conversations/{id}/messages", Member, s.listMessages},
		{"POST", "/api/conversations/{id}/blobs", Member, s.createBlob},
		{"PUT", "/api/blobs/{blob}/parts/{n}", Device, s.putBlobPart},
		{"GET", "/api/blobs/{blob}/upload", Device, s.blobUpload},
		{"POST", "/api/blobs/{blob}/complete", Device, s.completeBlob},
		{"GET", "/api/blobs/{blob}", Device, s.getBlob},
		{"DELETE", "/api/blobs/{blob}", Device, s.deleteBlob},
		{"PUT", "/api/archives/{kind}", Device, s.putArchive},
		{"GET", "/api/archives", AnyDevice, s.listArchives},
		{"GET", "/api/archives/{archive}", AnyDevice, s.getArchive},
		{"DELETE", "/api/archives/{archive}", Device, s.deleteArchive},
		{"GET", "/api/sync", Device, s.sync},
		{"GET", "/api/ws", Device, s.websocket},
	}
}

// Routes returns the route table (for tests and docs).
func (s *Server) Routes() []Route { return s.routes() }

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// bearer is the token of an "Authorization: Bearer …" header; the scheme
// is matched case-insensitively (RFC 9110 §11.1).
func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

func (s *Server) authenticate(r *http.Request, tok string) (*call, error) {
	if tok == "" {
		return nil, problem(http.StatusUnauthorized, CodeUnauthenticated, "a bearer token is required", nil)
	}
	h := hashToken(tok)
	d, err := s.store.DeviceByToken(r.Context(), h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem(http.StatusUnauthorized, CodeUnauthenticated, "the token is not valid", nil)
	}
	if err != nil {
		return nil, err
	}
	if err := s.tokenUsed(r.Context(), d, h); err != nil {
		return nil, err
	}
	return &call{device: d, token: h}, nil
}

// memberOf checks that the caller's account is a current member of conv,
// and keeps the members it read in c.members.
func (s *Server) memberOf(r *http.Request, c *call, conv protocol.ConversationID) (store.MemberRow, error) {
	for again := true; ; again = false {
		members, err := s.store.Members(r.Context(), conv)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.MemberRow{}, err
		}
		for _, m := range members {
			if m.User == c.user() {
				c.members = members
				return m, nil
			}
		}
		if !again || !s.recheckMembers(conv) { // added through another node a moment ago?
			return store.MemberRow{}, problem(http.StatusNotFound, CodeNotFound, "no such conversation", nil)
		}
	}
}

func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{}
		if rt.Access != Public {
			tok := bearer(r)
			if tok == "" && rt.Pattern == "/api/ws" {
				// Browsers cannot set headers on a WebSocket handshake;
				// the handler authenticates with the first frame instead.
				if err := rt.handle(w, r, nil); err != nil {
					s.writeError(w, r, err)
				}
				return
			}
			var err error
			if c, err = s.authenticate(r, tok); err != nil {
				s.writeError(w, r, err)
				return
			}
			if rt.Access != AnyDevice && !hasKeys(c) && s.recheckToken(c) {
				c, err = s.authenticate(r, tok) // keys uploaded through another node a moment ago?
				if err != nil {
					s.writeError(w, r, err)
					return
				}
			}
			if rt.Access != AnyDevice && !hasKeys(c) {
				s.writeError(w, r, errKeysRequired)
				return
			}
		}
		if rt.Access == Member || rt.Access == FormerMember {
			id, err := protocol.ParseConversationID(r.PathValue("id"))
			if err != nil {
				s.writeError(w, r, problem(http.StatusNotFound, CodeNotFound, "no such conversation", err))
				return
			}
			if _, err := s.memberOf(r, c, id); err != nil {
				if rt.Access != FormerMember {
					s.writeError(w, r, err)
					return
				}
				if c.until, err = s.removedAt(r, c.user(), id); err != nil {
					s.writeError(w, r, err)
					return
				}
			}
			c.conv = id
		}
		if err := rt.handle(w, r, c); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// removedAt returns the seq of the membership record by which user last
// stopped being a member of conv, or a 404 problem if it never was one.
func (s *Server) removedAt(r *http.Request, user protocol.UserID, conv protocol.ConversationID) (*uint64, error) {
	notFound := problem(http.StatusNotFound, CodeNotFound, "no such conversation", nil)
	rows, err := s.store.Records(r.Context(), conv, 0)
	if errors.Is(err, store.ErrNotFound) || len(rows) == 0 {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	var chain *protocol.Chain
	var until *uint64
	for _, row := range rows {
		rec, err := protocol.ParseRecord(row.Encoded)
		if err != nil {
			return nil, fmt.Errorf("stored record %d of %s: %w", row.Seq, conv, err)
		}
		var next *protocol.Chain
		if chain == nil {
			next, err = protocol.Genesis(rec)
		} else {
			next, err = chain.Apply(rec)
		}
		if err != nil {
			return nil, fmt.Errorf("stored chain of %s: %w", conv, err)
		}
		if chain != nil {
			_, was := chain.Member(user)
			_, is := next.Member(user)
			if was && !is {
				seq := rec.Seq
				until = &seq
			}
		}
		chain = next
	}
	if until == nil {
		return nil, notFound
	}
	return until, nil
}

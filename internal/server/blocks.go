package server

import (
	"errors"
	"net/http"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Blocks and first contacts (protocol.md §16). Each account keeps a block
// list on the server; a conversation creation or a member addition that
// names a user who blocked its author is refused whole (403 blocked: the
// signed chain names every member, so the server can neither leave the
// blocker out nor pretend it was added). Whether a conversation is a
// request is the recipient client's decision, from what it knows itself;
// the server only bounds how many accounts one account may name while
// sharing no conversation with them (429 too_many_new_contacts).

// Problem codes of this file.
const (
	CodeBlocked         = "blocked"
	CodeTooManyContacts = "too_many_new_contacts"
)

// newContactWindow is the window NewContactsPerDay counts in.
const newContactWindow = 24 * time.Hour

type blockRequest struct {
	User protocol.UserID `json:"user"`
}

type blockInfo struct {
	User      protocol.UserID `json:"user"`
	Username  string          `json:"username"`
	CreatedAt int64           `json:"createdAt"`
}

// block answers POST /api/blocks: the caller's account blocks a user.
func (s *Server) block(w http.ResponseWriter, r *http.Request, c *call) error {
	var req blockRequest
	if err := decode(r, &req, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	if req.User == (protocol.UserID{}) {
		return badRequest("user is required", nil)
	}
	if req.User == c.user() {
		return badRequest("an account cannot block itself", nil)
	}
	err := s.store.Block(r.Context(), c.user(), req.User, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, CodeNotFound, "no such user", err)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// unblock answers DELETE /api/blocks/{user}.
func (s *Server) unblock(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := protocol.ParseUserID(r.PathValue("user"))
	if err != nil {
		return problem(http.StatusNotFound, CodeNotFound, "that user is not blocked", err)
	}
	ok, err := s.store.Unblock(r.Context(), c.user(), id)
	if err != nil {
		return err
	}
	if !ok {
		return problem(http.StatusNotFound, CodeNotFound, "that user is not blocked", nil)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listBlocks answers GET /api/blocks: the caller's account's block list.
func (s *Server) listBlocks(w http.ResponseWriter, r *http.Request, c *call) error {
	bl, err := s.store.Blocks(r.Context(), c.user())
	if err != nil {
		return err
	}
	out := make([]blockInfo, 0, len(bl))
	for _, b := range bl {
		out = append(out, blockInfo{User: b.User, Username: b.Username, CreatedAt: b.CreatedAt})
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"blocks": out})
	return nil
}

// admit checks that the users a record of author names as new members
// accept it: none of them blocked author, and author stays within its
// first-contact cap.
func (s *Server) admit(r *http.Request, author protocol.UserID, members []protocol.Member) error {
	users := make([]protocol.UserID, 0, len(members))
	for _, m := range members {
		if m.User != author {
			users = append(users, m.User)
		}
	}
	if len(users) == 0 {
		return nil
	}
	by, err := s.store.BlockedBy(r.Context(), author, users)
	if err != nil {
		return err
	}
	if len(by) > 0 {
		p := problem(http.StatusForbidden, CodeBlocked, "a user named here does not accept conversations from you; leave them out", nil)
		for _, u := range by {
			p.Users = append(p.Users, u.String())
		}
		return p
	}
	if s.cfg.NewContactsPerDay < 0 {
		return nil
	}
	now := s.now()
	_, err = s.store.NewContacts(r.Context(), author, users, now-newContactWindow.Milliseconds(), now, s.cfg.NewContactsPerDay)
	if errors.Is(err, store.ErrTooManyContacts) {
		p := problem(http.StatusTooManyRequests, CodeTooManyContacts, "this account has named too many users it shares no conversation with in the last 24 hours; try again later", err)
		p.RetryAfter = int(time.Hour / time.Second)
		return p
	}
	return err
}

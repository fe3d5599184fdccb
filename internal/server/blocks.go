package server

import (
	"errors"
	"fmt"
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
// sharing no conversation with them (429 too_many_new_contacts). An
// account's block list holds at most MaxBlocks accounts, blocked or kept
// with a signed unblock (409 too_many_blocks for one more; what is held
// already never counts twice, so an unblock always goes through).

// Problem codes of this file.
const (
	CodeBlocked         = "blocked"
	CodeTooManyContacts = "too_many_new_contacts"
	CodeTooManyBlocks   = "too_many_blocks"
)

// DefaultMaxBlocks is the default of Config.MaxBlocks.
const DefaultMaxBlocks = 10_000

// newContactWindow is the window NewContactsPerDay counts in.
const newContactWindow = 24 * time.Hour

type blockRequest struct {
	User      protocol.UserID `json:"user"`
	Statement B64             `json:"statement,omitempty"`
}

type blockInfo struct {
	User      protocol.UserID `json:"user"`
	Username  string          `json:"username"`
	CreatedAt int64           `json:"createdAt"` // an unblock: the statement's time
	Statement B64             `json:"statement,omitempty"`
}

// block answers POST /api/blocks: the caller's account blocks a user, or
// with a signed statement (protocol.md §16.2) blocks or unblocks one. The
// server checks the statement as any client would: the caller's account
// about the user named, signed by its current identity key, newer than the
// one it holds.
func (s *Server) block(w http.ResponseWriter, r *http.Request, c *call) error {
	var req blockRequest
	if err := decode(r, &req, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	var st *protocol.Block
	if req.Statement != nil {
		var err error
		if st, err = protocol.ParseBlock(req.Statement); err != nil {
			return badRequest("statement: "+err.Error(), err)
		}
		if req.User == (protocol.UserID{}) {
			req.User = st.Other
		}
	}
	if req.User == (protocol.UserID{}) {
		return badRequest("user is required", nil)
	}
	if req.User == c.user() {
		return badRequest("an account cannot block itself", nil)
	}
	limit := max(s.cfg.MaxBlocks, 0)
	var err error
	if st == nil {
		err = s.store.Block(r.Context(), c.user(), req.User, s.now(), limit)
	} else {
		u, uerr := s.store.User(r.Context(), c.user())
		if uerr != nil {
			return uerr
		}
		if u.Identity == nil {
			return errKeysRequired
		}
		if err := st.Verify(c.user(), req.User, *u.Identity); err != nil {
			return problem(http.StatusBadRequest, CodeBadSignature, err.Error(), err)
		}
		err = s.store.SetBlock(r.Context(), c.user(), req.User, st.Blocked, st.Time, req.Statement, s.now(), limit)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problem(http.StatusNotFound, CodeNotFound, "no such user", err)
	case errors.Is(err, store.ErrConflict):
		return problem(http.StatusConflict, CodeConflict, "the account holds a newer statement about this user: fetch the block list", err)
	case errors.Is(err, store.ErrTooManyBlocks):
		return problem(http.StatusConflict, CodeTooManyBlocks, fmt.Sprintf("a block list holds at most %d accounts on this server (an unblocked account counts too while its signed unblock is kept), and this one is full; nothing was changed", limit), err)
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// unblock answers DELETE /api/blocks/{user}: lifts a block made without a
// statement. A signed block is lifted only by a signed unblock (409).
func (s *Server) unblock(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := protocol.ParseUserID(r.PathValue("user"))
	if err != nil {
		return problem(http.StatusNotFound, CodeNotFound, "that user is not blocked", err)
	}
	ok, err := s.store.Unblock(r.Context(), c.user(), id)
	if errors.Is(err, store.ErrConflict) {
		return problem(http.StatusConflict, CodeConflict, "this block is signed: only a signed unblock statement (POST /api/blocks) lifts it", err)
	}
	if err != nil {
		return err
	}
	if !ok {
		return problem(http.StatusNotFound, CodeNotFound, "that user is not blocked", nil)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listBlocks answers GET /api/blocks: the caller's account's block list
// (blocks) and its unblock statements (unblocks: apart, so that a client
// of a version before statements does not take them for blocks).
func (s *Server) listBlocks(w http.ResponseWriter, r *http.Request, c *call) error {
	bl, err := s.store.Blocks(r.Context(), c.user())
	if err != nil {
		return err
	}
	blocks, unblocks := make([]blockInfo, 0, len(bl)), []blockInfo{}
	for _, b := range bl {
		info := blockInfo{User: b.User, Username: b.Username, CreatedAt: b.CreatedAt, Statement: b.Statement}
		if b.Blocked {
			blocks = append(blocks, info)
		} else {
			unblocks = append(unblocks, info)
		}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"blocks": blocks, "unblocks": unblocks})
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

package server

import (
	"net/http"
	"strconv"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Conversation state (protocol.md §7.6): the server keeps the latest
// state record of each conversation, which it can neither read nor forge,
// and hands it to every member with the conversation. It checks what it
// can see: the record's clear header (conversation, epoch, signer and
// version) and the signer's signature under the identity key the
// membership chain records; the store checks the version against the
// stored one.

// CodeStaleState (409): the state's version is not newer than the stored
// one (a concurrent change won): fetch the conversation and try again.
const CodeStaleState = "stale_state"

type stateRequest struct {
	State B64 `json:"state"`
}

// parseState decodes and verifies a state record posted by the caller
// for epoch epoch of the conversation chain describes.
func parseState(enc []byte, chain *protocol.Chain, c *call, epoch uint64) (*store.StateRow, error) {
	if len(enc) == 0 {
		return nil, nil
	}
	st, err := protocol.ParseStateRecord(enc)
	if err != nil {
		return nil, badRequest("state: "+err.Error(), err)
	}
	if st.Conversation != chain.Conversation || st.Epoch != epoch {
		return nil, badRequest("the state is not one of this conversation's epoch "+strconv.FormatUint(epoch, 10), nil)
	}
	if st.Signer != c.ref() {
		return nil, problem(http.StatusForbidden, CodeForbidden, "a state is signed by the device that posts it", nil)
	}
	m, ok := chain.Member(st.Signer.User)
	if !ok {
		return nil, problem(http.StatusForbidden, CodeForbidden, "only a member sets the conversation's state", nil)
	}
	if err := st.Verify(m.Identity); err != nil {
		return nil, problem(http.StatusBadRequest, CodeBadSignature, err.Error(), err)
	}
	return &store.StateRow{Encoded: enc, Epoch: st.Epoch, Version: st.StateVersion}, nil
}

// putState answers PUT /api/conversations/{id}/state: a member's new state
// (a rename) or its re-publication under the current epoch.
func (s *Server) putState(w http.ResponseWriter, r *http.Request, c *call) error {
	var req stateRequest
	if err := decode(r, &req, 16<<10); err != nil {
		return err
	}
	if len(req.State) == 0 {
		return badRequest("no state given", nil)
	}
	chain, st, err := s.chain(r.Context(), c.conv)
	if err != nil {
		return err
	}
	row, err := parseState(req.State, chain, c, st.Epoch)
	if err != nil {
		return err
	}
	if err := s.store.SetState(r.Context(), store.StateUpdate{Conversation: c.conv, User: c.user(), State: *row, Now: s.now()}); err != nil {
		return storeErr(err)
	}
	s.notifyMembers(chain.Members())
	s.writeJSON(w, http.StatusOK, map[string]any{"epoch": row.Epoch, "version": row.Version})
	return nil
}

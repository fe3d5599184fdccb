package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// chainCache keeps the verified membership chain of recent conversations so
// a change verifies only the new record.
type chainCache struct {
	mu     sync.Mutex
	chains map[protocol.ConversationID]*protocol.Chain
}

// chain returns the verified chain of conv at the store's current head.
func (s *Server) chain(ctx context.Context, conv protocol.ConversationID) (*protocol.Chain, store.Conversation, error) {
	st, err := s.store.Conversation(ctx, conv)
	if errors.Is(err, store.ErrNotFound) {
		return nil, st, problem(http.StatusNotFound, CodeNotFound, "no such conversation", err)
	}
	if err != nil {
		return nil, st, err
	}
	s.chains.mu.Lock()
	held := s.chains.chains[conv]
	s.chains.mu.Unlock()
	from := uint64(0)
	if held != nil {
		if held.Seq == st.ChainSeq && held.Head == st.ChainHead {
			return held, st, nil
		}
		if held.Seq < st.ChainSeq {
			from = held.Seq + 1
		} else {
			held = nil
		}
	}
	rows, err := s.store.Records(ctx, conv, from)
	if err != nil {
		return nil, st, err
	}
	recs := make([]*protocol.Record, len(rows))
	for i, row := range rows {
		if recs[i], err = protocol.ParseRecord(row.Encoded); err != nil {
			return nil, st, fmt.Errorf("stored record %d of %s: %w", row.Seq, conv, err)
		}
	}
	c, err := protocol.Update(held, recs)
	if err != nil {
		return nil, st, fmt.Errorf("stored chain of %s: %w", conv, err)
	}
	if c.Seq != st.ChainSeq || c.Head != st.ChainHead {
		// A change landed between the two reads; the caller retries on
		// ErrStaleChain from the store, so an older view is still safe.
		st.ChainSeq, st.ChainHead = c.Seq, c.Head
	}
	s.chains.mu.Lock()
	if s.chains.chains == nil {
		s.chains.chains = map[protocol.ConversationID]*protocol.Chain{}
	}
	s.chains.chains[conv] = c
	s.chains.mu.Unlock()
	return c, st, nil
}

// checkIdentities checks that every member entry carries its account's
// current identity key: the server refuses to store a chain that names a
// key the account does not have (clients verify the same from their side).
func (s *Server) checkIdentities(ctx context.Context, members []protocol.Member) error {
	for _, m := range members {
		u, err := s.store.User(ctx, m.User)
		if errors.Is(err, store.ErrNotFound) {
			return problem(http.StatusNotFound, CodeNotFound, "no user "+m.User.String(), err)
		}
		if err != nil {
			return err
		}
		if u.Identity == nil || !u.Identity.Equal(m.Identity) {
			return problem(http.StatusConflict, CodeIdentityMismatch, "the record names an identity key that is not "+u.Username+"'s current one", nil)
		}
	}
	return nil
}

func memberRows(c *protocol.Chain) []store.MemberRow {
	ms := c.Members()
	out := make([]store.MemberRow, len(ms))
	for i, m := range ms {
		out[i] = store.MemberRow{User: m.User, Role: m.Role}
	}
	return out
}

func sessionFromDistribution(d *protocol.Distribution, enc []byte, now int64) store.Session {
	ss := store.Session{Conversation: d.Conversation, Epoch: d.Epoch, ChainSeq: d.ChainSeq, Creator: d.Creator.Device, Encoded: enc, CreatedAt: now}
	for i := range d.Recipients {
		e := &d.Recipients[i]
		ss.Keys = append(ss.Keys, store.SessionKey{
			Device: e.Device, User: e.User, PreKeyID: e.PreKeyID,
			InitiatorEphemeral: append([]byte(nil), e.Enc[:]...),
			Ciphertext:         append([]byte(nil), e.Ciphertext[:]...),
		})
	}
	return ss
}

// storeErr maps store errors that are the client's fault to problems.
func storeErr(err error) error {
	var cov *store.CoverageError
	var ep *store.EpochError
	switch {
	case errors.As(err, &cov):
		p := problem(http.StatusConflict, CodeSessionCoverage, "the session must carry a key for exactly the member devices", err)
		p.Missing, p.Extra = idStrings(cov.Missing), idStrings(cov.Extra)
		return p
	case errors.As(err, &ep) && errors.Is(err, store.ErrEpochTaken):
		p := problem(http.StatusConflict, CodeEpochTaken, "that epoch exists already; adopt the current one", err)
		p.CurrentEpoch = &ep.Current
		return p
	case errors.As(err, &ep) && errors.Is(err, store.ErrStaleEpoch):
		p := problem(http.StatusConflict, CodeRotationRequired, "the conversation needs a new epoch before more messages", err)
		p.CurrentEpoch = &ep.Current
		return p
	case errors.Is(err, store.ErrStaleChain):
		return problem(http.StatusConflict, CodeStaleChain, "the membership changed; fetch the records and try again", err)
	case errors.Is(err, store.ErrConflict):
		return problem(http.StatusConflict, CodeConflict, "that conversation id is taken", err)
	case errors.Is(err, store.ErrIdempotency):
		return problem(http.StatusConflict, CodeIdempotency, "that client message id was used for another message", err)
	case errors.Is(err, store.ErrNotMember):
		return problem(http.StatusNotFound, CodeNotFound, "no such conversation", err)
	case errors.Is(err, store.ErrStaleState):
		return problem(http.StatusConflict, CodeStaleState, "the conversation's state changed meanwhile: fetch it and try again", err)
	}
	return err
}

func idStrings(ids []protocol.DeviceID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

type createRequest struct {
	Genesis B64 `json:"genesis"`
	Session B64 `json:"session"`
	State   B64 `json:"state,omitempty"` // the first state (§7.6), if any
}

func (s *Server) parseDistribution(enc []byte, chain *protocol.Chain, c *call) (*protocol.Distribution, error) {
	d, err := protocol.ParseDistribution(enc)
	if err != nil {
		return nil, badRequest("session: "+err.Error(), err)
	}
	if d.Creator != c.ref() {
		return nil, problem(http.StatusForbidden, CodeForbidden, "a session is signed by the device that posts it", nil)
	}
	if d.ChainSeq != chain.Seq || d.ChainHead != chain.Head {
		return nil, problem(http.StatusConflict, CodeStaleChain, "the session was made for another membership state; fetch the records and try again", nil)
	}
	if err := d.Verify(chain); err != nil {
		return nil, problem(http.StatusBadRequest, CodeBadSignature, err.Error(), err)
	}
	return d, nil
}

func (s *Server) createConversation(w http.ResponseWriter, r *http.Request, c *call) error {
	var req createRequest
	if err := decode(r, &req, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	rec, err := protocol.ParseRecord(req.Genesis)
	if err != nil {
		return badRequest("genesis: "+err.Error(), err)
	}
	if rec.Author != c.user() {
		return problem(http.StatusForbidden, CodeForbidden, "the genesis record is signed by its creator", nil)
	}
	chain, err := protocol.Genesis(rec)
	if err != nil {
		return problem(http.StatusBadRequest, CodeBadSignature, err.Error(), err)
	}
	if err := s.checkIdentities(r.Context(), chain.Members()); err != nil {
		return err
	}
	d, err := s.parseDistribution(req.Session, chain, c)
	if err != nil {
		return err
	}
	if d.Epoch != 1 {
		return badRequest("the first session is epoch 1", nil)
	}
	state, err := parseState(req.State, chain, c, 1)
	if err != nil {
		return err
	}
	// Last of the checks: it records first contacts (§16.3).
	if err := s.admit(r, c.user(), chain.Members()); err != nil {
		return err
	}
	now := s.now()
	nc := store.NewConversation{
		ID: chain.Conversation, Genesis: store.RecordRow{Seq: 0, Encoded: req.Genesis}, Head: chain.Head,
		Members: memberRows(chain), Session: sessionFromDistribution(d, req.Session, now), State: state, Now: now,
	}
	if err := s.store.CreateConversation(r.Context(), nc); err != nil {
		return storeErr(err)
	}
	s.notifyMembers(chain.Members())
	s.writeJSON(w, http.StatusCreated, map[string]any{"id": chain.Conversation, "epoch": 1})
	return nil
}

type conversationInfo struct {
	ID               protocol.ConversationID `json:"id"`
	CreatedAt        int64                   `json:"createdAt"`
	Epoch            uint64                  `json:"epoch"`
	RotationRequired bool                    `json:"rotationRequired"`
	RotationReason   string                  `json:"rotationReason,omitempty"`
	ChainSeq         uint64                  `json:"chainSeq"`
	ChainHead        B64                     `json:"chainHead"`
	LastSeq          uint64                  `json:"lastSeq"`
	Members          []memberInfo            `json:"members,omitempty"`
	// State is the latest conversation state record (§7.6), if any.
	State B64 `json:"state,omitempty"`
}

type memberInfo struct {
	User protocol.UserID `json:"user"`
	Role string          `json:"role"`
}

func convInfo(c store.Conversation) conversationInfo {
	ci := conversationInfo{ID: c.ID, CreatedAt: c.CreatedAt, Epoch: c.Epoch, RotationRequired: c.RotationRequired,
		RotationReason: c.RotationReason, ChainSeq: c.ChainSeq, ChainHead: c.ChainHead[:], LastSeq: c.LastSeq}
	if c.State != nil {
		ci.State = c.State.Encoded
	}
	return ci
}

func (s *Server) listConversations(w http.ResponseWriter, r *http.Request, c *call) error {
	convs, err := s.store.Conversations(r.Context(), c.user())
	if err != nil {
		return err
	}
	out := make([]conversationInfo, len(convs))
	for i, cv := range convs {
		out[i] = convInfo(cv)
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"conversations": out})
	return nil
}

func (s *Server) getConversation(w http.ResponseWriter, r *http.Request, c *call) error {
	cv, err := s.store.Conversation(r.Context(), c.conv)
	if err != nil {
		return err
	}
	ms, err := s.store.Members(r.Context(), c.conv)
	if err != nil {
		return err
	}
	info := convInfo(cv)
	for _, m := range ms {
		info.Members = append(info.Members, memberInfo{User: m.User, Role: m.Role.String()})
	}
	s.writeJSON(w, http.StatusOK, info)
	return nil
}

func uintQuery(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, badRequest(fmt.Sprintf("query parameter %s must be a non-negative integer", name), err)
	}
	return n, nil
}

func (s *Server) getRecords(w http.ResponseWriter, r *http.Request, c *call) error {
	from, err := uintQuery(r, "from", 0)
	if err != nil {
		return err
	}
	rows, err := s.store.Records(r.Context(), c.conv, from)
	if err != nil {
		return err
	}
	out := make([]B64, 0, len(rows))
	for _, row := range rows {
		if c.until != nil && row.Seq > *c.until {
			break // a former member sees the chain up to its removal
		}
		out = append(out, row.Encoded)
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"from": from, "records": out})
	return nil
}

type recordRequest struct {
	Record B64 `json:"record"`
}

func (s *Server) addMembers(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.changeMembership(w, r, c, func(rec *protocol.Record) error {
		switch rec.Op {
		case protocol.OpAdd, protocol.OpRole, protocol.OpRekey, protocol.OpRekeyCosigned:
			return nil
		}
		return badRequest("POST members takes an add, role, rekey or rekey-cosigned record", nil)
	})
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, c *call) error {
	target, err := protocol.ParseUserID(r.PathValue("user"))
	if err != nil {
		return problem(http.StatusNotFound, CodeNotFound, "no such member", err)
	}
	return s.changeMembership(w, r, c, func(rec *protocol.Record) error {
		switch {
		case rec.Op == protocol.OpLeave && target == c.user():
			return nil
		case rec.Op == protocol.OpRemove && len(rec.Users) == 1 && rec.Users[0] == target:
			return nil
		}
		return badRequest("DELETE members/{user} takes a remove record for that user, or a leave record for yourself", nil)
	})
}

func (s *Server) changeMembership(w http.ResponseWriter, r *http.Request, c *call, allowed func(*protocol.Record) error) error {
	var req recordRequest
	if err := decode(r, &req, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	rec, err := protocol.ParseRecord(req.Record)
	if err != nil {
		return badRequest("record: "+err.Error(), err)
	}
	if err := allowed(rec); err != nil {
		return err
	}
	if rec.Author != c.user() {
		return problem(http.StatusForbidden, CodeForbidden, "a record is signed by the member who posts it", nil)
	}
	chain, _, err := s.chain(r.Context(), c.conv)
	if err != nil {
		return err
	}
	next, err := chain.Apply(rec)
	if err != nil {
		if errors.Is(err, protocol.ErrBadChain) && rec.Seq != chain.Seq+1 {
			return problem(http.StatusConflict, CodeStaleChain, "the membership changed; fetch the records and try again", err)
		}
		return problem(http.StatusBadRequest, CodeBadSignature, err.Error(), err)
	}
	if rec.Op == protocol.OpAdd || rec.Op.IsRekey() {
		if err := s.checkIdentities(r.Context(), rec.Members); err != nil {
			return err
		}
	}
	if rec.Op == protocol.OpAdd {
		if err := s.admit(r, c.user(), rec.Members); err != nil {
			return err
		}
	}
	mc := store.MembershipChange{
		Conversation: c.conv, Record: store.RecordRow{Seq: rec.Seq, Encoded: req.Record},
		PrevSeq: chain.Seq, Head: next.Head, Members: memberRows(next), Now: s.now(),
	}
	if err := s.store.ChangeMembership(r.Context(), mc); err != nil {
		return storeErr(err)
	}
	s.notifyMembers(append(chain.Members(), next.Members()...))
	s.writeJSON(w, http.StatusOK, map[string]any{"chainSeq": next.Seq, "rotationRequired": true})
	return nil
}

type sessionRequest struct {
	Session B64 `json:"session"`
	State   B64 `json:"state,omitempty"` // the current state re-published under the new epoch (§7.6)
}

func (s *Server) postSession(w http.ResponseWriter, r *http.Request, c *call) error {
	var req sessionRequest
	if err := decode(r, &req, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	chain, st, err := s.chain(r.Context(), c.conv)
	if err != nil {
		return err
	}
	d, err := s.parseDistribution(req.Session, chain, c)
	if err != nil {
		return err
	}
	if d.Epoch != st.Epoch+1 {
		p := problem(http.StatusConflict, CodeEpochTaken, "the next epoch is "+strconv.FormatUint(st.Epoch+1, 10), nil)
		p.CurrentEpoch = &st.Epoch
		return p
	}
	state, err := parseState(req.State, chain, c, d.Epoch)
	if err != nil {
		return err
	}
	now := s.now()
	if err := s.store.AddSession(r.Context(), store.NewSession{Session: sessionFromDistribution(d, req.Session, now), State: state, Now: now}); err != nil {
		return storeErr(err)
	}
	s.notifyMembers(chain.Members())
	s.writeJSON(w, http.StatusCreated, map[string]any{"epoch": d.Epoch})
	return nil
}

type initialSession struct {
	Conversation          protocol.ConversationID `json:"conversation"`
	Epoch                 uint64                  `json:"epoch"`
	ChainSeq              uint64                  `json:"chainSeq"`
	Distribution          B64                     `json:"distribution"`
	PreKeyID              uint32                  `json:"preKeyId"`
	InitiatorEphemeralKey B64                     `json:"initiatorEphemeralKey"`
	Ciphertext            B64                     `json:"ciphertext"`
}

// initialSession returns the calling device's entry of one epoch, with the
// signed distribution it must verify before using it.
func (s *Server) initialSession(w http.ResponseWriter, r *http.Request, c *call) error {
	epoch, err := strconv.ParseUint(r.PathValue("epoch"), 10, 63)
	if err != nil || epoch == 0 {
		return problem(http.StatusNotFound, CodeNotFound, "no such epoch", err)
	}
	ss, err := s.store.SessionKeys(r.Context(), c.conv, c.device.ID, epoch)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, CodeNotFound, "this device has no key for that epoch", err)
	}
	if err != nil {
		return err
	}
	if len(ss.Keys) != 1 {
		return fmt.Errorf("session keys of %s epoch %d: %d keys for one device", c.conv, epoch, len(ss.Keys))
	}
	k := ss.Keys[0]
	s.writeJSON(w, http.StatusOK, initialSession{Conversation: c.conv, Epoch: epoch, ChainSeq: ss.ChainSeq, Distribution: ss.Encoded,
		PreKeyID: k.PreKeyID, InitiatorEphemeralKey: k.InitiatorEphemeral, Ciphertext: k.Ciphertext})
	return nil
}

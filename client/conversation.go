package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// ErrServerMisbehaved reports data from the server that a correct server
// never sends: a rolled-back or forked membership chain, a record or key
// without a valid signature, a member device signed by another identity.
// The client refuses it and wraps nothing for anyone it names.
var ErrServerMisbehaved = errors.New("the server sent data that does not verify")

// convState is what the device keeps per conversation (storage key conv/ID,
// records under chain/ID).
type convState struct {
	ID      protocol.ConversationID `json:"id"`
	Title   string                  `json:"title,omitempty"`
	Epoch   uint64                  `json:"epoch"`   // newest epoch this device holds
	LastSeq uint64                  `json:"lastSeq"` // last message seq processed
	Left    bool                    `json:"left,omitempty"`
	Unread  int                     `json:"unread,omitempty"`

	records [][]byte
	chain   *protocol.Chain
	epochs  map[uint64]*epochEntry
}

// epochEntry is one epoch's ratchet plus the member identities at the chain
// state it was made for (storage key epoch/CONV/N).
type epochEntry struct {
	ChainSeq   uint64                                   `json:"chainSeq"`
	Identities map[protocol.UserID]protocol.IdentityKey `json:"identities"`
	State      b64                                      `json:"state"`
	ep         *secret.Epoch
}

func convKey(id protocol.ConversationID) string  { return "conv/" + id.String() }
func chainKey(id protocol.ConversationID) string { return "chain/" + id.String() }
func epochKey(id protocol.ConversationID, n uint64) string {
	return "epoch/" + id.String() + "/" + strconv.FormatUint(n, 10)
}

// conv loads a conversation's state (nil, nil if unknown).
func (c *Client) conv(id protocol.ConversationID) (*convState, error) {
	if cs := c.convs[id]; cs != nil {
		return cs, nil
	}
	b, err := c.st.Get(convKey(id))
	if errors.Is(err, ErrNoValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cs := &convState{epochs: map[uint64]*epochEntry{}}
	if err := json.Unmarshal(b, cs); err != nil {
		return nil, fmt.Errorf("stored conversation %s: %w", id, err)
	}
	if b, err = c.st.Get(chainKey(id)); err == nil {
		var recs []b64
		if err := json.Unmarshal(b, &recs); err != nil {
			return nil, fmt.Errorf("stored chain of %s: %w", id, err)
		}
		parsed := make([]*protocol.Record, len(recs))
		for i, r := range recs {
			cs.records = append(cs.records, r)
			if parsed[i], err = protocol.ParseRecord(r); err != nil {
				return nil, fmt.Errorf("stored chain of %s: %w", id, err)
			}
		}
		if cs.chain, err = protocol.VerifyChain(parsed); err != nil {
			return nil, fmt.Errorf("stored chain of %s: %w", id, err)
		}
	} else if !errors.Is(err, ErrNoValue) {
		return nil, err
	}
	c.convs[id] = cs
	return cs, nil
}

func (c *Client) newConv(id protocol.ConversationID) *convState {
	cs := &convState{ID: id, epochs: map[uint64]*epochEntry{}}
	c.convs[id] = cs
	return cs
}

func (c *Client) saveConv(cs *convState) error {
	b, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	return c.st.Put(convKey(cs.ID), b)
}

func (c *Client) saveChain(cs *convState) error {
	recs := make([]b64, len(cs.records))
	for i, r := range cs.records {
		recs[i] = r
	}
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	return c.st.Put(chainKey(cs.ID), b)
}

func (c *Client) saveEpoch(cs *convState, n uint64, e *epochEntry) error {
	state, err := e.ep.MarshalBinary()
	if err != nil {
		return err
	}
	e.State = state
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return c.st.Put(epochKey(cs.ID, n), b)
}

// loadEpoch returns a stored epoch (nil if this device does not hold it).
func (c *Client) loadEpoch(cs *convState, n uint64) (*epochEntry, error) {
	if e := cs.epochs[n]; e != nil {
		return e, nil
	}
	if err := c.checkExpired(cs, n); err != nil {
		return nil, err
	}
	b, err := c.st.Get(epochKey(cs.ID, n))
	if errors.Is(err, ErrNoValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var e epochEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("stored epoch %d of %s: %w", n, cs.ID, err)
	}
	if e.ep, err = secret.UnmarshalEpoch(e.State); err != nil {
		return nil, fmt.Errorf("stored epoch %d of %s: %w", n, cs.ID, err)
	}
	cs.epochs[n] = &e
	return &e, nil
}

// syncChain fetches the records the device lacks, verifies them as an
// extension of the chain it holds and stores them. A rollback or fork is
// ErrServerMisbehaved.
func (c *Client) syncChain(ctx context.Context, cs *convState) error {
	from := uint64(0)
	if cs.chain != nil {
		from = cs.chain.Seq + 1
	}
	var ra struct {
		Records []b64 `json:"records"`
	}
	if err := c.api.do(ctx, "GET", fmt.Sprintf("/api/conversations/%s/records?from=%d", cs.ID, from), nil, &ra); err != nil {
		return err
	}
	if len(ra.Records) == 0 {
		if cs.chain == nil {
			return fmt.Errorf("%w: conversation %s has no membership records", ErrServerMisbehaved, cs.ID)
		}
		return nil
	}
	recs := make([]*protocol.Record, len(ra.Records))
	for i, r := range ra.Records {
		var err error
		if recs[i], err = protocol.ParseRecord(r); err != nil {
			return fmt.Errorf("%w: %v", ErrServerMisbehaved, err)
		}
	}
	if recs[0].Seq != from {
		return fmt.Errorf("%w: asked for records from %d, got %d", ErrServerMisbehaved, from, recs[0].Seq)
	}
	next, err := protocol.Update(cs.chain, recs)
	if err != nil {
		return fmt.Errorf("%w: membership of %s: %v", ErrServerMisbehaved, cs.ID, err)
	}
	if next.Conversation != cs.ID {
		return fmt.Errorf("%w: records of another conversation", ErrServerMisbehaved)
	}
	for i, rec := range recs {
		cs.records = append(cs.records, ra.Records[i])
		if rec.Op == protocol.OpRekey {
			c.stats.IdentityAlerts++
			c.warn(Warning{Kind: WarnIdentityChanged, User: rec.Author, Conversation: cs.ID})
		}
	}
	cs.chain = next
	_, member := next.Member(c.acct.User)
	cs.Left = !member
	if err := c.saveChain(cs); err != nil {
		return err
	}
	return c.saveConv(cs)
}

// chainAt returns the verified chain as it was after record seq.
func (cs *convState) chainAt(seq uint64) (*protocol.Chain, error) {
	if cs.chain == nil || seq > cs.chain.Seq {
		return nil, fmt.Errorf("membership record %d is not held", seq)
	}
	if seq == cs.chain.Seq {
		return cs.chain, nil
	}
	recs := make([]*protocol.Record, seq+1)
	for i := range recs {
		var err error
		if recs[i], err = protocol.ParseRecord(cs.records[i]); err != nil {
			return nil, err
		}
	}
	return protocol.VerifyChain(recs)
}

// userInfo is the server's description of a user.
type userInfo struct {
	ID          protocol.UserID       `json:"id"`
	Username    string                `json:"username"`
	IdentityKey *protocol.IdentityKey `json:"identityKey"`
	Devices     []struct {
		ID           protocol.DeviceID `json:"id"`
		Name         string            `json:"name"`
		CreatedAt    int64             `json:"createdAt"`
		SignedPreKey b64               `json:"signedPreKey"`
	} `json:"devices"`
}

// contact is what the device remembers of another account (storage key
// contact/ID): the identity key it first saw, so a change is noticed.
type contact struct {
	Username string               `json:"username"`
	Identity protocol.IdentityKey `json:"identity"`
}

// lookup fetches a user by name or id and checks its identity key against
// the one remembered (trust on first use; a change is a warning).
func (c *Client) lookup(ctx context.Context, nameOrID string) (*userInfo, error) {
	var u userInfo
	path := "/api/users?username=" + url.QueryEscape(nameOrID)
	if id, err := protocol.ParseUserID(nameOrID); err == nil {
		path = "/api/users/" + id.String()
	}
	if err := c.api.do(ctx, "GET", path, nil, &u); err != nil {
		if IsCode(err, "not_found") || IsCode(err, "bad_request") {
			return nil, fmt.Errorf("%w: %s", ErrUnknownUser, nameOrID)
		}
		return nil, err
	}
	if u.IdentityKey == nil {
		return nil, fmt.Errorf("%s has no device with keys yet", u.Username)
	}
	key := "contact/" + u.ID.String()
	if b, err := c.st.Get(key); err == nil {
		var old contact
		if json.Unmarshal(b, &old) == nil && !old.Identity.Equal(*u.IdentityKey) {
			c.stats.IdentityAlerts++
			c.warn(Warning{Kind: WarnIdentityChanged, User: u.ID, Username: u.Username})
		}
	}
	b, err := json.Marshal(contact{Username: u.Username, Identity: *u.IdentityKey})
	if err != nil {
		return nil, err
	}
	if err := c.st.Put(key, b); err != nil {
		return nil, err
	}
	return &u, nil
}

// usernameOf returns a remembered username for a user id ("" if unknown).
func (c *Client) usernameOf(ctx context.Context, id protocol.UserID) string {
	if id == c.acct.User {
		return c.acct.Username
	}
	if b, err := c.st.Get("contact/" + id.String()); err == nil {
		var ct contact
		if json.Unmarshal(b, &ct) == nil {
			return ct.Username
		}
	}
	if u, err := c.lookup(ctx, id.String()); err == nil {
		return u.Username
	}
	return id.String()
}

// CreateConversation creates a conversation of this account (admin) and
// the named users (usernames or user ids), with its first epoch. A title,
// if given, is sent as the first message, encrypted.
func (c *Client) CreateConversation(ctx context.Context, title string, users ...string) (protocol.ConversationID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return protocol.ConversationID{}, err
	}
	rec := &protocol.Record{Op: protocol.OpCreate, Conversation: protocol.NewConversationID(), Time: c.now().UnixMilli(), Author: c.acct.User}
	rec.Members = []protocol.Member{{User: c.acct.User, Identity: c.id.Public(), Role: protocol.RoleAdmin}}
	for _, name := range users {
		u, err := c.lookup(ctx, name)
		if err != nil {
			return protocol.ConversationID{}, err
		}
		if slices.ContainsFunc(rec.Members, func(m protocol.Member) bool { return m.User == u.ID }) {
			continue
		}
		rec.Members = append(rec.Members, protocol.Member{User: u.ID, Identity: *u.IdentityKey, Role: protocol.RoleMember})
	}
	secret.SignRecord(c.id, rec)
	chain, err := protocol.Genesis(rec)
	if err != nil {
		return protocol.ConversationID{}, err
	}
	var dist *protocol.Distribution
	var entry *epochEntry
	for try := 0; ; try++ {
		dist, entry, err = c.makeEpoch(ctx, chain, 1)
		if err != nil {
			return protocol.ConversationID{}, err
		}
		err = c.api.do(ctx, "POST", "/api/conversations", map[string]b64{"genesis": rec.Marshal(), "session": dist.Marshal()}, nil)
		// A device added between the claim and the write: claim again.
		if IsCode(err, "session_coverage") && try < 3 {
			continue
		}
		if err != nil {
			return protocol.ConversationID{}, err
		}
		break
	}
	cs := c.newConv(chain.Conversation)
	cs.records, cs.chain, cs.Epoch = [][]byte{rec.Marshal()}, chain, 1
	cs.epochs[1] = entry
	if err := c.saveChain(cs); err != nil {
		return cs.ID, err
	}
	if err := c.saveEpoch(cs, 1, entry); err != nil {
		return cs.ID, err
	}
	if err := c.saveConv(cs); err != nil {
		return cs.ID, err
	}
	if title != "" {
		if _, err := c.send(ctx, cs, "", Content{Type: ContentTitle, Text: title}); err != nil {
			return cs.ID, err
		}
	}
	return cs.ID, nil
}

type claimAnswer struct {
	Bundles []struct {
		User   protocol.UserID   `json:"user"`
		Device protocol.DeviceID `json:"device"`
		Bundle b64               `json:"bundle"`
	} `json:"bundles"`
}

// makeEpoch claims a bundle for every device of every member of chain,
// verifies each against the member's identity key in the chain, and seals
// a new epoch secret to them. The returned entry is this device's ratchet.
func (c *Client) makeEpoch(ctx context.Context, chain *protocol.Chain, n uint64) (*protocol.Distribution, *epochEntry, error) {
	members := chain.Members()
	users := make([]protocol.UserID, len(members))
	idents := map[protocol.UserID]protocol.IdentityKey{}
	for i, m := range members {
		users[i] = m.User
		idents[m.User] = m.Identity
	}
	var ca claimAnswer
	if err := c.api.do(ctx, "POST", "/api/keys/claim", map[string]any{"users": users}, &ca); err != nil {
		return nil, nil, err
	}
	var bundles []*protocol.Bundle
	seen := map[protocol.DeviceRef]bool{}
	for _, cb := range ca.Bundles {
		b, err := protocol.ParseBundle(cb.Bundle)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: bundle: %v", ErrServerMisbehaved, err)
		}
		want, ok := idents[b.User]
		ref := protocol.DeviceRef{User: b.User, Device: b.Device}
		if !ok || b.User != cb.User || b.Device != cb.Device || seen[ref] {
			return nil, nil, fmt.Errorf("%w: a bundle for a device that was not asked for", ErrServerMisbehaved)
		}
		// A device whose pre-keys another identity signed is not a device
		// of this member: wrap nothing for it, and say so.
		if !b.Identity.Equal(want) {
			return nil, nil, fmt.Errorf("%w: device %s of %s is signed by another identity than the membership names", ErrServerMisbehaved, b.Device, b.User)
		}
		if err := b.Verify(); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrServerMisbehaved, err)
		}
		seen[ref] = true
		bundles = append(bundles, b)
	}
	if !seen[c.ref()] {
		return nil, nil, fmt.Errorf("%w: this device is missing from its own account's devices", ErrServerMisbehaved)
	}
	dist, s, err := secret.NewDistribution(c.id, secret.EpochRequest{Chain: chain, Epoch: n, Creator: c.ref(), Time: c.now().UnixMilli(), Bundles: bundles})
	if err != nil {
		return nil, nil, err
	}
	ep, err := secret.NewEpoch(s, chain.Conversation, n, c.ref(), dist.Devices())
	clear(s[:])
	if err != nil {
		return nil, nil, err
	}
	return dist, &epochEntry{ChainSeq: chain.Seq, Identities: idents, ep: ep}, nil
}

// openEpoch fetches this device's entry of epoch n, verifies the signed
// distribution against the membership chain it names and opens it: the one
// path by which a device gets an epoch it did not make.
func (c *Client) openEpoch(ctx context.Context, cs *convState, n uint64) (*epochEntry, error) {
	if e, err := c.loadEpoch(cs, n); e != nil || err != nil {
		return e, err
	}
	var ia struct {
		Epoch                 uint64 `json:"epoch"`
		Distribution          b64    `json:"distribution"`
		PreKeyID              uint32 `json:"preKeyId"`
		InitiatorEphemeralKey b64    `json:"initiatorEphemeralKey"`
		Ciphertext            b64    `json:"ciphertext"`
	}
	if err := c.api.do(ctx, "GET", fmt.Sprintf("/api/conversations/%s/sessions/%d/initial-session", cs.ID, n), nil, &ia); err != nil {
		if IsCode(err, "not_found") {
			return nil, errNoSession
		}
		return nil, err
	}
	d, err := protocol.ParseDistribution(ia.Distribution)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrServerMisbehaved, err)
	}
	entry := d.Entry(c.ref())
	if d.Conversation != cs.ID || d.Epoch != n || entry == nil || entry.PreKeyID != ia.PreKeyID ||
		string(entry.Enc[:]) != string(ia.InitiatorEphemeralKey) || string(entry.Ciphertext[:]) != string(ia.Ciphertext) {
		return nil, fmt.Errorf("%w: the initial session does not match its distribution", ErrServerMisbehaved)
	}
	if cs.chain == nil || d.ChainSeq > cs.chain.Seq {
		if err := c.syncChain(ctx, cs); err != nil {
			return nil, err
		}
	}
	at, err := cs.chainAt(d.ChainSeq)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrServerMisbehaved, err)
	}
	s, err := secret.OpenDistribution(secret.OpenRequest{Distribution: d, Chain: at, Self: c.ref(), PreKey: c.preKey})
	if err != nil {
		return nil, fmt.Errorf("%w: epoch %d: %v", ErrServerMisbehaved, n, err)
	}
	ep, err := secret.NewEpoch(s, cs.ID, n, c.ref(), d.Devices())
	clear(s[:])
	if err != nil {
		return nil, err
	}
	idents := map[protocol.UserID]protocol.IdentityKey{}
	for _, m := range at.Members() {
		idents[m.User] = m.Identity
	}
	e := &epochEntry{ChainSeq: d.ChainSeq, Identities: idents, ep: ep}
	cs.epochs[n] = e
	if err := c.saveEpoch(cs, n, e); err != nil {
		return nil, err
	}
	// A one-time pre-key is used once: forget its private half now that the
	// epoch's chains are stored (forward secrecy).
	if pk := c.prekeys[entry.PreKeyID]; pk != nil && pk.Kind == protocol.OneTimePreKey {
		if err := c.dropPreKey(entry.PreKeyID); err != nil {
			return nil, err
		}
	}
	if n > cs.Epoch {
		cs.Epoch = n
		if err := c.saveConv(cs); err != nil {
			return nil, err
		}
	}
	return e, nil
}

var errNoSession = errors.New("no session for this device in that epoch")

type convAnswer struct {
	ID               protocol.ConversationID `json:"id"`
	Epoch            uint64                  `json:"epoch"`
	RotationRequired bool                    `json:"rotationRequired"`
	ChainSeq         uint64                  `json:"chainSeq"`
	LastSeq          uint64                  `json:"lastSeq"`
}

// current brings the conversation to the server's current epoch: it
// rotates when rotation is required (adopting a concurrent winner's epoch)
// and returns the epoch to send in.
func (c *Client) current(ctx context.Context, cs *convState) (*epochEntry, uint64, error) {
	for try := 0; try < 5; try++ {
		var ca convAnswer
		if err := c.api.do(ctx, "GET", "/api/conversations/"+cs.ID.String(), nil, &ca); err != nil {
			if IsCode(err, "not_found") {
				cs.Left = true
				c.saveConv(cs)
				return nil, 0, fmt.Errorf("you are not a member of conversation %s", cs.ID)
			}
			return nil, 0, err
		}
		if cs.chain != nil && ca.ChainSeq < cs.chain.Seq {
			return nil, 0, fmt.Errorf("%w: the server says the membership of %s is at record %d, this device holds record %d (rolled back)",
				ErrServerMisbehaved, cs.ID, ca.ChainSeq, cs.chain.Seq)
		}
		if ca.ChainSeq != chainSeqOf(cs) {
			if err := c.syncChain(ctx, cs); err != nil {
				return nil, 0, err
			}
			if cs.chain.Seq < ca.ChainSeq { // more is a change that landed since
				return nil, 0, fmt.Errorf("%w: the server says the membership of %s is at record %d but sent records up to %d",
					ErrServerMisbehaved, cs.ID, ca.ChainSeq, cs.chain.Seq)
			}
		}
		if !ca.RotationRequired {
			e, err := c.openEpoch(ctx, cs, ca.Epoch)
			return e, ca.Epoch, err
		}
		if err := c.rotate(ctx, cs, ca.Epoch+1); err != nil && !IsCode(err, "epoch_taken") && !IsCode(err, "stale_chain") && !IsCode(err, "session_coverage") {
			return nil, 0, err
		}
	}
	return nil, 0, errors.New("the conversation's epoch kept changing; try again")
}

func chainSeqOf(cs *convState) uint64 {
	if cs.chain == nil {
		return ^uint64(0)
	}
	return cs.chain.Seq
}

// rotate creates epoch n for the current members. A 409 epoch_taken means
// another member won the race: the caller adopts the current epoch.
func (c *Client) rotate(ctx context.Context, cs *convState, n uint64) error {
	if err := c.syncChain(ctx, cs); err != nil {
		return err
	}
	dist, entry, err := c.makeEpoch(ctx, cs.chain, n)
	if err != nil {
		return err
	}
	if err := c.api.do(ctx, "POST", "/api/conversations/"+cs.ID.String()+"/sessions", map[string]b64{"session": dist.Marshal()}, nil); err != nil {
		if IsCode(err, "epoch_taken") {
			c.stats.AdoptedEpochs++
		}
		return err
	}
	c.stats.Rotations++
	cs.epochs[n] = entry
	if err := c.saveEpoch(cs, n, entry); err != nil {
		return err
	}
	cs.Epoch = n
	return c.saveConv(cs)
}

// change signs a membership record of op on top of the current chain and
// posts it; a concurrent change (stale_chain) is retried on the new chain.
func (c *Client) change(ctx context.Context, conv protocol.ConversationID, op protocol.Op, members []protocol.Member, users []protocol.UserID) error {
	if err := c.ready(); err != nil {
		return err
	}
	cs, err := c.conv(conv)
	if err != nil {
		return err
	}
	if cs == nil {
		cs = c.newConv(conv)
	}
	for try := 0; ; try++ {
		if err := c.syncChain(ctx, cs); err != nil {
			return err
		}
		rec := &protocol.Record{Op: op, Conversation: conv, Seq: cs.chain.Seq + 1, Prev: cs.chain.Head, Time: c.now().UnixMilli(),
			Author: c.acct.User, Members: members, Users: users}
		secret.SignRecord(c.id, rec)
		if _, err := cs.chain.Apply(rec); err != nil {
			return err // not allowed: say why before the server does
		}
		body := map[string]b64{"record": rec.Marshal()}
		path := "/api/conversations/" + conv.String() + "/members"
		method := "POST"
		switch op {
		case protocol.OpRemove:
			method, path = "DELETE", path+"/"+users[0].String()
		case protocol.OpLeave:
			method, path = "DELETE", path+"/"+c.acct.User.String()
		}
		err := c.api.do(ctx, method, path, body, nil)
		if IsCode(err, "stale_chain") && try < 3 {
			continue
		}
		if err != nil {
			return err
		}
		if op == protocol.OpLeave {
			cs.Left = true
			return c.saveConv(cs)
		}
		return c.syncChain(ctx, cs)
	}
}

// AddMembers adds users (names or ids) to a conversation; this account
// must be an admin of it. The next message goes in a new epoch.
func (c *Client) AddMembers(ctx context.Context, conv protocol.ConversationID, users ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ms []protocol.Member
	for _, name := range users {
		u, err := c.lookup(ctx, name)
		if err != nil {
			return err
		}
		ms = append(ms, protocol.Member{User: u.ID, Identity: *u.IdentityKey, Role: protocol.RoleMember})
	}
	return c.change(ctx, conv, protocol.OpAdd, ms, nil)
}

// RemoveMembers removes users (names or ids) from a conversation, one
// record each; this account must be an admin of it.
func (c *Client) RemoveMembers(ctx context.Context, conv protocol.ConversationID, users ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range users {
		id, err := protocol.ParseUserID(name)
		if err != nil {
			u, err := c.lookup(ctx, name)
			if err != nil {
				return err
			}
			id = u.ID
		}
		if err := c.change(ctx, conv, protocol.OpRemove, nil, []protocol.UserID{id}); err != nil {
			return err
		}
	}
	return nil
}

// Leave leaves a conversation.
func (c *Client) Leave(ctx context.Context, conv protocol.ConversationID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.change(ctx, conv, protocol.OpLeave, nil, nil)
}

// rekeyConversations announces a new identity key in every conversation the
// account is in, after ResetIdentity.
func (c *Client) rekeyConversations(ctx context.Context) error {
	var list struct {
		Conversations []convAnswer `json:"conversations"`
	}
	if err := c.api.do(ctx, "GET", "/api/conversations", nil, &list); err != nil {
		return err
	}
	for _, cv := range list.Conversations {
		m := protocol.Member{User: c.acct.User, Identity: c.id.Public(), Role: protocol.RoleMember}
		if err := c.change(ctx, cv.ID, protocol.OpRekey, []protocol.Member{m}, nil); err != nil {
			return fmt.Errorf("announce the new identity in %s: %w", cv.ID, err)
		}
	}
	return nil
}

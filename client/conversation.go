package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

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
	ID protocol.ConversationID `json:"id"`
	// Title is the last title message's, in a conversation from before
	// states (read for compatibility); State is the verified state (§7.6).
	Title   string     `json:"title,omitempty"`
	State   *stateView `json:"state,omitempty"`
	Epoch   uint64     `json:"epoch"`   // newest epoch this device holds
	LastSeq uint64     `json:"lastSeq"` // last message seq processed
	Left    bool       `json:"left,omitempty"`
	// Request: a message request (requests.go), decided when this device
	// first verified the chain.
	Request bool `json:"request,omitempty"`
	// Undecided: a request only because what the approving device of
	// this device's link handed over was not imported yet when it was
	// classified; the import decides it (applyRequestState).
	Undecided bool   `json:"undecided,omitempty"`
	Unread    int    `json:"unread,omitempty"`
	ReadSeq   uint64 `json:"readSeq,omitempty"` // messages up to it are read (MarkReadThrough)
	// The newest messages this account acknowledged with a delivered and
	// a read receipt, from any of its devices (receipts.go).
	DeliveredAck uint64 `json:"deliveredAck,omitempty"`
	ReadAck      uint64 `json:"readAck,omitempty"`
	// The epoch rules of §7.4 and §7.5: see epochrules.go.
	StreamSeq uint64               `json:"streamSeq,omitempty"` // newest record whose event the stream delivered
	Spans     map[uint64]epochSpan `json:"spans,omitempty"`     // per record, the epochs held for it
	Refused   []refusal            `json:"refused,omitempty"`   // distributions refused as stale, newest last
	// NextExpiry is the earliest expiry of the messages stored (Unix ms,
	// 0: none): see disappear.go.
	NextExpiry int64 `json:"nextExpiry,omitempty"`
	// Gone holds the refs of the messages that disappeared on this
	// device, newest last, at most maxGone: disappear.go.
	Gone []string `json:"gone,omitempty"`

	records [][]byte
	chain   *protocol.Chain
	epochs  map[uint64]*epochEntry
	alarmed map[string]bool // alarms raised by this process, once each
}

// epochEntry is one epoch's ratchet plus the member identities at the chain
// state it was made for (storage key epoch/CONV/N).
type epochEntry struct {
	ChainSeq   uint64                                   `json:"chainSeq"`
	Identities map[protocol.UserID]protocol.IdentityKey `json:"identities"`
	State      b64                                      `json:"state"`
	// Covered: this device made the epoch, or checked that its recipients
	// are exactly the member devices of its record (§7.4 step 6); only
	// then does it send in it.
	Covered bool `json:"covered,omitempty"`
	// StateKey is the epoch's key for conversation state (§7.6), derived
	// with the chains before the epoch secret is erased; absent in epochs
	// opened before states existed.
	StateKey b64 `json:"stateKey,omitempty"`
	ep       *secret.Epoch
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
	cs.hold(n, e.ChainSeq)
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
			return c.chainRefused(cs.ID, fmt.Errorf("%w: %v", ErrServerMisbehaved, err))
		}
	}
	if recs[0].Seq != from {
		return fmt.Errorf("%w: asked for records from %d, got %d", ErrServerMisbehaved, from, recs[0].Seq)
	}
	next, err := protocol.Update(cs.chain, recs)
	if err != nil {
		return c.chainRefused(cs.ID, fmt.Errorf("%w: membership of %s: %w", ErrServerMisbehaved, cs.ID, err))
	}
	if next.Conversation != cs.ID {
		return fmt.Errorf("%w: records of another conversation", ErrServerMisbehaved)
	}
	prev, held := cs.chain, cs.records
	for i := range recs {
		cs.records = append(cs.records, ra.Records[i])
	}
	cs.chain = next
	_, member := next.Member(c.acct.User)
	cs.Left = !member
	// The request decision is made when the verified chain first names
	// this account (§16.1): when no record verified before made it a
	// member, even if the device held a prefix of the chain without it.
	if member {
		if _, wasMember := c.adderIn(held); !wasMember {
			if err := c.classify(cs); err != nil {
				return err
			}
		}
	}
	if err := c.saveChain(cs); err != nil {
		return err
	}
	if err := c.saveConv(cs); err != nil {
		return err
	}
	if err := c.chainLines(ctx, cs, recs); err != nil {
		return err
	}
	// The chain verifies; whether its identity keys are the pinned ones is
	// the trust store's question (protocol.md "Client trust state"): a
	// change is recorded and raised here, and refused where it is used.
	return c.meetChain(cs, prev, recs)
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
		LastResort   b64               `json:"lastResort"`
		NameRecord   b64               `json:"nameRecord"` // §12.5, for the account's own devices
	} `json:"devices"`
}

// contact is what older versions kept of another account (storage key
// contact/ID); the trust store's pins replace it (trust.go migratePins).
type contact struct {
	Username string               `json:"username"`
	Identity protocol.IdentityKey `json:"identity"`
}

// lookup fetches a user by name or id and meets its identity key (trust
// store: pinned on first use, a change raised and recorded). The answer is
// the server's; callers that vouch for a key use memberKey.
func (c *Client) lookup(ctx context.Context, nameOrID string) (*userInfo, error) {
	var u userInfo
	path := "/api/users?username=" + queryEscape(nameOrID)
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
	if err := c.meet(u.ID, u.Username, *u.IdentityKey, protocol.ConversationID{}, metElsewhere); err != nil && !errors.Is(err, ErrIdentityNotAccepted) {
		return nil, err
	}
	return &u, nil
}

// memberKey resolves a user to name in a membership record this device
// signs: the key must be the pinned one (protocol.md "Client trust state",
// vouching). A lookup answer that differs from the pin is an identity
// change, recorded and raised by lookup and held as pending: the record is
// refused until the user accepts the new key.
func (c *Client) memberKey(ctx context.Context, name string) (protocol.UserID, protocol.IdentityKey, error) {
	u, err := c.lookup(ctx, name)
	if err != nil {
		return protocol.UserID{}, protocol.IdentityKey{}, err
	}
	if u.ID == c.acct.User {
		return u.ID, c.id.Public(), nil
	}
	p := c.pins[u.ID]
	if p == nil {
		return protocol.UserID{}, protocol.IdentityKey{}, fmt.Errorf("%s could not be pinned", name)
	}
	if p.Pending != nil || !p.Identity.Equal(*u.IdentityKey) {
		return protocol.UserID{}, protocol.IdentityKey{}, &IdentityError{User: u.ID, Username: p.Username, Pending: p.Pending != nil}
	}
	return u.ID, p.Identity, nil
}

// displayName returns a username for a user id to show (a timeline line, a
// request's sender, a typing notice): the pin's, else the server's answer,
// which is only shown: unlike lookup, it meets no key, so drawing a line
// never changes what this device trusts.
func (c *Client) displayName(ctx context.Context, id protocol.UserID) string {
	if name := c.knownName(id); name != "" {
		return name
	}
	var u userInfo
	if err := c.api.do(ctx, "GET", "/api/users/"+id.String(), nil, &u); err == nil && u.Username != "" {
		return u.Username
	}
	return id.String()
}

// knownName returns the username this device already holds for a user
// id: its own account's, or its pin's ("" if neither).
func (c *Client) knownName(id protocol.UserID) string {
	if id == c.acct.User {
		return c.acct.Username
	}
	if p := c.pins[id]; p != nil {
		return p.Username
	}
	return ""
}

// usernameOf returns a username for a user id: the one this device holds,
// else the one lookup finds (meeting its key), else the id itself.
func (c *Client) usernameOf(ctx context.Context, id protocol.UserID) string {
	if name := c.knownName(id); name != "" {
		return name
	}
	if u, err := c.lookup(ctx, id.String()); err == nil {
		return u.Username
	}
	return id.String()
}

// CreateConversation creates a conversation of this account (admin) and
// the named users (usernames or user ids), with its first epoch. A title,
// if given, is the conversation's first state (§7.6), encrypted under
// that epoch.
func (c *Client) CreateConversation(ctx context.Context, title string, users ...string) (protocol.ConversationID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return protocol.ConversationID{}, err
	}
	if len(title) > protocol.MaxTitle || !utf8.ValidString(title) {
		return protocol.ConversationID{}, fmt.Errorf("a title is at most %d bytes of UTF-8 text", protocol.MaxTitle)
	}
	rec := &protocol.Record{Op: protocol.OpCreate, Conversation: protocol.NewConversationID(), Time: c.now().UnixMilli(), Author: c.acct.User}
	rec.Members = []protocol.Member{{User: c.acct.User, Identity: c.id.Public(), Role: protocol.RoleAdmin}}
	for _, name := range users {
		id, key, err := c.memberKey(ctx, name)
		if err != nil {
			return protocol.ConversationID{}, err
		}
		if slices.ContainsFunc(rec.Members, func(m protocol.Member) bool { return m.User == id }) {
			continue
		}
		rec.Members = append(rec.Members, protocol.Member{User: id, Identity: key, Role: protocol.RoleMember})
	}
	secret.SignRecord(c.id, rec)
	chain, err := protocol.Genesis(rec)
	if err != nil {
		return protocol.ConversationID{}, err
	}
	var dist *protocol.Distribution
	var entry *epochEntry
	var state *stateView
	for try := 0; ; try++ {
		dist, entry, err = c.makeEpoch(ctx, chain, 1)
		if err != nil {
			return protocol.ConversationID{}, err
		}
		body := map[string]b64{"genesis": rec.Marshal(), "session": dist.Marshal()}
		if title != "" {
			cs := &convState{ID: chain.Conversation}
			enc, err := c.sealState(cs, 1, entry, 1, protocol.StateContent{Title: title})
			if err != nil {
				return protocol.ConversationID{}, err
			}
			body["state"] = enc
			state = &stateView{Version: 1, Epoch: 1, Title: title, Signer: c.acct.User, Time: c.now().UnixMilli(), Ref: stateRef(enc)}
		}
		err = c.api.do(ctx, "POST", "/api/conversations", body, nil)
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
	cs.records, cs.chain, cs.Epoch, cs.State = [][]byte{rec.Marshal()}, chain, 1, state
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
	return cs.ID, nil
}

// maxClaimUsers is the most users one claim may name (the server refuses
// more with 400 too_many_users).
const maxClaimUsers = 200

type claimAnswer struct {
	Bundles []struct {
		User   protocol.UserID   `json:"user"`
		Device protocol.DeviceID `json:"device"`
		Bundle b64               `json:"bundle"`
	} `json:"bundles"`
	DeviceLists []struct {
		User protocol.UserID `json:"user"`
		List b64             `json:"list"`
	} `json:"deviceLists"`
}

// makeEpoch claims a bundle for every device of every member of chain,
// verifies each against the member's identity key in the chain, and seals
// a new epoch secret to them. The returned entry is this device's ratchet.
func (c *Client) makeEpoch(ctx context.Context, chain *protocol.Chain, n uint64) (*protocol.Distribution, *epochEntry, error) {
	// Seal only to the pinned, accepted keys (protocol.md "Client trust
	// state"); the bundles are then checked against the chain's keys.
	if err := c.trustedChain(chain.Conversation, chain); err != nil {
		return nil, nil, err
	}
	members := chain.Members()
	users := make([]protocol.UserID, len(members))
	idents := map[protocol.UserID]protocol.IdentityKey{}
	for i, m := range members {
		users[i] = m.User
		idents[m.User] = m.Identity
	}
	if err := c.ensureDeviceList(ctx); err != nil { // this device must be its account's (§12.3)
		return nil, nil, err
	}
	// A claim names at most maxClaimUsers users (docs/api.md): a large
	// conversation claims in parts, checked together below.
	var ca claimAnswer
	for part := range slices.Chunk(users, maxClaimUsers) {
		var pa claimAnswer
		if err := c.api.do(ctx, "POST", "/api/keys/claim", map[string]any{"users": part}, &pa); err != nil {
			return nil, nil, err
		}
		ca.Bundles = append(ca.Bundles, pa.Bundles...)
		ca.DeviceLists = append(ca.DeviceLists, pa.DeviceLists...)
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
	// Seal only to the devices each member's signed list names (§12).
	if err := c.checkClaim(&ca, idents, chain.Conversation); err != nil {
		return nil, nil, err
	}
	if !seen[c.ref()] {
		return nil, nil, fmt.Errorf("%w: this device is missing from its own account's devices", ErrServerMisbehaved)
	}
	dist, s, err := secret.NewDistribution(c.id, secret.EpochRequest{Chain: chain, Epoch: n, Creator: c.ref(), Time: c.now().UnixMilli(), Bundles: bundles})
	if err != nil {
		return nil, nil, err
	}
	ep, err := secret.NewEpoch(s, chain.Conversation, n, c.ref(), dist.Devices())
	sk, kerr := secret.DeriveStateKey(s, chain.Conversation, n)
	clear(s[:])
	if err = errors.Join(err, kerr); err != nil {
		return nil, nil, err
	}
	return dist, &epochEntry{ChainSeq: chain.Seq, Identities: idents, StateKey: sk[:], ep: ep}, nil
}

// openEpoch returns epoch n for reading a message in it: the one path by
// which a device gets an epoch it did not make. An epoch it does not hold
// is fetched, checked against the epochs it holds and the records its
// event stream delivered (§7.4 step 9), verified against the membership
// chain it names and opened. It is never an epoch to send in: see current.
func (c *Client) openEpoch(ctx context.Context, cs *convState, n uint64) (*epochEntry, error) {
	if e, err := c.loadEpoch(cs, n); e != nil || err != nil {
		return e, err
	}
	d, entry, err := c.fetchDistribution(ctx, cs, n)
	if err != nil {
		return nil, err
	}
	if cs.refused(d) {
		return nil, fmt.Errorf("%w: %w: epoch %d of %s was refused", ErrServerMisbehaved, errStale, n, cs.ID)
	}
	if err := c.checkOrder(cs, d); err != nil {
		return nil, err
	}
	return c.open(ctx, cs, d, entry, nil)
}

// fetchDistribution fetches this device's entry of epoch n with the signed
// distribution it belongs to, and checks that they match.
func (c *Client) fetchDistribution(ctx context.Context, cs *convState, n uint64) (*protocol.Distribution, *protocol.Recipient, error) {
	var ia struct {
		Epoch                 uint64 `json:"epoch"`
		Distribution          b64    `json:"distribution"`
		PreKeyID              uint32 `json:"preKeyId"`
		InitiatorEphemeralKey b64    `json:"initiatorEphemeralKey"`
		Ciphertext            b64    `json:"ciphertext"`
	}
	if err := c.api.do(ctx, "GET", fmt.Sprintf("/api/conversations/%s/sessions/%d/initial-session", cs.ID, n), nil, &ia); err != nil {
		if IsCode(err, "not_found") {
			return nil, nil, errNoSession
		}
		return nil, nil, err
	}
	d, err := protocol.ParseDistribution(ia.Distribution)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrServerMisbehaved, err)
	}
	entry := d.Entry(c.ref())
	if d.Conversation != cs.ID || d.Epoch != n || entry == nil || entry.PreKeyID != ia.PreKeyID ||
		string(entry.Enc[:]) != string(ia.InitiatorEphemeralKey) || string(entry.Ciphertext[:]) != string(ia.Ciphertext) {
		return nil, nil, fmt.Errorf("%w: the initial session does not match its distribution", ErrServerMisbehaved)
	}
	return d, entry, nil
}

// open verifies a distribution against the membership chain it names
// (§7.4; with devices, also that it covers exactly them), opens this
// device's entry and stores the epoch.
func (c *Client) open(ctx context.Context, cs *convState, d *protocol.Distribution, entry *protocol.Recipient, devices []protocol.DeviceRef) (*epochEntry, error) {
	n := d.Epoch
	if cs.chain == nil || d.ChainSeq > cs.chain.Seq {
		if err := c.syncChain(ctx, cs); err != nil {
			return nil, err
		}
	}
	at, err := cs.chainAt(d.ChainSeq)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrServerMisbehaved, err)
	}
	if m, ok := at.Member(d.Creator.User); ok {
		if err := c.refuseUnaccepted(m.User, m.Identity, cs.ID, fmt.Sprintf("epoch %d", n)); err != nil {
			return nil, err
		}
	}
	s, err := secret.OpenDistribution(secret.OpenRequest{Distribution: d, Chain: at, Devices: devices, Self: c.ref(), PreKey: c.preKey})
	if err != nil {
		if errors.Is(err, protocol.ErrBadSignature) {
			if aerr := c.alarmOnce(cs, fmt.Sprintf("sig/%d", n), Alarm{Kind: AlarmBadSignature,
				Detail: fmt.Sprintf("The distribution of epoch %d does not carry a valid signature of its creator.", n)}); aerr != nil {
				return nil, aerr
			}
		}
		return nil, fmt.Errorf("%w: epoch %d: %v", ErrServerMisbehaved, n, err)
	}
	ep, err := secret.NewEpoch(s, cs.ID, n, c.ref(), d.Devices())
	sk, kerr := secret.DeriveStateKey(s, cs.ID, n)
	clear(s[:])
	if err = errors.Join(err, kerr); err != nil {
		return nil, err
	}
	idents := map[protocol.UserID]protocol.IdentityKey{}
	for _, m := range at.Members() {
		idents[m.User] = m.Identity
	}
	e := &epochEntry{ChainSeq: d.ChainSeq, Identities: idents, Covered: devices != nil, StateKey: sk[:], ep: ep}
	cs.epochs[n] = e
	cs.hold(n, d.ChainSeq)
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
	}
	if err := c.saveConv(cs); err != nil {
		return nil, err
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
	State            b64                     `json:"state"` // the latest state record (§7.6), if any
}

// current returns the epoch to send in (§7.5): one made for the head of
// the chain this device has verified, covering exactly the member devices,
// numbered no lower than any epoch it holds. It follows the server where
// the server is right: it rotates when the server requires it (adopting a
// concurrent winner's epoch) and opens the epoch the server names. Where
// the server names an epoch that breaks these rules, it raises an alarm
// and makes the next epoch itself.
func (c *Client) current(ctx context.Context, cs *convState) (*epochEntry, uint64, error) {
	var refused error
	for try := 0; try < 5; try++ {
		ca, err := c.conversationState(ctx, cs)
		if err != nil {
			return nil, 0, err
		}
		if ca.ChainSeq != chainSeqOf(cs) {
			if err := c.syncChain(ctx, cs); err != nil {
				return nil, 0, err
			}
			if cs.chain.Seq < ca.ChainSeq { // more is a change that landed since
				return nil, 0, fmt.Errorf("%w: the server says the membership of %s is at record %d but sent records up to %d",
					ErrServerMisbehaved, cs.ID, ca.ChainSeq, cs.chain.Seq)
			}
			if cs.chain.Seq > ca.ChainSeq {
				continue // the answer predates a change: ask again
			}
		}
		if err := c.acceptState(ctx, cs, ca.State); err != nil {
			return nil, 0, err
		}
		if !ca.RotationRequired {
			e, n, err := c.sendable(ctx, cs, ca)
			var cov *coverageError
			switch {
			case err == nil:
				return e, n, c.catchUpState(ctx, cs, ca, n, e)
			case errors.As(err, &cov):
				// A device added or removed since the answer is a race,
				// not a lie: ask again before raising the alarm.
				again, aerr := c.conversationState(ctx, cs)
				if aerr != nil {
					return nil, 0, aerr
				}
				if again.Epoch != ca.Epoch || again.RotationRequired || again.ChainSeq != ca.ChainSeq {
					continue
				}
				if aerr := c.alarmOnce(cs, fmt.Sprintf("cover/%d", cov.epoch), Alarm{Kind: AlarmEquivocation, Detail: cov.Error()}); aerr != nil {
					return nil, 0, aerr
				}
				refused = fmt.Errorf("%w: %v", ErrServerMisbehaved, cov)
			case errors.Is(err, errStale):
				refused = err
			case errors.Is(err, errForeignEpoch):
				// Not this device's to send in: make the next epoch.
			default:
				return nil, 0, err
			}
		}
		n := max(ca.Epoch, cs.Epoch) + 1
		if err := c.rotate(ctx, cs, n); err != nil {
			if IsCode(err, "epoch_taken") || IsCode(err, "stale_chain") || IsCode(err, "session_coverage") || IsCode(err, "stale_state") {
				continue
			}
			return nil, 0, err
		}
		return cs.epochs[n], n, nil
	}
	if refused != nil {
		return nil, 0, refused
	}
	return nil, 0, errors.New("the conversation's epoch kept changing; try again")
}

// conversationState asks the server for the conversation's epoch and
// membership head, and refuses a head older than the one held.
func (c *Client) conversationState(ctx context.Context, cs *convState) (convAnswer, error) {
	var ca convAnswer
	if err := c.api.do(ctx, "GET", "/api/conversations/"+cs.ID.String(), nil, &ca); err != nil {
		if IsCode(err, "not_found") {
			cs.Left = true
			if serr := c.saveConv(cs); serr != nil {
				return ca, serr
			}
			return ca, fmt.Errorf("%w (%s)", ErrNotMember, cs.ID)
		}
		return ca, err
	}
	if cs.chain != nil && ca.ChainSeq < cs.chain.Seq {
		return ca, fmt.Errorf("%w: the server says the membership of %s is at record %d, this device holds record %d (rolled back)",
			ErrServerMisbehaved, cs.ID, ca.ChainSeq, cs.chain.Seq)
	}
	return ca, nil
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
	// The held state follows the conversation into the new epoch (§7.6).
	body := map[string]b64{"session": dist.Marshal()}
	state, err := c.republish(cs, n, entry)
	if err != nil {
		return err
	}
	if state != nil {
		body["state"] = state
	}
	if err := c.api.do(ctx, "POST", "/api/conversations/"+cs.ID.String()+"/sessions", body, nil); err != nil {
		if IsCode(err, "epoch_taken") {
			c.stats.AdoptedEpochs++
		}
		if IsCode(err, "stale_state") { // a newer state landed: take it, then try again
			return errors.Join(err, c.refreshState(ctx, cs))
		}
		return err
	}
	if state != nil {
		cs.State.Epoch, cs.State.Ref = n, stateRef(state)
	}
	c.stats.Rotations++
	entry.Covered = true
	cs.epochs[n] = entry
	cs.hold(n, entry.ChainSeq)
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
			return c.changeRefused(ctx, cs.chain, rec, err) // not allowed: say why before the server does
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
		id, key, err := c.memberKey(ctx, name)
		if err != nil {
			return err
		}
		ms = append(ms, protocol.Member{User: id, Identity: key, Role: protocol.RoleMember})
	}
	if err := c.change(ctx, conv, protocol.OpAdd, ms, nil); err != nil {
		return err
	}
	// The new members read the conversation's state once an epoch carries
	// it to them (§7.6): make that epoch now rather than at the next
	// message.
	cs, err := c.conv(conv)
	if err != nil || cs == nil || cs.State == nil {
		return err
	}
	if _, _, err := c.current(ctx, cs); err != nil {
		return fmt.Errorf("members added; the new epoch that gives them the conversation's state is not made yet (the next message makes it): %w", err)
	}
	return nil
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

// rekeyConversations announces the new identity key c.id in every
// conversation the account is in, after ResetIdentity. old is the key it
// replaces, if the device held one: the rekeys are then co-signed by it and
// keep the account's roles (rekeyIn).
func (c *Client) rekeyConversations(ctx context.Context, old *secret.IdentityPrivateKey) error {
	return c.eachConversation(ctx, func(conv protocol.ConversationID) error {
		if _, err := c.rekeyIn(ctx, conv, old, false); err != nil {
			return fmt.Errorf("announce the new identity in %s: %w", conv, err)
		}
		return nil
	})
}

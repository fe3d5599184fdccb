package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"sandi.dev/protocol"
	"sandi.dev/protocol/archive"
)

// Message requests (protocol.md §16.1). Whether a conversation is a
// request is this device's decision, made once, when it first verifies the
// conversation's membership chain: the record that made this account a
// member was signed by an account that no other conversation this device
// holds (accepted, and not left) has as a member. The server is never asked
// who is a contact. A request stays one until the user accepts it, or this
// account sends in it (from any of its devices); until then its messages
// are not marked read, so nothing tells the sender they were seen.
//
// A device linked to the account does not start from nothing: the
// approving device sends it, in the transfer archive sealed to it with the
// identity (§11, §14.5), its request state (requestState) and its block
// list, and the new device decides with them as the approving device
// would.

// adder returns the author of the record by which this account last
// became a member of the conversation in cs (its creator for the genesis),
// and whether there is one.
func (c *Client) adder(cs *convState) (protocol.UserID, bool) {
	return c.adderIn(cs.records)
}

// adderIn is adder over the verified records given.
func (c *Client) adderIn(records [][]byte) (protocol.UserID, bool) {
	var by protocol.UserID
	found := false
	for _, enc := range records {
		rec, err := protocol.ParseRecord(enc)
		if err != nil {
			continue // verified when stored
		}
		if rec.Op != protocol.OpCreate && rec.Op != protocol.OpAdd {
			continue
		}
		for _, m := range rec.Members {
			if m.User == c.acct.User {
				by, found = rec.Author, true
			}
		}
	}
	return by, found
}

// knows reports whether a conversation this device holds, other than skip,
// that is not a request and that this account has not left, has user as a
// member by its verified chain.
func (c *Client) knows(user protocol.UserID, skip protocol.ConversationID) (bool, error) {
	held, err := c.storedConvs()
	if err != nil {
		return false, err
	}
	for _, cs := range held {
		if cs.ID == skip || cs.chain == nil || cs.Request || cs.Left {
			continue
		}
		if _, ok := cs.chain.Member(user); ok {
			return true, nil
		}
	}
	return false, nil
}

// classify decides, the first time the chain of cs that this device
// verified names its account as a member (the chain may have come in
// parts: a server that serves a prefix without the add first does not
// skip the decision), whether the conversation is a request: as the request state a link
// brought says for a conversation it names, else by whether the account
// that added this one is known (a member of a conversation this device
// holds and accepted, or known by that state). A conversation started by
// an account this device knows blocked is a request too, and an alarm: an
// honest server refuses it (§16.2).
func (c *Client) classify(cs *convState) error {
	by, ok := c.adder(cs)
	if !ok || by == c.acct.User {
		return nil
	}
	rs, err := c.carriedRequests()
	if err != nil {
		return err
	}
	if request, decided := rs.decided(cs.ID); decided {
		cs.Request = request
	} else if rs.knows(by) {
		cs.Request = false
	} else if c.transferPending() {
		// The request state and the block list the approving device
		// handed over are not imported yet (a server that withholds the
		// archive): deciding alone could accept a conversation of an
		// account the user blocked. A request until the import decides.
		cs.Request, cs.Undecided = true, true
	} else {
		known, err := c.knows(by, cs.ID)
		if err != nil {
			return err
		}
		cs.Request = !known
	}
	blocked, err := c.localBlocks()
	if err != nil {
		return err
	}
	if blocked[by] {
		cs.Request = true
		return c.raise(Alarm{Kind: AlarmServerData, Conversation: cs.ID, User: by,
			Detail: "a conversation was started by an account this account blocked; the server should have refused it. It is kept as a request"})
	}
	return nil
}

// accepted ends a request because this account sent in it.
func (cs *convState) accepted() { cs.Request = false }

// IsRequest reports whether the conversation is a message request on this
// device (see Requests).
func (c *Client) IsRequest(conv protocol.ConversationID) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.conv(conv)
	if err != nil || cs == nil {
		return false, err
	}
	return cs.Request, nil
}

// Requests lists the conversations that are message requests: started by
// an account this device shared no conversation with. Each has From set.
func (c *Client) Requests(ctx context.Context) ([]Conversation, error) {
	all, err := c.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	var out []Conversation
	for _, cv := range all {
		if cv.Request {
			out = append(out, cv)
		}
	}
	return out, nil
}

// request loads a conversation that is a message request.
func (c *Client) request(conv protocol.ConversationID) (*convState, error) {
	cs, err := c.conv(conv)
	if err != nil {
		return nil, err
	}
	if cs == nil || !cs.Request {
		return nil, fmt.Errorf("conversation %s is not a message request", conv)
	}
	return cs, nil
}

// Accept makes a request an ordinary conversation: its messages count as
// unread and are marked read as any others.
func (c *Client) Accept(conv protocol.ConversationID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.request(conv)
	if err != nil {
		return err
	}
	cs.Request = false
	return c.saveConv(cs)
}

// DeleteRequest leaves a request and drops what this device keeps of it:
// its history, its epoch keys and its membership chain.
func (c *Client) DeleteRequest(ctx context.Context, conv protocol.ConversationID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleteRequest(ctx, conv)
}

func (c *Client) deleteRequest(ctx context.Context, conv protocol.ConversationID) error {
	cs, err := c.request(conv)
	if err != nil {
		return err
	}
	if !cs.Left {
		if err := c.change(ctx, conv, protocol.OpLeave, nil, nil); err != nil {
			return fmt.Errorf("leave: %w", err)
		}
	}
	return c.drop(conv)
}

// drop deletes what this device keeps of a conversation.
func (c *Client) drop(conv protocol.ConversationID) error {
	keys := []string{convKey(conv), chainKey(conv), historyKey(conv), expiryKey(conv)}
	epochs, err := c.st.List("epoch/" + conv.String() + "/")
	if err != nil {
		return err
	}
	for _, k := range append(epochs, keys...) {
		if err := c.st.Delete(k); err != nil {
			return err
		}
	}
	delete(c.convs, conv)
	delete(c.pend.convs, conv)
	delete(c.pend.history, conv)
	delete(c.pend.actions, conv)
	for ref := range c.pend.epochs {
		if ref.conv == conv {
			delete(c.pend.epochs, ref)
		}
	}
	return nil
}

// BlockRequest blocks the account that started a request (Block) and
// deletes the request (DeleteRequest).
func (c *Client) BlockRequest(ctx context.Context, conv protocol.ConversationID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.request(conv)
	if err != nil {
		return err
	}
	by, ok := c.adder(cs)
	if !ok {
		return fmt.Errorf("conversation %s: no record added this account", conv)
	}
	if err := c.block(ctx, by); err != nil {
		return err
	}
	return c.deleteRequest(ctx, conv)
}

// requestStateKey is the storage key (and archive record) of the request
// state a link brought (protocol.md §16.1).
const requestStateKey = "requests.v1"

// maxRequestState bounds each list of a request state.
const maxRequestState = 1 << 20

// requestState is what a device decided about message requests, as it
// hands it to a device it links: the accounts it knows (members of the
// conversations it holds, accepted and not left, other than its own),
// and the conversations it holds as accepted and as requests. Each list
// is in ascending byte order, without repeats or zero ids, and no
// conversation is in both.
type requestState struct {
	Version  int                       `json:"version"` // 1
	Known    []protocol.UserID         `json:"known"`
	Accepted []protocol.ConversationID `json:"accepted"`
	Requests []protocol.ConversationID `json:"requests"`
}

// errRequestState marks a request state that breaks its rules.
var errRequestState = errors.New("malformed request state")

// parseRequestState decodes a request state strictly.
func parseRequestState(b []byte) (*requestState, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rs requestState
	if err := dec.Decode(&rs); err != nil {
		return nil, fmt.Errorf("%w: %v", errRequestState, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: bytes after the object", errRequestState)
	}
	if rs.Version != 1 {
		return nil, fmt.Errorf("%w: version %d", errRequestState, rs.Version)
	}
	if err := checkIDs(rs.Known); err != nil {
		return nil, fmt.Errorf("%w: known: %v", errRequestState, err)
	}
	for _, l := range [][]protocol.ConversationID{rs.Accepted, rs.Requests} {
		if err := checkIDs(l); err != nil {
			return nil, fmt.Errorf("%w: %v", errRequestState, err)
		}
	}
	for _, id := range rs.Accepted {
		if _, both := slices.BinarySearchFunc(rs.Requests, id, compareIDs); both {
			return nil, fmt.Errorf("%w: conversation %s is both accepted and a request", errRequestState, id)
		}
	}
	return &rs, nil
}

func compareIDs[ID ~[protocol.IDSize]byte](a, b ID) int { return bytes.Compare(a[:], b[:]) }

// checkIDs checks that ids are at most maxRequestState, ascending,
// unrepeated and not zero.
func checkIDs[ID ~[protocol.IDSize]byte](ids []ID) error {
	if len(ids) > maxRequestState {
		return fmt.Errorf("%d ids, more than %d", len(ids), maxRequestState)
	}
	for i, id := range ids {
		if id == (ID{}) {
			return errors.New("a zero id")
		}
		if i > 0 && compareIDs(ids[i-1], id) >= 0 {
			return errors.New("ids out of order or repeated")
		}
	}
	return nil
}

// marshal encodes a request state (lists sorted, as parse requires).
func (rs *requestState) marshal() ([]byte, error) {
	out := requestState{Version: 1, Known: rs.Known, Accepted: rs.Accepted, Requests: rs.Requests}
	for _, l := range []*[]protocol.ConversationID{&out.Accepted, &out.Requests} {
		*l = slices.SortedFunc(slices.Values(*l), compareIDs)
		if *l == nil {
			*l = []protocol.ConversationID{}
		}
	}
	if out.Known = slices.SortedFunc(slices.Values(out.Known), compareIDs); out.Known == nil {
		out.Known = []protocol.UserID{}
	}
	return json.Marshal(out)
}

// decided reports whether rs decided conv, and whether as a request.
func (rs *requestState) decided(conv protocol.ConversationID) (request, decided bool) {
	if rs == nil {
		return false, false
	}
	if _, ok := slices.BinarySearchFunc(rs.Requests, conv, compareIDs); ok {
		return true, true
	}
	_, ok := slices.BinarySearchFunc(rs.Accepted, conv, compareIDs)
	return false, ok
}

// knows reports whether rs names user as known.
func (rs *requestState) knows(user protocol.UserID) bool {
	if rs == nil {
		return false
	}
	_, ok := slices.BinarySearchFunc(rs.Known, user, compareIDs)
	return ok
}

// carriedRequests reads the request state a link brought (nil if none).
func (c *Client) carriedRequests() (*requestState, error) {
	b, err := c.st.Get(requestStateKey)
	if errors.Is(err, ErrNoValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rs, err := parseRequestState(b)
	if err != nil {
		return nil, fmt.Errorf("stored request state: %w", err)
	}
	return rs, nil
}

// requestState is this device's request state, to hand to a device it
// links: what a link brought it, updated by the conversations it holds
// (a conversation it left is no longer named). The caller holds c.mu.
func (c *Client) requestState() ([]byte, error) {
	prev, err := c.carriedRequests()
	if err != nil {
		return nil, err
	}
	known := map[protocol.UserID]bool{}
	decided := map[protocol.ConversationID]bool{}
	if prev != nil {
		for _, u := range prev.Known {
			known[u] = true
		}
		for _, id := range prev.Accepted {
			decided[id] = false
		}
		for _, id := range prev.Requests {
			decided[id] = true
		}
	}
	held, err := c.storedConvs()
	if err != nil {
		return nil, err
	}
	for _, cs := range held {
		if cs.chain == nil {
			continue
		}
		if cs.Left {
			delete(decided, cs.ID)
			continue
		}
		decided[cs.ID] = cs.Request
		if !cs.Request {
			for _, m := range cs.chain.Members() {
				known[m.User] = true
			}
		}
	}
	delete(known, c.acct.User)
	var rs requestState
	for u := range known {
		rs.Known = append(rs.Known, u)
	}
	for id, request := range decided {
		if request {
			rs.Requests = append(rs.Requests, id)
		} else {
			rs.Accepted = append(rs.Accepted, id)
		}
	}
	return rs.marshal()
}

// checkTransferred decodes the block list and the request state that a
// transfer brings, strictly (§16.1): one that does not decode fails the
// import whole, before anything is written.
func checkTransferred(rec archive.Record, user protocol.UserID) error {
	var err error
	switch rec.Key {
	case blockStatementsKey:
		_, err = parseHeldBlocks(rec.Value, user)
	case requestStateKey:
		_, err = parseRequestState(rec.Value)
	case blocksKey:
		var ids []protocol.UserID
		err = json.Unmarshal(rec.Value, &ids)
	}
	if err != nil {
		return fmt.Errorf("%w: record %s: %v", archive.ErrFormat, rec.Key, err)
	}
	return nil
}

// mergeRequestStates is the union of two request states; where they
// decide a conversation differently, theirs (the newer, from the device
// that linked this one) wins.
func mergeRequestStates(theirs, mine []byte) ([]byte, error) {
	t, err := parseRequestState(theirs)
	if err != nil {
		return nil, err
	}
	m, err := parseRequestState(mine)
	if err != nil {
		return theirs, nil // a stored state that does not parse is replaced
	}
	out := requestState{Known: append(slices.Clone(t.Known), m.Known...)}
	out.Known = slices.Compact(slices.SortedFunc(slices.Values(out.Known), compareIDs))
	for _, id := range m.Accepted {
		if _, ok := t.decided(id); !ok {
			out.Accepted = append(out.Accepted, id)
		}
	}
	for _, id := range m.Requests {
		if _, ok := t.decided(id); !ok {
			out.Requests = append(out.Requests, id)
		}
	}
	out.Accepted = append(out.Accepted, t.Accepted...)
	out.Requests = append(out.Requests, t.Requests...)
	return out.marshal()
}

// mergeBlocks is the union of two stored block lists.
func mergeBlocks(theirs, mine []byte) ([]byte, error) {
	var t, m []protocol.UserID
	if err := json.Unmarshal(theirs, &t); err != nil {
		return nil, fmt.Errorf("blocks: %w", err)
	}
	if json.Unmarshal(mine, &m) != nil {
		return theirs, nil
	}
	all := slices.Compact(slices.SortedFunc(slices.Values(append(t, m...)), compareIDs))
	return json.Marshal(all)
}

// applyRequestState ends the requests that the request state a link
// brought decides otherwise: conversations this device classified before
// it had that state (an import that completed late). Blocked authors stay
// requests. The caller holds c.mu.
//
// The conversations classified while the import was pending (Undecided)
// are decided now as classify does, the imported state and block list in
// hand (an archive without a state: by this device's conversations).
func (c *Client) applyRequestState() error {
	rs, err := c.carriedRequests()
	if err != nil {
		return err
	}
	blocked, err := c.localBlocks()
	if err != nil {
		return err
	}
	held, err := c.storedConvs()
	if err != nil {
		return err
	}
	for _, cs := range held {
		if !cs.Request {
			continue
		}
		undecided := cs.Undecided
		cs.Undecided = false
		by, ok := c.adder(cs)
		request := true
		switch dec, decided := rs.decided(cs.ID); {
		case !ok || blocked[by]:
		case decided:
			request = dec
		case rs.knows(by):
			request = false
		case undecided:
			known, err := c.knows(by, cs.ID)
			if err != nil {
				return err
			}
			request = !known
		}
		if !request || undecided {
			cs.Request = request
			if err := c.saveConv(cs); err != nil {
				return err
			}
		}
	}
	return nil
}

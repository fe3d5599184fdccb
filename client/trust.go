package client

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"sandi.dev/protocol"
)

// The device's identity trust store (protocol.md "Client trust state"): one
// pin per account this device has met, shared by every conversation, bundle
// and lookup. Every identity key the client meets is checked against the
// pin; the first key met is pinned (trust on first use), any other is an
// identity change, shown to the user and never accepted silently.

// ErrIdentityNotAccepted is wrapped by every *IdentityError: an identity key
// this device has not accepted stands in the way (a verified contact's new
// key waiting for AcceptIdentity, or a conversation that names another key
// than the pinned one).
var ErrIdentityNotAccepted = errors.New("an identity key this device has not accepted")

// ErrSafetyNumberMismatch is returned by MarkVerified when the number or QR
// payload given is not the safety number of the pinned keys.
var ErrSafetyNumberMismatch = errors.New("the safety number does not match: do not mark this contact verified")

// IdentityError says which account's identity key is not accepted, and
// where.
type IdentityError struct {
	User     protocol.UserID
	Username string
	// Conversation is the conversation concerned, if any.
	Conversation protocol.ConversationID
	// Pending is true when a verified contact's new key waits for
	// AcceptIdentity; false when a conversation names a key that is
	// neither the pinned key nor a pending one.
	Pending bool
	// Own is true when the key is one named for this device's own account.
	Own bool
}

func (e *IdentityError) Error() string {
	who := e.Username
	if who == "" {
		who = e.User.String()
	}
	where := ""
	if !e.Conversation.IsZero() {
		where = " in conversation " + e.Conversation.String()
	}
	switch {
	case e.Own:
		return fmt.Sprintf("%s%s names an identity key for this account that is not this device's: refused", who, where)
	case e.Pending:
		return fmt.Sprintf("the identity key of %s (a verified contact) changed; compare safety numbers and accept the new key before sending to %s%s", who, who, where)
	}
	return fmt.Sprintf("%s names an identity key for %s that this device has not accepted; compare safety numbers", strings.TrimPrefix(where, " in "), who)
}

func (e *IdentityError) Unwrap() error { return ErrIdentityNotAccepted }

// pin is what the device holds of one account (storage key pin/USERID).
type pin struct {
	User      protocol.UserID      `json:"user"`
	Username  string               `json:"username,omitempty"`
	Identity  protocol.IdentityKey `json:"identity"`
	Verified  bool                 `json:"verified,omitempty"`
	FirstSeen int64                `json:"firstSeen"`         // Unix ms, this device's clock
	Changed   int64                `json:"changed,omitempty"` // when Identity last changed
	// History holds the keys accepted before Identity, oldest first: what
	// they signed before the change still verifies.
	History []pastKey `json:"history,omitempty"`
	// Pending is a new key met but not accepted.
	Pending      *protocol.IdentityKey `json:"pending,omitempty"`
	PendingSince int64                 `json:"pendingSince,omitempty"`
	// Rejected keys were pending and refused by the user: met again
	// elsewhere than in a rekey of the pinned key, they change nothing.
	Rejected []protocol.IdentityKey `json:"rejected,omitempty"`
}

type pastKey struct {
	Identity protocol.IdentityKey `json:"identity"`
	Until    int64                `json:"until"` // Unix ms when it was replaced
}

func pinKey(u protocol.UserID) string { return "pin/" + u.String() }

// pinsMarker records that the pins were built (from contact/ and chain/
// entries of older versions, on the first Open after the upgrade).
const pinsMarker = "pins.v1"

func (p *pin) had(k protocol.IdentityKey) bool {
	return slices.ContainsFunc(p.History, func(h pastKey) bool { return h.Identity.Equal(k) })
}

func (p *pin) rejected(k protocol.IdentityKey) bool {
	return slices.ContainsFunc(p.Rejected, func(r protocol.IdentityKey) bool { return r.Equal(k) })
}

func (c *Client) savePin(p *pin) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := c.st.Put(pinKey(p.User), b); err != nil {
		return err
	}
	c.pins[p.User] = p
	return nil
}

// loadPins reads the trust store, building it from older state first if
// this storage has none yet.
func (c *Client) loadPins() error {
	keys, err := c.st.List("pin/")
	if err != nil {
		return err
	}
	for _, k := range keys {
		b, err := c.st.Get(k)
		if err != nil {
			return err
		}
		var p pin
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("stored pin %s: %w", k, err)
		}
		if k != pinKey(p.User) {
			return fmt.Errorf("stored pin %s names another user", k)
		}
		c.pins[p.User] = &p
	}
	if c.acct.User.IsZero() {
		return nil // nothing to build from, nor to mark: storage stays empty
	}
	if _, err := c.st.Get(pinsMarker); err == nil {
		return nil
	} else if !errors.Is(err, ErrNoValue) {
		return err
	}
	if err := c.migratePins(); err != nil {
		return fmt.Errorf("build the identity pins: %w", err)
	}
	return c.st.Put(pinsMarker, []byte("1"))
}

// migratePins builds pins from what a device of an older version holds:
// the contact/ entries (the last key a lookup returned) and the members of
// every held chain. Consistent data pins quietly; where they disagree, the
// chain's key is met as an identity change (an alarm, as at run time).
func (c *Client) migratePins() error {
	keys, err := c.st.List("contact/")
	if err != nil {
		return err
	}
	for _, k := range keys {
		id, err := protocol.ParseUserID(strings.TrimPrefix(k, "contact/"))
		if err != nil {
			continue
		}
		b, err := c.st.Get(k)
		if err != nil {
			return err
		}
		var ct contact
		if json.Unmarshal(b, &ct) != nil || c.pins[id] != nil || id == c.acct.User {
			continue
		}
		if err := c.savePin(&pin{User: id, Username: ct.Username, Identity: ct.Identity, FirstSeen: c.now().UnixMilli()}); err != nil {
			return err
		}
	}
	chains, err := c.st.List("chain/")
	if err != nil {
		return err
	}
	for _, k := range chains {
		id, err := protocol.ParseConversationID(strings.TrimPrefix(k, "chain/"))
		if err != nil {
			continue
		}
		cs, err := c.conv(id)
		if err != nil || cs == nil || cs.chain == nil {
			continue // a chain that no longer verifies is refused at use
		}
		recs := make([]*protocol.Record, len(cs.records))
		for i, r := range cs.records {
			if recs[i], err = protocol.ParseRecord(r); err != nil {
				return err
			}
		}
		if err := c.meetChain(cs, nil, recs); err != nil {
			return err
		}
	}
	return nil
}

// pinOf finds a pin by user id or username (nil if none, or if two pins
// carry the username: usernames come from the server).
func (c *Client) pinOf(nameOrID string) *pin {
	if id, err := protocol.ParseUserID(nameOrID); err == nil {
		return c.pins[id]
	}
	var found *pin
	for _, p := range c.pins {
		if p.Username == nameOrID && p.User != c.acct.User {
			if found != nil {
				return nil
			}
			found = p
		}
	}
	return found
}

// metHow says how a key was met: only a rekey that replaces the pinned key
// in a conversation the device holds may move an unverified contact's pin
// by itself, and only a rekey the pinned key co-signed may move a verified
// contact's (protocol.md "Client trust state").
type metHow int

const (
	metElsewhere  metHow = iota // a lookup, a bundle, a genesis or add record, a chain held from before
	metByRekey                  // a rekey record whose previous state named the pinned key
	metByCosigned               // an OpRekeyCosigned record whose cosigner is the pinned key
)

// meet checks an identity key the client met for user against the pin
// (conv: where it was met, zero for a lookup). The first key is pinned
// (trust on first use). A key accepted before (in History) changes nothing:
// a conversation that still names it is refused at use (trusted). Any other
// key is an identity change, with a warning and an alarm: it replaces the
// pin of an unverified contact when met by a rekey of the pinned key
// (metByRekey), and the pin of any contact, verified or not, when met by a
// rekey the pinned key co-signed (metByCosigned: the holder of the key the
// user accepted vouched for the new one, so a verified contact stays
// verified); otherwise it is held as pending, until AcceptIdentity (or,
// for an unverified contact, until such a rekey arrives), and an
// *IdentityError is returned. Own keys go to meetOwn.
func (c *Client) meet(user protocol.UserID, username string, key protocol.IdentityKey, conv protocol.ConversationID, how metHow) error {
	if user == c.acct.User {
		return c.meetOwn(key, conv)
	}
	now := c.now().UnixMilli()
	p := c.pins[user]
	if p == nil {
		return c.savePin(&pin{User: user, Username: username, Identity: key, FirstSeen: now})
	}
	rename := username != "" && username != p.Username
	if rename {
		p.Username = username
	}
	// A rekey back to a key accepted earlier returns the pin to it, where
	// a rekey to a new key would have moved the pin by itself.
	back := p.had(key) && (how == metByCosigned || how == metByRekey && !p.Verified)
	if p.Identity.Equal(key) || p.had(key) && !back {
		if rename {
			return c.savePin(p)
		}
		return nil
	}
	if back {
		p.History = slices.DeleteFunc(p.History, func(h pastKey) bool { return h.Identity.Equal(key) })
	}
	if p.rejected(key) && how == metElsewhere {
		if rename {
			if err := c.savePin(p); err != nil {
				return err
			}
		}
		return &IdentityError{User: user, Username: p.Username, Conversation: conv}
	}
	known := p.Pending != nil && p.Pending.Equal(key) // raised when it was first met
	p.Rejected = slices.DeleteFunc(p.Rejected, func(r protocol.IdentityKey) bool { return r.Equal(key) })
	if how == metByCosigned {
		p.History = append(p.History, pastKey{Identity: p.Identity, Until: now})
		p.Identity, p.Changed, p.Pending, p.PendingSince = key, now, nil, 0
		if err := c.savePin(p); err != nil {
			return err
		}
		c.stats.IdentityAlerts++
		c.warn(Warning{Kind: WarnIdentityChanged, User: user, Username: p.Username, Conversation: conv})
		detail := fmt.Sprintf("the identity key of %s changed, and the key this device had accepted co-signed the new one (the holder of the old key agreed); its safety number changed", p.name())
		if p.Verified {
			detail += fmt.Sprintf(": %s stays verified, compare the new number when you can", p.name())
		}
		return c.raiseFor(user, conv, Alarm{Kind: AlarmIdentityChanged, User: user, Detail: detail})
	}
	if how == metByRekey && !p.Verified {
		p.History = append(p.History, pastKey{Identity: p.Identity, Until: now})
		p.Identity, p.Changed, p.Pending, p.PendingSince = key, now, nil, 0
		if err := c.savePin(p); err != nil || known {
			return err
		}
		c.stats.IdentityAlerts++
		c.warn(Warning{Kind: WarnIdentityChanged, User: user, Username: p.Username, Conversation: conv})
		return c.raiseFor(user, conv, Alarm{Kind: AlarmIdentityChanged, User: user,
			Detail: fmt.Sprintf("the identity key of %s changed (an identity reset announced in a conversation); its safety number changed: compare it before trusting %s", p.name(), p.name())})
	}
	ie := &IdentityError{User: user, Username: p.Username, Conversation: conv, Pending: true}
	if known {
		if rename {
			if err := c.savePin(p); err != nil {
				return err
			}
		}
		return ie
	}
	p.Pending, p.PendingSince = &key, now
	if err := c.savePin(p); err != nil {
		return err
	}
	c.stats.IdentityAlerts++
	c.warn(Warning{Kind: WarnIdentityChanged, User: user, Username: p.Username, Conversation: conv})
	a := Alarm{Kind: AlarmIdentityChanged, User: user,
		Detail: fmt.Sprintf("%s was presented with a new identity key that this device has not accepted; sending to conversations with %s waits until the user compares safety numbers and accepts it", p.name(), p.name())}
	if p.Verified {
		a.Kind = AlarmIdentityBlocked
		a.Detail = fmt.Sprintf("the identity key of %s, a verified contact, changed; sending to conversations with %s is blocked until the new key is accepted after comparing safety numbers", p.name(), p.name())
	}
	if err := c.raiseFor(user, conv, a); err != nil {
		return err
	}
	return ie
}

func (p *pin) name() string {
	if p.Username != "" {
		return p.Username
	}
	return p.User.String()
}

// meetOwn checks a key named for this device's own account: it must be
// this device's identity (or one this device replaced). Any other is a
// critical alarm and is never accepted as this account.
func (c *Client) meetOwn(key protocol.IdentityKey, conv protocol.ConversationID) error {
	if c.id == nil || c.id.Public().Equal(key) {
		return nil
	}
	if p := c.pins[c.acct.User]; p != nil && p.had(key) {
		return nil
	}
	if err := c.raise(Alarm{Kind: AlarmOwnRekey, Severity: SeverityCritical, Conversation: conv, User: c.acct.User,
		Detail: "an identity key that is not this device's was named for this account; no device of this account that this device knows made it: the account may be compromised"}); err != nil {
		return err
	}
	return &IdentityError{User: c.acct.User, Username: c.acct.Username, Conversation: conv, Own: true}
}

// raiseFor raises a for conv and for every other held conversation whose
// chain names user (each is concerned: sending there is affected); with
// none, once without a conversation.
func (c *Client) raiseFor(user protocol.UserID, conv protocol.ConversationID, a Alarm) error {
	convs := c.convsNaming(user)
	if !conv.IsZero() && !slices.Contains(convs, conv) {
		convs = append(convs, conv)
	}
	if len(convs) == 0 {
		return c.raise(a)
	}
	for _, id := range convs {
		a.Conversation = id
		if err := c.raise(a); err != nil {
			return err
		}
	}
	return nil
}

// convsNaming lists the held conversations whose chain names user.
func (c *Client) convsNaming(user protocol.UserID) []protocol.ConversationID {
	keys, err := c.st.List("chain/")
	if err != nil {
		return nil
	}
	var out []protocol.ConversationID
	for _, k := range keys {
		id, err := protocol.ParseConversationID(strings.TrimPrefix(k, "chain/"))
		if err != nil {
			continue
		}
		cs, err := c.conv(id)
		if err != nil || cs == nil || cs.chain == nil {
			continue
		}
		if _, ok := cs.chain.Member(user); ok {
			out = append(out, id)
		}
	}
	return out
}

// meetChain checks the keys of a chain the device just extended with recs
// (from the genesis when prev is nil). Each record is replayed on the state
// before it: a rekey that replaces a contact's pinned key is met as such
// (metByRekey), one the pinned key co-signed as metByCosigned; a rekey that
// leads to the pinned key from an earlier key
// puts that earlier key in the pin's history (the new key signed the
// succession); with an incremental update, a record naming this account
// with a key that is not this device's is checked on its own. Then every
// member named by a new record is met with the key the chain now gives it.
func (c *Client) meetChain(cs *convState, prev *protocol.Chain, recs []*protocol.Record) error {
	ok := func(err error) bool { return err == nil || errors.Is(err, ErrIdentityNotAccepted) }
	state := prev
	named := map[protocol.UserID]bool{}
	var successions [][2]protocol.Member // rekeys: the member before, after
	for _, rec := range recs {
		var next *protocol.Chain
		var err error
		if state == nil {
			next, err = protocol.Genesis(rec)
		} else {
			next, err = state.Apply(rec)
		}
		if err != nil {
			return err // verified by Update just before: storage was edited
		}
		for _, m := range rec.Members {
			named[m.User] = true
			if m.User == c.acct.User {
				if prev != nil {
					if err := c.meetOwn(m.Identity, cs.ID); !ok(err) {
						return err
					}
				}
				continue
			}
			if !rec.Op.IsRekey() || state == nil {
				continue
			}
			before, _ := state.Member(m.User)
			if p := c.pins[m.User]; p != nil {
				how := metElsewhere
				switch {
				case rec.Op == protocol.OpRekeyCosigned && rec.Cosigner.Equal(p.Identity):
					how = metByCosigned
				case p.Identity.Equal(before.Identity):
					how = metByRekey
				}
				if how != metElsewhere {
					if err := c.meet(m.User, "", m.Identity, cs.ID, how); !ok(err) {
						return err
					}
				}
			}
			// The key a rekey succeeds is the one that signed for it: the
			// cosigner of a co-signed rekey (not the entry it replaces,
			// which may be a key the server forged).
			if rec.Op == protocol.OpRekeyCosigned {
				before.Identity = rec.Cosigner
			}
			successions = append(successions, [2]protocol.Member{before, m})
		}
		state = next
	}
	for _, m := range cs.chain.Members() {
		if named[m.User] && m.User != c.acct.User {
			if err := c.meet(m.User, "", m.Identity, cs.ID, metElsewhere); !ok(err) {
				return err
			}
		}
	}
	// Newest first, so that a chain of rekeys leading to the pin is
	// followed back.
	for i := len(successions) - 1; i >= 0; i-- {
		before, after := successions[i][0], successions[i][1]
		p := c.pins[after.User]
		if p == nil || !(p.Identity.Equal(after.Identity) || p.had(after.Identity)) || p.Identity.Equal(before.Identity) || p.had(before.Identity) {
			continue
		}
		p.History = append(p.History, pastKey{Identity: before.Identity, Until: c.now().UnixMilli()})
		if err := c.savePin(p); err != nil {
			return err
		}
	}
	if m, member := cs.chain.Member(c.acct.User); member && named[c.acct.User] {
		if err := c.meetOwn(m.Identity, cs.ID); !ok(err) {
			return err
		}
	}
	return nil
}

// trusted is the check before a device seals to or sends in a
// conversation: every member the chain names has exactly its pinned,
// accepted key, and this account has this device's key.
func (c *Client) trusted(cs *convState) error {
	return c.trustedChain(cs.ID, cs.chain)
}

func (c *Client) trustedChain(conv protocol.ConversationID, chain *protocol.Chain) error {
	if chain == nil {
		return nil
	}
	for _, m := range chain.Members() {
		if m.User == c.acct.User {
			if !c.id.Public().Equal(m.Identity) {
				return &IdentityError{User: m.User, Username: c.acct.Username, Conversation: conv, Own: true}
			}
			continue
		}
		p := c.pins[m.User]
		if p == nil || !p.Identity.Equal(m.Identity) && !p.had(m.Identity) && (p.Pending == nil || !p.Pending.Equal(m.Identity)) {
			// A key not met yet (a chain held from before the trust
			// store): meet it now, with the usual rules.
			if err := c.meet(m.User, "", m.Identity, conv, metElsewhere); err != nil {
				return err
			}
			p = c.pins[m.User]
		}
		if p.Pending != nil {
			return &IdentityError{User: m.User, Username: p.Username, Conversation: conv, Pending: true}
		}
		if !p.Identity.Equal(m.Identity) {
			return &IdentityError{User: m.User, Username: p.Username, Conversation: conv}
		}
	}
	return nil
}

// trustedBeforeSync is trusted for the check a send makes before it asks
// the server anything: a member named with a key its pin accepted earlier
// (in the history) passes, since the rekey that replaced it may be among
// the records this device has not fetched yet; trusted runs again on the
// head the send verifies.
func (c *Client) trustedBeforeSync(cs *convState) error {
	err := c.trusted(cs)
	var ie *IdentityError
	if !errors.As(err, &ie) || ie.Pending {
		return err
	}
	if m, ok := cs.chain.Member(ie.User); ok {
		if p := c.pins[ie.User]; p != nil && p.had(m.Identity) {
			return nil
		}
	}
	return err
}

// CheckTrust returns what would stop this device from sending in a
// conversation because of an identity key it has not accepted (an
// *IdentityError, wrapping ErrIdentityNotAccepted), or nil: the check a
// send makes before encrypting, without sending. A conversation whose
// chain this device does not hold yet passes (its first send fetches it).
func (c *Client) CheckTrust(conv protocol.ConversationID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return err
	}
	cs, err := c.conv(conv)
	if err != nil || cs == nil {
		return err
	}
	return c.trusted(cs)
}

// accepted reports whether key is, or was, the accepted identity of user:
// what such a key signed (a message, a distribution) may be used. A
// pending key is not accepted.
func (c *Client) accepted(user protocol.UserID, key protocol.IdentityKey, conv protocol.ConversationID) (bool, error) {
	if user == c.acct.User {
		if c.id != nil && c.id.Public().Equal(key) {
			return true, nil
		}
		p := c.pins[user]
		return p != nil && p.had(key), nil
	}
	p := c.pins[user]
	if p == nil {
		if err := c.meet(user, "", key, conv, metElsewhere); err != nil {
			return false, err
		}
		p = c.pins[user]
	}
	return p.Identity.Equal(key) || p.had(key), nil
}

// refuseUnaccepted returns the error for something signed by a key of
// user that this device has not accepted (nil if it has), and raises an
// alarm the first time for that conversation and key.
func (c *Client) refuseUnaccepted(user protocol.UserID, key protocol.IdentityKey, conv protocol.ConversationID, what string) error {
	ok, err := c.accepted(user, key, conv)
	if err != nil || ok {
		return err
	}
	p := c.pins[user]
	ie := &IdentityError{User: user, Conversation: conv, Pending: p != nil && p.Pending != nil && p.Pending.Equal(key), Own: user == c.acct.User}
	if p != nil {
		ie.Username = p.Username
	}
	memo := conv.String() + "/" + user.String() + "/" + hex.EncodeToString(key[:])
	if !c.refused[memo] {
		c.refused[memo] = true
		kind, sev := AlarmIdentityBlocked, SeverityWarning
		if ie.Own {
			kind, sev = AlarmOwnRekey, SeverityCritical
		}
		if err := c.raise(Alarm{Kind: kind, Severity: sev, Conversation: conv, User: user,
			Detail: fmt.Sprintf("%s signed by an identity key of %s that this device has not accepted was refused", what, ie.Username)}); err != nil {
			return err
		}
	}
	return ie
}

// Contact is an account this device has met, as the trust store holds it.
type Contact struct {
	User     protocol.UserID      `json:"user"`
	Username string               `json:"username"`
	Identity protocol.IdentityKey `json:"identity"`
	// Verified: the user compared safety numbers and marked it so.
	Verified bool `json:"verified"`
	// FirstSeen and Changed are Unix ms (this device's clock); Changed is 0
	// if the key never changed.
	FirstSeen int64 `json:"firstSeen"`
	Changed   int64 `json:"changed,omitempty"`
	// SafetyNumber is the number of this account's key and Identity.
	SafetyNumber string `json:"safetyNumber"`
	// PreviousKeys counts the keys accepted before Identity.
	PreviousKeys int `json:"previousKeys,omitempty"`
	// Pending, if set, is a new key not accepted yet (verified contacts).
	Pending             *protocol.IdentityKey `json:"pending,omitempty"`
	PendingSafetyNumber string                `json:"pendingSafetyNumber,omitempty"`
	// Rekeyed lists the held conversations whose chain says that Identity
	// came through a rekey the previous key did not co-sign
	// (protocol.Chain.Rekeyed): a change the server may have forged, worth
	// comparing safety numbers for. Empty once the contact rekeys back.
	Rekeyed []protocol.ConversationID `json:"rekeyed,omitempty"`
}

func (c *Client) contactOf(p *pin) Contact {
	ct := Contact{User: p.User, Username: p.Username, Identity: p.Identity, Verified: p.Verified, FirstSeen: p.FirstSeen,
		Changed: p.Changed, PreviousKeys: len(p.History), Pending: p.Pending}
	n, _ := protocol.SafetyNumber(c.acct.User, c.id.Public(), p.User, p.Identity)
	ct.SafetyNumber = protocol.FormatSafetyNumber(n)
	if p.Pending != nil {
		n, _ := protocol.SafetyNumber(c.acct.User, c.id.Public(), p.User, *p.Pending)
		ct.PendingSafetyNumber = protocol.FormatSafetyNumber(n)
	}
	for _, id := range c.convsNaming(p.User) {
		cs, err := c.conv(id)
		if err != nil || cs == nil || cs.chain == nil {
			continue
		}
		if m, _ := cs.chain.Member(p.User); m.Identity.Equal(p.Identity) {
			if _, _, rekeyed := cs.chain.Rekeyed(p.User); rekeyed {
				ct.Rekeyed = append(ct.Rekeyed, id)
			}
		}
	}
	return ct
}

// Contacts lists the accounts this device has pinned, by username.
func (c *Client) Contacts() ([]Contact, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return nil, err
	}
	var out []Contact
	for _, p := range c.pins {
		if p.User != c.acct.User {
			out = append(out, c.contactOf(p))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Username+out[i].User.String() < out[j].Username+out[j].User.String()
	})
	return out, nil
}

// Contact returns one pinned account (by username or id), looking it up
// and pinning it on first contact.
func (c *Client) Contact(ctx context.Context, user string) (Contact, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.pinFor(ctx, user)
	if err != nil {
		return Contact{}, err
	}
	return c.contactOf(p), nil
}

// pinFor returns user's pin, looking the user up (and pinning the key met)
// only if there is none.
func (c *Client) pinFor(ctx context.Context, user string) (*pin, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	if p := c.pinOf(user); p != nil {
		return p, nil
	}
	u, err := c.lookup(ctx, user)
	if err != nil {
		return nil, err
	}
	if u.ID == c.acct.User {
		return nil, errors.New("that is this account")
	}
	p := c.pins[u.ID]
	if p == nil {
		return nil, fmt.Errorf("%s could not be pinned", user)
	}
	return p, nil
}

// MarkVerified marks a contact verified after checking that proof is the
// safety number of this account's key and the contact's pinned key: the 60
// digits (spaces and other separators ignored) or the 65-byte QR payload.
// A contact with a pending key change must be accepted first.
func (c *Client) MarkVerified(ctx context.Context, user string, proof []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.pinFor(ctx, user)
	if err != nil {
		return err
	}
	if p.Pending != nil {
		return &IdentityError{User: p.User, Username: p.Username, Pending: true}
	}
	n, qr := protocol.SafetyNumber(c.acct.User, c.id.Public(), p.User, p.Identity)
	var got []byte
	if len(proof) == len(qr) && proof[0] == qr[0] {
		got, proof = proof, qr
	} else {
		for _, r := range string(proof) {
			if r >= '0' && r <= '9' {
				got = append(got, byte(r))
			} else if r != ' ' && r != '-' && r != '\t' && r != '\n' && r != '\r' {
				return ErrSafetyNumberMismatch
			}
		}
		proof = []byte(n)
	}
	if subtle.ConstantTimeCompare(got, proof) != 1 {
		return ErrSafetyNumberMismatch
	}
	p.Verified = true
	return c.savePin(p)
}

// Unverify clears a contact's verified mark.
func (c *Client) Unverify(ctx context.Context, user string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.pinFor(ctx, user)
	if err != nil {
		return err
	}
	p.Verified = false
	return c.savePin(p)
}

// AcceptIdentity accepts a contact's pending identity change: the new key
// becomes the pin (the old one joins the history) and the contact is no
// longer verified. It returns the safety numbers of the old and the new
// key. The messages held for the new key (HeldMessages) are decrypted and
// recorded in the history now, and returned by the next Sync. Without a
// pending change it is an error.
func (c *Client) AcceptIdentity(user string) (old, new string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return "", "", err
	}
	p := c.pinOf(user)
	if p == nil {
		return "", "", fmt.Errorf("%w: %s has no pin on this device", ErrUnknownUser, user)
	}
	if p.Pending == nil {
		return "", "", fmt.Errorf("no identity change of %s is waiting to be accepted", p.name())
	}
	ct := c.contactOf(p)
	now := c.now().UnixMilli()
	p.History = append(p.History, pastKey{Identity: p.Identity, Until: now})
	p.Identity, p.Changed, p.Pending, p.PendingSince, p.Verified = *p.Pending, now, nil, 0, false
	if err := c.savePin(p); err != nil {
		return "", "", err
	}
	// The messages held for the key are decrypted and recorded now, and
	// reported by the next Sync. One that needs the server and cannot
	// reach it stays held: Sync releases it later.
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	ms, fs, _ := c.releaseHeld(ctx, &p.User, true)
	c.release.Messages, c.release.Failures = append(c.release.Messages, ms...), append(c.release.Failures, fs...)
	if len(ms)+len(fs) > 0 && c.onChange != nil {
		c.onChange()
	}
	return ct.SafetyNumber, ct.PendingSafetyNumber, nil
}

// RejectIdentity refuses a contact's pending identity change: the pinned
// key stays, conversations that name the rejected key stay unusable, and
// sending to the others works again. The messages held for the key are
// dropped (the next Sync reports them as failures). The key changes nothing when met again,
// except in a rekey of the pinned key in a held conversation, which makes
// it pending (and raised) once more.
func (c *Client) RejectIdentity(user string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return err
	}
	p := c.pinOf(user)
	if p == nil {
		return fmt.Errorf("%w: %s has no pin on this device", ErrUnknownUser, user)
	}
	if p.Pending == nil {
		return fmt.Errorf("no identity change of %s is waiting to be accepted", p.name())
	}
	p.Rejected = append(p.Rejected, *p.Pending)
	p.Pending, p.PendingSince = nil, 0
	if err := c.savePin(p); err != nil {
		return err
	}
	// What was held for the key is dropped, counted as failures.
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	_, fs, err := c.releaseHeld(ctx, &p.User, true)
	c.release.Failures = append(c.release.Failures, fs...)
	return err
}

// noteOwnReset records this account's replaced identity key (in the
// account's own pin, whose Identity is this device's new key), so that what
// it signed before the reset still verifies and chains naming it are not
// taken for a foreign key.
func (c *Client) noteOwnReset(old protocol.IdentityKey) error {
	p := c.pins[c.acct.User]
	if p == nil {
		p = &pin{User: c.acct.User, Username: c.acct.Username, FirstSeen: c.now().UnixMilli()}
	}
	if !p.had(old) {
		p.History = append(p.History, pastKey{Identity: old, Until: c.now().UnixMilli()})
	}
	p.Identity = c.id.Public()
	return c.savePin(p)
}

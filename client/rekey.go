package client

import (
	"context"
	"errors"
	"fmt"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// RekeyBack restores this account's role in every conversation whose
// chain shows a rekey of this account that the key it replaced did not
// co-sign (one the server may have forged, or a reset made without the old
// key; protocol.Chain.Rekeyed), when the key it replaced is old: the key of
// oldSeed, or this device's identity key if oldSeed is nil. In each such
// conversation it announces this device's identity key in a rekey
// co-signed by old, which gives back the role the account had before
// (protocol.md §6.2). Conversations with nothing to restore are left
// alone.
func (c *Client) RekeyBack(ctx context.Context, oldSeed []byte) error {
	_, err := c.RekeyBackIn(ctx, oldSeed)
	return err
}

// RekeyBackIn is RekeyBack in the conversations convs only (in every
// conversation of the account if convs is empty). It returns the
// conversations in which it posted a rekey, in order.
func (c *Client) RekeyBackIn(ctx context.Context, oldSeed []byte, convs ...protocol.ConversationID) ([]protocol.ConversationID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return nil, err
	}
	old := c.id
	if oldSeed != nil {
		var err error
		if old, err = secret.IdentityFromSeed(oldSeed); err != nil {
			return nil, err
		}
	}
	var done []protocol.ConversationID
	each := func(conv protocol.ConversationID) error {
		posted, err := c.rekeyIn(ctx, conv, old, true)
		if err != nil {
			return fmt.Errorf("rekey back in %s: %w", conv, err)
		}
		if posted {
			done = append(done, conv)
		}
		return nil
	}
	if len(convs) == 0 {
		return done, c.eachConversation(ctx, each)
	}
	for _, conv := range convs {
		if err := each(conv); err != nil {
			return done, err
		}
	}
	return done, nil
}

// eachConversation calls f for every conversation the server lists for the
// account.
func (c *Client) eachConversation(ctx context.Context, f func(protocol.ConversationID) error) error {
	var list struct {
		Conversations []convAnswer `json:"conversations"`
	}
	if err := c.api.do(ctx, "GET", "/api/conversations", nil, &list); err != nil {
		return err
	}
	for _, cv := range list.Conversations {
		if err := f(cv.ID); err != nil {
			return err
		}
	}
	return nil
}

// rekeyIn announces this device's identity key c.id in conv, on top of the
// verified chain, in the strongest form it can sign (§6.2):
//
//   - co-signed by old, restoring the earlier role, when the chain remembers
//     old as this account's key before a rekey old did not co-sign;
//   - co-signed by old, keeping the role, when old is the current key;
//   - otherwise signed by c.id alone (the account becomes a plain member).
//
// With restoreOnly, only the first case posts anything. Nothing is posted
// when the chain already names c.id and there is nothing to restore, or
// when the account is not a member. It reports whether it posted.
func (c *Client) rekeyIn(ctx context.Context, conv protocol.ConversationID, old *secret.IdentityPrivateKey, restoreOnly bool) (bool, error) {
	cs, err := c.conv(conv)
	if err != nil {
		return false, err
	}
	if cs == nil {
		cs = c.newConv(conv)
	}
	for try := 0; ; try++ {
		if err := c.syncChain(ctx, cs); err != nil {
			return false, err
		}
		cur, ok := cs.chain.Member(c.acct.User)
		if !ok {
			return false, nil
		}
		prev, prevRole, rekeyed := cs.chain.Rekeyed(c.acct.User)
		rec := &protocol.Record{Op: protocol.OpRekey, Conversation: conv, Seq: cs.chain.Seq + 1, Prev: cs.chain.Head,
			Time: c.now().UnixMilli(), Author: c.acct.User}
		m := protocol.Member{User: c.acct.User, Identity: c.id.Public(), Role: protocol.RoleMember}
		switch {
		case old != nil && rekeyed && prev.Equal(old.Public()):
			m.Role = prevRole
			rec.Members = []protocol.Member{m}
			secret.SignRekey(c.id, old, rec)
		case restoreOnly, cur.Identity.Equal(c.id.Public()):
			return false, nil
		case old != nil && cur.Identity.Equal(old.Public()):
			m.Role = cur.Role
			rec.Members = []protocol.Member{m}
			secret.SignRekey(c.id, old, rec)
		default:
			rec.Members = []protocol.Member{m}
			secret.SignRecord(c.id, rec)
		}
		if _, err := cs.chain.Apply(rec); err != nil {
			return false, err // not allowed: say why before the server does
		}
		err := c.api.do(ctx, "POST", "/api/conversations/"+conv.String()+"/members", map[string]b64{"record": rec.Marshal()}, nil)
		if IsCode(err, "stale_chain") && try < 3 {
			continue
		}
		if err != nil {
			return false, err
		}
		return true, c.syncChain(ctx, cs)
	}
}

// chainRefused raises the alarm for membership records the device refused
// (a record that does not decode, e.g. a key of small order or a
// non-canonical signature; a chain that forks, rolls back, or holds a
// record its author's keys did not sign or may not make) and returns err.
func (c *Client) chainRefused(conv protocol.ConversationID, err error) error {
	kind := AlarmServerData
	switch {
	case errors.Is(err, protocol.ErrFork):
		kind = AlarmChainFork
	case errors.Is(err, protocol.ErrRollback):
		kind = AlarmChainRollback
	case errors.Is(err, protocol.ErrUnauthorized):
		kind = AlarmBadSignature
	}
	if aerr := c.raise(Alarm{Kind: kind, Conversation: conv, Detail: "the server sent membership records that this device refuses: " + err.Error()}); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

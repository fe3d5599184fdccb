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
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return err
	}
	old := c.id
	if oldSeed != nil {
		var err error
		if old, err = secret.IdentityFromSeed(oldSeed); err != nil {
			return err
		}
	}
	return c.eachConversation(ctx, func(conv protocol.ConversationID) error {
		if err := c.rekeyIn(ctx, conv, old, true); err != nil {
			return fmt.Errorf("rekey back in %s: %w", conv, err)
		}
		return nil
	})
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
// when the account is not a member.
func (c *Client) rekeyIn(ctx context.Context, conv protocol.ConversationID, old *secret.IdentityPrivateKey, restoreOnly bool) error {
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
		cur, ok := cs.chain.Member(c.acct.User)
		if !ok {
			return nil
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
			return nil
		case old != nil && cur.Identity.Equal(old.Public()):
			m.Role = cur.Role
			rec.Members = []protocol.Member{m}
			secret.SignRekey(c.id, old, rec)
		default:
			rec.Members = []protocol.Member{m}
			secret.SignRecord(c.id, rec)
		}
		if _, err := cs.chain.Apply(rec); err != nil {
			return err // not allowed: say why before the server does
		}
		err := c.api.do(ctx, "POST", "/api/conversations/"+conv.String()+"/members", map[string]b64{"record": rec.Marshal()}, nil)
		if IsCode(err, "stale_chain") && try < 3 {
			continue
		}
		if err != nil {
			return err
		}
		return c.syncChain(ctx, cs)
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

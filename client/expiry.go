package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Key lifetimes on the device (protocol.md §5.3 and §8.6). A private key or
// message key is erased once no honest party can need it any more, so a
// later compromise of the device, or a message the server withheld and
// delivers late, does not open what it could have opened before:
//
//   - a replaced signed pre-key: protocol.SignedPreKeyGrace after its
//     replacement (one whose upload was never confirmed: after its creation);
//   - last-resort keys: the current one, and the one it replaced for
//     protocol.LastResortGrace; every other one at once;
//   - a skipped message key: secret.SkippedKeyMaxAge after it was stored;
//   - an epoch's state: secret.SupersededEpochMaxAge after the device first
//     held a later epoch of the conversation, or left it.
//
// The erasing runs after the device has processed every event the server
// had for it (so a distribution sealed to a key about to go is opened
// first), at most once per expireEvery seconds.
const expireEvery = 3600

// ErrExpired is the class of a message that arrived after this device had
// erased its key by the lifetimes above: a skipped key that expired, or an
// epoch that did (its decrypt failure's Reason is "expired"). Below a chain's
// expiry mark a replay of an old message is reported so too.
var ErrExpired = secret.ErrExpired

// epochExpiredError is a message in an epoch this device erased. It is
// also errNoSession: the device holds no state for the epoch.
type epochExpiredError struct {
	conv protocol.ConversationID
	n    uint64
}

func (e *epochExpiredError) Error() string {
	return fmt.Sprintf("epoch %d of %s expired on this device: its keys were erased %d days after a later epoch began",
		e.n, e.conv, secret.SupersededEpochMaxAge/86400)
}

func (e *epochExpiredError) Is(target error) bool {
	return target == ErrExpired || target == errNoSession
}

// raiseExpired records a message that came after its key expired: an
// honest server delivers a conversation's messages in order and never a
// week late, so it was held back (or replayed).
func (c *Client) raiseExpired(conv protocol.ConversationID, seq uint64) error {
	return c.raise(Alarm{Kind: AlarmServerData, Conversation: conv,
		Detail: fmt.Sprintf("message %d arrived after this device had erased its key (kept %d days): the server held it back or replayed it",
			seq, secret.SkippedKeyMaxAge/86400)})
}

// epochLife is what the device remembers of the lifetimes of a
// conversation's epochs (storage key expiry/CONV).
type epochLife struct {
	// Below: every epoch under it has expired; its state is erased and it
	// is never opened again (opening it anew would restart its chains and
	// make old messages look new, §7.4).
	Below uint64 `json:"below,omitempty"`
	// Superseded holds, per held epoch, when the device first saw it
	// superseded (Unix seconds).
	Superseded map[uint64]int64 `json:"superseded,omitempty"`
}

func expiryKey(id protocol.ConversationID) string { return "expiry/" + id.String() }

// life returns a conversation's epoch lifetimes (cached).
func (c *Client) life(id protocol.ConversationID) (*epochLife, error) {
	if l := c.lives[id]; l != nil {
		return l, nil
	}
	l := &epochLife{}
	b, err := c.st.Get(expiryKey(id))
	switch {
	case errors.Is(err, ErrNoValue):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, l); err != nil {
			return nil, fmt.Errorf("stored epoch lifetimes of %s: %w", id, err)
		}
	}
	if l.Superseded == nil {
		l.Superseded = map[uint64]int64{}
	}
	c.lives[id] = l
	return l, nil
}

// checkExpired refuses an epoch this device has erased.
func (c *Client) checkExpired(cs *convState, n uint64) error {
	l, err := c.life(cs.ID)
	if err != nil {
		return err
	}
	if n < l.Below {
		return &epochExpiredError{conv: cs.ID, n: n}
	}
	return nil
}

// upkeep runs, when due, the pre-key upkeep and the expiry of keys. It is
// called once the device has processed every event the server had.
func (c *Client) upkeep(ctx context.Context) error {
	now := c.now().Unix()
	if now-c.acct.Maintained > maintainEvery {
		if err := c.maintainPreKeys(ctx); err != nil {
			return err
		}
	}
	if err := c.purgeAllExpired(c.now().UnixMilli()); err != nil { // disappear.go
		return err
	}
	if c.expiredAt != 0 && now-c.expiredAt < expireEvery && now >= c.expiredAt {
		return nil
	}
	return c.expire(now)
}

// expire erases what has outlived its lifetime at Unix time now.
func (c *Client) expire(now int64) error {
	c.expiredAt = now
	if err := c.prunePreKeys(now); err != nil {
		return err
	}
	keys, err := c.st.List("epoch/")
	if err != nil {
		return err
	}
	held := map[protocol.ConversationID][]uint64{}
	for _, k := range keys {
		conv, num, ok := strings.Cut(strings.TrimPrefix(k, "epoch/"), "/")
		if !ok {
			continue
		}
		id, err := protocol.ParseConversationID(conv)
		if err != nil {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		held[id] = append(held[id], n)
	}
	for id, ns := range held {
		cs, err := c.conv(id)
		if err != nil {
			return err
		}
		if cs == nil {
			continue
		}
		slices.Sort(ns)
		if err := c.expireEpochs(cs, ns, now); err != nil {
			return err
		}
	}
	return nil
}

// expireEpochs applies the epoch and skipped-key lifetimes to the held
// epochs ns (ascending) of one conversation.
func (c *Client) expireEpochs(cs *convState, ns []uint64, now int64) error {
	l, err := c.life(cs.ID)
	if err != nil {
		return err
	}
	changed := false
	below := l.Below
	for _, n := range ns {
		if n < l.Below {
			continue // erased below
		}
		if cs.Left || n < cs.Epoch {
			at := l.Superseded[n]
			if at == 0 {
				at, l.Superseded[n], changed = now, now, true
			}
			if now-at > secret.SupersededEpochMaxAge {
				below = max(below, n+1)
				continue
			}
		}
		e, err := c.loadEpoch(cs, n)
		if err != nil {
			return err
		}
		if e != nil && e.ep.ExpireSkipped(now, secret.SkippedKeyMaxAge) {
			if err := c.saveEpoch(cs, n, e); err != nil {
				return err
			}
		}
	}
	if below > l.Below {
		l.Below = below
		for n := range l.Superseded {
			if n < below {
				delete(l.Superseded, n)
			}
		}
		changed = true
	}
	if changed {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		// The mark is stored before the states go: a crash in between
		// leaves states that are refused and erased at the next run.
		if err := c.st.Put(expiryKey(cs.ID), b); err != nil {
			return err
		}
	}
	for _, n := range ns {
		if n >= l.Below {
			break
		}
		delete(cs.epochs, n)
		delete(c.pend.epochs, epochRef{cs.ID, n})
		if err := c.st.Delete(epochKey(cs.ID, n)); err != nil {
			return err
		}
	}
	return nil
}

// currentLastResort returns the id of the last-resort key the server
// serves for this device. State from before the id was recorded is read by
// the upload order: the last-resort key follows the signed pre-key of the
// same bundle.
func (c *Client) currentLastResort() uint32 {
	if c.acct.LastResortID != 0 {
		return c.acct.LastResortID
	}
	if e := c.prekeys[c.acct.SignedPreKeyID+1]; e != nil && e.Kind == protocol.LastResortPreKey {
		return c.acct.SignedPreKeyID + 1
	}
	return 0
}

// prunePreKeys erases the signed pre-keys and last-resort keys that have
// outlived their lifetime (§5.3).
func (c *Client) prunePreKeys(now int64) error {
	curLR := c.currentLastResort()
	var prevLR uint32
	var prevSince int64
	var drop []uint32
	for id, e := range c.prekeys {
		// When the key stopped being current: its replacement, or, for a
		// key whose upload was never confirmed, its creation.
		since := e.Retired
		if since == 0 {
			since = e.Created
		}
		switch e.Kind {
		case protocol.SignedPreKey:
			if id != c.acct.SignedPreKeyID && now-since > protocol.SignedPreKeyGrace {
				drop = append(drop, id)
			}
		case protocol.LastResortPreKey:
			switch {
			case curLR == 0 || id == curLR: // without a known current key, erase none
			case now-since > protocol.LastResortGrace:
				drop = append(drop, id)
			case prevLR == 0 || since > prevSince || since == prevSince && id > prevLR:
				if prevLR != 0 {
					drop = append(drop, prevLR)
				}
				prevLR, prevSince = id, since
			default:
				drop = append(drop, id)
			}
		}
	}
	for _, id := range drop {
		if err := c.dropPreKey(id); err != nil {
			return err
		}
	}
	return nil
}

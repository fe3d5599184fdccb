package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Conversation state (protocol.md §7.6): the title, description and
// disappearing-message timer, kept by the server as one record encrypted
// under an epoch's state key and signed by the member device that made it.
// The device holds the last state it verified; it takes a newer version
// only, and only from a member; the state follows every new epoch (the
// device that makes an epoch re-publishes it), so a member or device that
// joins later reads it at once.

// Alarm kinds of conversation state.
const (
	// AlarmStateRollback: the server served a state older than the one
	// held, or two different states under one version.
	AlarmStateRollback = "state_rollback"
	// AlarmStateMissing: the server served the conversation without the
	// state this device holds for it.
	AlarmStateMissing = "state_missing"
	// AlarmStateInvalid: a state record that does not decode, is signed
	// by no member, does not verify or does not open.
	AlarmStateInvalid = "state_invalid"
)

// ErrNotMember is returned when this account may no longer write in a
// conversation (it left or was removed); what it received stays readable.
var ErrNotMember = errors.New("you are no longer a member of this conversation: it is kept read-only")

// stateView is the last conversation state this device verified.
type stateView struct {
	Version     uint64          `json:"version"`
	Epoch       uint64          `json:"epoch"` // the epoch of the record last seen for Version
	Title       string          `json:"title"`
	Description string          `json:"description,omitempty"`
	Timer       uint32          `json:"timer,omitempty"`
	Signer      protocol.UserID `json:"signer"` // who made Version
	Time        int64           `json:"time"`
	Ref         string          `json:"ref"` // SHA-256 of the record last accepted (hex)
}

func (v *stateView) content() protocol.StateContent {
	return protocol.StateContent{Title: v.Title, Description: v.Description, Timer: v.Timer}
}

// title returns the conversation's title: from its state, or, for a
// conversation from before states, from its last title message.
func (cs *convState) title() string {
	if cs.State != nil {
		return cs.State.Title
	}
	return cs.Title
}

func stateRef(enc []byte) string {
	h := sha256.Sum256(enc)
	return hex.EncodeToString(h[:])
}

// acceptState checks the state record the server serves as the
// conversation's latest (enc, empty for none) and takes it if it is
// newer than the one held (§7.6, "What a receiver checks"). A state it
// cannot read (an epoch it does not hold) is left for later; one that
// breaks a rule raises an alarm and is refused. Only storage and network
// errors are returned.
func (c *Client) acceptState(ctx context.Context, cs *convState, enc []byte) error {
	if len(enc) == 0 {
		if cs.State == nil {
			return nil
		}
		return c.alarmOnce(cs, "state-missing", Alarm{Kind: AlarmStateMissing,
			Detail: fmt.Sprintf("The server no longer serves this conversation's state (version %d held here); the title %q is kept.", cs.State.Version, cs.State.Title)})
	}
	ref := stateRef(enc)
	if cs.State != nil && cs.State.Ref == ref {
		return nil
	}
	invalid := func(user protocol.UserID, detail string) error {
		return c.alarmOnce(cs, "state/"+ref, Alarm{Kind: AlarmStateInvalid, User: user, Detail: detail})
	}
	rec, err := protocol.ParseStateRecord(enc)
	if err != nil {
		return invalid(protocol.UserID{}, "The conversation's state does not decode: "+err.Error())
	}
	if rec.Conversation != cs.ID {
		return invalid(rec.Signer.User, "The server served another conversation's state.")
	}
	// Only an epoch this device holds: it opens each epoch made for it when
	// its session event comes, which the stream delivers before the state
	// event of that epoch; asking the server for any other would only
	// tell it which states the device cannot read.
	e, err := c.loadEpoch(cs, rec.Epoch)
	switch {
	case errors.Is(err, ErrExpired):
		return nil
	case err != nil:
		return err
	case e == nil || e.StateKey == nil:
		return nil // not an epoch of this device (yet), or one opened before states existed
	}
	id, ok := e.Identities[rec.Signer.User]
	if !ok {
		return invalid(rec.Signer.User, fmt.Sprintf("The conversation's state is signed by an account that was not a member in epoch %d.", rec.Epoch))
	}
	if err := c.refuseUnaccepted(rec.Signer.User, id, cs.ID, "the conversation's state"); err != nil {
		if errors.Is(err, ErrIdentityNotAccepted) {
			return nil
		}
		return err
	}
	key := secret.StateKey(e.StateKey)
	content, err := secret.OpenState(&key, rec, id)
	if err != nil {
		return invalid(rec.Signer.User, "The conversation's state does not verify or does not open: "+err.Error())
	}
	held := cs.State
	switch {
	case held != nil && rec.StateVersion < held.Version:
		return c.alarmOnce(cs, "state-old/"+ref, Alarm{Kind: AlarmStateRollback, User: rec.Signer.User,
			Detail: fmt.Sprintf("The server served version %d of the conversation's state; version %d is held here and kept.", rec.StateVersion, held.Version)})
	case held != nil && rec.StateVersion == held.Version:
		if content != held.content() {
			return c.alarmOnce(cs, "state-two/"+ref, Alarm{Kind: AlarmStateRollback, User: rec.Signer.User,
				Detail: fmt.Sprintf("Two different states carry version %d; the one held here is kept.", held.Version)})
		}
		held.Epoch, held.Ref = max(held.Epoch, rec.Epoch), ref // the same state, re-published
		return c.saveConv(cs)
	}
	// A new version: its signer must still be a member as far as this
	// device can tell (a removed member's state, made in an epoch from
	// before its removal, is refused once the removal is known).
	if err := c.syncChain(ctx, cs); err != nil && !IsCode(err, "not_found") {
		if errors.Is(err, ErrServerMisbehaved) {
			return nil
		}
		return err
	}
	if _, ok := cs.chain.Member(rec.Signer.User); !ok {
		return invalid(rec.Signer.User, fmt.Sprintf("The conversation's state version %d is signed by an account that is no longer a member; it is refused.", rec.StateVersion))
	}
	var prev *protocol.StateContent
	if held != nil {
		p := held.content()
		prev = &p
	}
	cs.State = &stateView{Version: rec.StateVersion, Epoch: rec.Epoch, Title: content.Title, Description: content.Description,
		Timer: content.Timer, Signer: rec.Signer.User, Time: rec.Time, Ref: ref}
	if err := c.stateLines(cs, prev, content, c.displayName(ctx, rec.Signer.User), rec.Time); err != nil {
		return err
	}
	return c.saveConv(cs)
}

// storedConvs loads every conversation this device holds state for, in
// the order of their ids.
func (c *Client) storedConvs() ([]*convState, error) {
	keys, err := c.st.List("conv/")
	if err != nil {
		return nil, err
	}
	var out []*convState
	for _, k := range keys {
		id, err := protocol.ParseConversationID(strings.TrimPrefix(k, "conv/"))
		if err != nil {
			continue
		}
		cs, err := c.conv(id)
		if err != nil {
			return nil, err
		}
		if cs != nil {
			out = append(out, cs)
		}
	}
	return out, nil
}

// convOrNew loads a conversation's state, or starts one for a
// conversation this device has not seen yet.
func (c *Client) convOrNew(id protocol.ConversationID) (*convState, error) {
	cs, err := c.conv(id)
	if cs == nil && err == nil {
		cs = c.newConv(id)
	}
	return cs, err
}

// refreshState fetches the conversation and checks its state.
func (c *Client) refreshState(ctx context.Context, cs *convState) error {
	ca, err := c.conversationState(ctx, cs)
	if err != nil {
		if errors.Is(err, ErrNotMember) {
			return nil
		}
		return err
	}
	return c.acceptState(ctx, cs, ca.State)
}

// sealState makes the state record of content, version version, under
// epoch n (whose entry e this device holds).
func (c *Client) sealState(cs *convState, n uint64, e *epochEntry, version uint64, content protocol.StateContent) ([]byte, error) {
	if e.StateKey == nil {
		return nil, fmt.Errorf("epoch %d of %s has no state key", n, cs.ID)
	}
	key := secret.StateKey(e.StateKey)
	rec, err := secret.SealState(c.id, &key, protocol.StateHeader{Conversation: cs.ID, Epoch: n, StateVersion: version, Signer: c.ref(), Time: c.now().UnixMilli()}, content)
	if err != nil {
		return nil, err
	}
	return rec.Marshal(), nil
}

// republish seals the held state under epoch n, if there is one (for a
// new epoch's session).
func (c *Client) republish(cs *convState, n uint64, e *epochEntry) ([]byte, error) {
	if cs.State == nil || e.StateKey == nil {
		return nil, nil
	}
	return c.sealState(cs, n, e, cs.State.Version, cs.State.content())
}

// catchUpState re-publishes the held state under epoch n, which this
// device may send in, when the server's latest state is under an older
// epoch (the epoch's maker could not read it). Another member doing the
// same first is not an error.
func (c *Client) catchUpState(ctx context.Context, cs *convState, ca convAnswer, n uint64, e *epochEntry) error {
	if cs.State == nil || e.StateKey == nil || len(ca.State) == 0 || ca.RotationRequired || ca.Epoch != n {
		return nil
	}
	rec, err := protocol.ParseStateRecord(ca.State)
	if err != nil || rec.Epoch >= n || rec.StateVersion != cs.State.Version || stateRef(ca.State) != cs.State.Ref {
		return nil
	}
	enc, err := c.republish(cs, n, e)
	if err != nil {
		return err
	}
	err = c.api.do(ctx, "PUT", "/api/conversations/"+cs.ID.String()+"/state", map[string]b64{"state": enc}, nil)
	if IsCode(err, "stale_state") || IsCode(err, "rotation_required") {
		return nil
	}
	if err != nil {
		return err
	}
	cs.State.Epoch, cs.State.Ref = n, stateRef(enc)
	return c.saveConv(cs)
}

// Rename sets a conversation's title: a new version of its state, sealed
// under the epoch this device sends in and signed by this device. Every
// current member and device, and every later one, reads it.
func (c *Client) Rename(ctx context.Context, conv protocol.ConversationID, title string) error {
	if title == "" || len(title) > protocol.MaxTitle || !utf8.ValidString(title) {
		return fmt.Errorf("a title is 1 to %d bytes of UTF-8 text", protocol.MaxTitle)
	}
	return c.changeState(ctx, conv, func(sc *protocol.StateContent) error {
		sc.Title = title
		return nil
	})
}

// changeState makes the next version of a conversation's state: the held
// content with edit applied (a conversation without a state starts from an
// empty one), sealed under the epoch this device sends in, signed by this
// device and posted; the change is a line of the timeline.
func (c *Client) changeState(ctx context.Context, conv protocol.ConversationID, edit func(*protocol.StateContent) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return err
	}
	cs, err := c.convOrNew(conv)
	if err != nil {
		return err
	}
	if err := c.stillMember(ctx, cs); err != nil {
		return err
	}
	for try := 0; ; try++ {
		if err := c.trustedBeforeSync(cs); err != nil {
			return err
		}
		e, n, err := c.current(ctx, cs)
		if err != nil {
			return err
		}
		if err := c.trusted(cs); err != nil {
			return err
		}
		if e.StateKey == nil { // an epoch from before states: make the next one
			if err := c.rotate(ctx, cs, n+1); err != nil && !IsCode(err, "epoch_taken") {
				return err
			}
			continue
		}
		var prev *protocol.StateContent
		next, version := protocol.StateContent{Title: cs.title()}, uint64(1)
		if cs.State != nil {
			held := cs.State.content()
			prev, next, version = &held, held, cs.State.Version+1
		}
		if err := edit(&next); err != nil {
			return err
		}
		enc, err := c.sealState(cs, n, e, version, next)
		if err != nil {
			return err
		}
		err = c.api.do(ctx, "PUT", "/api/conversations/"+cs.ID.String()+"/state", map[string]b64{"state": enc}, nil)
		if (IsCode(err, "stale_state") || IsCode(err, "rotation_required")) && try < 3 {
			if err := c.refreshState(ctx, cs); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		now := c.now().UnixMilli()
		cs.State = &stateView{Version: version, Epoch: n, Title: next.Title, Description: next.Description, Timer: next.Timer,
			Signer: c.acct.User, Time: now, Ref: stateRef(enc)}
		if err := c.stateLines(cs, prev, next, c.acct.Username, now); err != nil {
			return err
		}
		return c.saveConv(cs)
	}
}

// stillMember refuses to write in a conversation this account left or was
// removed from (ErrNotMember), after checking the membership chain: the
// account may have been added again since.
func (c *Client) stillMember(ctx context.Context, cs *convState) error {
	if !cs.Left {
		return nil
	}
	if err := c.syncChain(ctx, cs); err != nil && !IsCode(err, "not_found") {
		return err
	}
	// The verified chain decides, not the server's word (an event, a
	// 404): this account may have been added again.
	if cs.chain != nil {
		if _, ok := cs.chain.Member(c.acct.User); ok {
			cs.Left = false
			return c.saveConv(cs)
		}
	}
	return fmt.Errorf("%w (%s)", ErrNotMember, cs.ID)
}

package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// CreateConversation writes the conversation, its genesis record, its
// members and its first session in one transaction.
//
// Locks: the new conversation row (a concurrent create of the same id
// waits, then finds it taken), then the member users in id order, so that
// a concurrent first bundle of a member's device either commits before the
// coverage check (and is seen: the keys must cover it) or after this
// commit (and then sees the conversation and marks it rotation-required).
func (s *Store) CreateConversation(ctx context.Context, nc store.NewConversation) error {
	if err := checkNewConversation(&nc); err != nil {
		return fmt.Errorf("sqlstore: create conversation: %w", err)
	}
	return s.write(ctx, "create conversation", func(t *wtx) error {
		res, err := t.exec(`INSERT INTO conversations (id, created_at, chain_seq, chain_head, epoch, epoch_started_at) VALUES (?, ?, 0, ?, 1, ?) ON CONFLICT DO NOTHING`,
			idArg(nc.ID), nc.Now, nc.Head[:], nc.Now)
		if err != nil {
			return err
		}
		if err := oneRow(res, store.ErrConflict, "conversation id taken"); err != nil {
			return err
		}
		if err := t.step("conversation"); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO records (conversation_id, seq, encoded) VALUES (?, 0, ?)`, idArg(nc.ID), nc.Genesis.Encoded); err != nil {
			return err
		}
		if err := t.step("record"); err != nil {
			return err
		}
		users := make([]protocol.UserID, len(nc.Members))
		for i, m := range nc.Members {
			users[i] = m.User
		}
		if err := t.lockUsers(users, true); err != nil {
			return err
		}
		if err := t.step("users"); err != nil {
			return err
		}
		if err := t.checkCoverage(users, nc.Session, nc.Now); err != nil {
			return err
		}
		if err := t.step("coverage"); err != nil {
			return err
		}
		if err := t.insertSession(nc.Session, nc.Now); err != nil {
			return err
		}
		if err := t.step("session"); err != nil {
			return err
		}
		if nc.State != nil {
			if _, err := t.exec(`UPDATE conversations SET state = ?, state_epoch = ?, state_version = ? WHERE id = ?`,
				nc.State.Encoded, i64(nc.State.Epoch), i64(nc.State.Version), idArg(nc.ID)); err != nil {
				return err
			}
		}
		evs := []newEvent{{kind: store.EventMembership, conv: convPtr(nc.ID), seq: 0, at: nc.Now}}
		for _, k := range nc.Session.Keys {
			evs = append(evs, newEvent{kind: store.EventSession, device: devPtr(k.Device), conv: convPtr(nc.ID), epoch: 1, at: nc.Now})
		}
		if nc.State != nil {
			evs = append(evs, newEvent{kind: store.EventState, conv: convPtr(nc.ID), epoch: 1, seq: nc.State.Version, at: nc.Now})
		}
		first, err := t.emit(evs)
		if err != nil {
			return err
		}
		if err := t.step("events"); err != nil {
			return err
		}
		// Members join at the conversation's first event. Inserted after
		// the counter: the conversation row is new and held by this
		// transaction, so nothing else can conflict with these rows.
		for _, m := range nc.Members {
			if _, err := t.exec(`INSERT INTO members (conversation_id, user_id, role, joined_event_id) VALUES (?, ?, ?, ?)`,
				idArg(nc.ID), idArg(m.User), int(m.Role), first); err != nil {
				return err
			}
		}
		return t.step("members")
	})
}

func checkNewConversation(nc *store.NewConversation) error {
	switch {
	case nc.ID.IsZero():
		return fmt.Errorf("%w: zero conversation id", store.ErrInvalid)
	case nc.Genesis.Seq != 0:
		return fmt.Errorf("%w: genesis record seq is %d, want 0", store.ErrInvalid, nc.Genesis.Seq)
	case len(nc.Genesis.Encoded) == 0:
		return fmt.Errorf("%w: empty genesis record", store.ErrInvalid)
	case len(nc.Members) == 0:
		return fmt.Errorf("%w: no members", store.ErrInvalid)
	case nc.Session.Epoch != 1:
		return fmt.Errorf("%w: first epoch is %d, want 1", store.ErrInvalid, nc.Session.Epoch)
	case nc.Session.ChainSeq != 0:
		return fmt.Errorf("%w: first session names chain seq %d, want 0", store.ErrInvalid, nc.Session.ChainSeq)
	case nc.Session.Conversation != nc.ID:
		return fmt.Errorf("%w: session of another conversation", store.ErrInvalid)
	}
	if nc.State != nil {
		if err := checkState(nc.State, 1); err != nil {
			return err
		}
	}
	seen := make(map[protocol.UserID]bool, len(nc.Members))
	for _, m := range nc.Members {
		if seen[m.User] {
			return fmt.Errorf("%w: member %s listed twice", store.ErrInvalid, m.User)
		}
		seen[m.User] = true
	}
	return checkSession(&nc.Session)
}

func checkSession(s *store.Session) error {
	if len(s.Encoded) == 0 {
		return fmt.Errorf("%w: empty distribution", store.ErrInvalid)
	}
	for _, k := range s.Keys {
		if len(k.InitiatorEphemeral) == 0 || len(k.Ciphertext) == 0 {
			return fmt.Errorf("%w: session key for device %s lacks its initiator ephemeral key or ciphertext", store.ErrInvalid, k.Device)
		}
	}
	return nil
}

// lockUsers checks that users exist (else ErrNotFound) and, with lock,
// locks their rows in id order.
func (t *wtx) lockUsers(users []protocol.UserID, lock bool) error {
	sorted := slices.Clone(users)
	slices.SortFunc(sorted, func(a, b protocol.UserID) int { return bytes.Compare(a[:], b[:]) })
	sorted = slices.Compact(sorted)
	for part := range slices.Chunk(sorted, idsPerStatement) {
		args := make([]any, len(part))
		for i, u := range part {
			args[i] = idArg(u)
		}
		q := `SELECT id FROM users WHERE id IN ` + placeholders(1, len(part)) + ` ORDER BY id`
		if lock {
			q += t.lockSuffix()
		}
		rows, err := t.query(q, args...)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n != len(part) {
			return fmt.Errorf("member user: %w", store.ErrNotFound)
		}
	}
	return nil
}

// memberDevice is a device a session may cover.
type memberDevice struct {
	user     protocol.UserID
	required bool // false: near its dormancy time, it may be covered or not
}

// memberDevices returns the devices a session may cover: the active
// devices with a bundle of users that their account's device list, if it
// has one, names (protocol.md §12), and that are not dormant (§5.3) at now
// (Unix ms), by the public creation times of their signed pre-key and
// last-resort key, as sealers judge them. A sealer's clock may differ from
// the server's: a device dormant at now + DormancySlack but not at
// now − DormancySlack may be covered or left out.
func (t *wtx) memberDevices(users []protocol.UserID, now int64) (map[protocol.DeviceID]memberDevice, error) {
	out := make(map[protocol.DeviceID]memberDevice)
	for part := range slices.Chunk(users, idsPerStatement) {
		args := make([]any, len(part))
		for i, u := range part {
			args[i] = idArg(u)
		}
		rows, err := t.query(`SELECT id, user_id, signed_prekey, last_resort FROM devices WHERE user_id IN `+placeholders(1, len(part))+` AND revoked = FALSE AND signed_prekey IS NOT NULL AND `+listedSQL("devices"), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var d protocol.DeviceID
			var u protocol.UserID
			var spk, lr []byte
			if err := rows.Scan(scanID(&d), scanID(&u), &spk, &lr); err != nil {
				rows.Close()
				return nil, err
			}
			if dormant(spk, lr, now-1000*protocol.DormancySlack) {
				continue
			}
			out[d] = memberDevice{user: u, required: !dormant(spk, lr, now+1000*protocol.DormancySlack)}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkCoverage checks that the keys of sess cover exactly the member
// devices of users at now (a key naming the wrong user counts as extra; a
// device near its dormancy time may be covered or not), and that the
// creator is one of them.
func (t *wtx) checkCoverage(users []protocol.UserID, sess store.Session, now int64) error {
	want, err := t.memberDevices(users, now)
	if err != nil {
		return err
	}
	ce := &store.CoverageError{}
	have := make(map[protocol.DeviceID]bool, len(sess.Keys))
	for _, k := range sess.Keys {
		m, ok := want[k.Device]
		if !ok || m.user != k.User || have[k.Device] {
			ce.Extra = append(ce.Extra, k.Device)
			continue
		}
		have[k.Device] = true
	}
	for d, m := range want {
		if m.required && !have[d] {
			ce.Missing = append(ce.Missing, d)
		}
	}
	if len(ce.Missing) > 0 || len(ce.Extra) > 0 {
		cmp := func(a, b protocol.DeviceID) int { return bytes.Compare(a[:], b[:]) }
		slices.SortFunc(ce.Missing, cmp)
		slices.SortFunc(ce.Extra, cmp)
		return ce
	}
	if !have[sess.Creator] {
		return fmt.Errorf("session creator %s: %w", sess.Creator, store.ErrNotMember)
	}
	return nil
}

func (t *wtx) insertSession(sess store.Session, now int64) error {
	if _, err := t.exec(`INSERT INTO sessions (conversation_id, epoch, chain_seq, creator, encoded, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		idArg(sess.Conversation), i64(sess.Epoch), i64(sess.ChainSeq), idArg(sess.Creator), sess.Encoded, now); err != nil {
		return err
	}
	const cols = 7
	for part := range slices.Chunk(sess.Keys, rowsPerStatement) {
		args := make([]any, 0, cols*len(part))
		for _, k := range part {
			args = append(args, idArg(sess.Conversation), i64(sess.Epoch), idArg(k.Device), idArg(k.User), int64(k.PreKeyID), k.InitiatorEphemeral, k.Ciphertext)
		}
		if _, err := t.exec(`INSERT INTO session_keys (conversation_id, epoch, device_id, user_id, prekey_id, initiator_ephemeral_key, ciphertext) VALUES `+
			placeholders(len(part), cols), args...); err != nil {
			return err
		}
	}
	return nil
}

// convState is a conversation row as a write transaction reads it.
type convState struct {
	id        protocol.ConversationID
	epoch     uint64
	startedAt int64
	inEpoch   int64
	lastSeq   uint64
	chainSeq  uint64
	required  bool
	reason    string
}

const convStateCols = `id, epoch, epoch_started_at, messages_in_epoch, last_seq, chain_seq, rotation_required, rotation_reason`

func scanConvState(r scanner) (convState, error) {
	var c convState
	err := r.Scan(scanID(&c.id), &c.epoch, &c.startedAt, &c.inEpoch, &c.lastSeq, &c.chainSeq, &c.required, &c.reason)
	return c, err
}

// lockConversation reads and locks one conversation row.
func (t *wtx) lockConversation(id protocol.ConversationID) (convState, error) {
	c, err := scanConvState(t.queryRow(`SELECT `+convStateCols+` FROM conversations WHERE id = ?`+t.lockSuffix(), idArg(id)))
	if err != nil {
		return c, notFound(err, "conversation")
	}
	return c, nil
}

// currentMembers returns the current members of a conversation.
func (t *wtx) currentMembers(id protocol.ConversationID) ([]store.MemberRow, error) {
	rows, err := t.query(`SELECT user_id, role FROM members WHERE conversation_id = ? AND left_event_id IS NULL ORDER BY user_id`, idArg(id))
	if err != nil {
		return nil, err
	}
	return scanMembers(rows)
}

func scanMembers(rows *sql.Rows) ([]store.MemberRow, error) {
	defer rows.Close()
	var out []store.MemberRow
	for rows.Next() {
		var m store.MemberRow
		var role int
		if err := rows.Scan(scanID(&m.User), &role); err != nil {
			return nil, err
		}
		m.Role = protocol.Role(role)
		out = append(out, m)
	}
	return out, rows.Err()
}

// AddSession stores the next epoch of a conversation; see store.NewSession.
//
// Locks: the conversation row, so two rotations of one conversation are
// serialized and the second sees the first's epoch. A concurrent first
// bundle of a member's device that this coverage check did not see marks
// the conversation rotation-required after this commits (it waits on the
// same row).
func (s *Store) AddSession(ctx context.Context, ns store.NewSession) error {
	sess := ns.Session
	if err := checkSession(&sess); err != nil {
		return fmt.Errorf("sqlstore: add session: %w", err)
	}
	if ns.State != nil {
		if err := checkState(ns.State, sess.Epoch); err != nil {
			return fmt.Errorf("sqlstore: add session: %w", err)
		}
	}
	return s.write(ctx, "add session", func(t *wtx) error {
		c, err := t.lockConversation(sess.Conversation)
		if err != nil {
			return err
		}
		if sess.Epoch != c.epoch+1 {
			return &store.EpochError{Err: store.ErrEpochTaken, Current: c.epoch}
		}
		if sess.ChainSeq != c.chainSeq {
			return fmt.Errorf("session names chain seq %d, conversation is at %d: %w", sess.ChainSeq, c.chainSeq, store.ErrStaleChain)
		}
		if err := t.step("conversation"); err != nil {
			return err
		}
		members, err := t.currentMembers(sess.Conversation)
		if err != nil {
			return err
		}
		users := make([]protocol.UserID, len(members))
		for i, m := range members {
			users[i] = m.User
		}
		if err := t.checkCoverage(users, sess, ns.Now); err != nil {
			return err
		}
		if err := t.step("coverage"); err != nil {
			return err
		}
		if ns.State != nil {
			_, version, err := t.state(sess.Conversation)
			if err != nil {
				return err
			}
			if ns.State.Version < version {
				return fmt.Errorf("state version %d, stored %d: %w", ns.State.Version, version, store.ErrStaleState)
			}
		}
		if err := t.insertSession(sess, ns.Now); err != nil {
			return err
		}
		if err := t.step("session"); err != nil {
			return err
		}
		if ns.State != nil {
			if _, err := t.exec(`UPDATE conversations SET state = ?, state_epoch = ?, state_version = ? WHERE id = ?`,
				ns.State.Encoded, i64(ns.State.Epoch), i64(ns.State.Version), idArg(sess.Conversation)); err != nil {
				return err
			}
		}
		if _, err := t.exec(`UPDATE conversations SET epoch = ?, epoch_started_at = ?, messages_in_epoch = 0, rotation_required = FALSE, rotation_reason = '' WHERE id = ?`,
			i64(sess.Epoch), ns.Now, idArg(sess.Conversation)); err != nil {
			return err
		}
		if err := t.step("epoch"); err != nil {
			return err
		}
		evs := make([]newEvent, 0, len(sess.Keys)+1)
		for _, k := range sess.Keys {
			evs = append(evs, newEvent{kind: store.EventSession, device: devPtr(k.Device), conv: convPtr(sess.Conversation), epoch: sess.Epoch, at: ns.Now})
		}
		if ns.State != nil {
			evs = append(evs, newEvent{kind: store.EventState, conv: convPtr(sess.Conversation), epoch: sess.Epoch, seq: ns.State.Version, at: ns.Now})
		}
		if _, err := t.emit(evs); err != nil {
			return err
		}
		return t.step("events")
	})
}

// state returns the epoch and version of a conversation's stored state
// (0, 0 if none).
func (t *wtx) state(id protocol.ConversationID) (epoch, version uint64, err error) {
	err = t.queryRow(`SELECT state_epoch, state_version FROM conversations WHERE id = ?`, idArg(id)).Scan(&epoch, &version)
	return epoch, version, err
}

func checkState(st *store.StateRow, epoch uint64) error {
	switch {
	case len(st.Encoded) == 0:
		return fmt.Errorf("%w: empty state", store.ErrInvalid)
	case st.Version == 0:
		return fmt.Errorf("%w: state version 0", store.ErrInvalid)
	case st.Epoch != epoch:
		return fmt.Errorf("%w: state of epoch %d with epoch %d", store.ErrInvalid, st.Epoch, epoch)
	}
	return nil
}

// SetState stores a conversation's new state; see store.StateUpdate.
func (s *Store) SetState(ctx context.Context, u store.StateUpdate) error {
	if err := checkState(&u.State, u.State.Epoch); err != nil {
		return fmt.Errorf("sqlstore: set state: %w", err)
	}
	return s.write(ctx, "set state", func(t *wtx) error {
		c, err := t.lockConversation(u.Conversation)
		if err != nil {
			return err
		}
		var one int
		err = t.queryRow(`SELECT 1 FROM members WHERE conversation_id = ? AND user_id = ? AND left_event_id IS NULL`, idArg(u.Conversation), idArg(u.User)).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotMember
		}
		if err != nil {
			return err
		}
		if u.State.Epoch != c.epoch || c.required {
			return &store.EpochError{Err: store.ErrStaleEpoch, Current: c.epoch}
		}
		epoch, version, err := t.state(u.Conversation)
		if err != nil {
			return err
		}
		if u.State.Version < version || u.State.Version == version && u.State.Epoch <= epoch {
			return fmt.Errorf("state version %d in epoch %d, stored %d in epoch %d: %w", u.State.Version, u.State.Epoch, version, epoch, store.ErrStaleState)
		}
		if _, err := t.exec(`UPDATE conversations SET state = ?, state_epoch = ?, state_version = ? WHERE id = ?`,
			u.State.Encoded, i64(u.State.Epoch), i64(u.State.Version), idArg(u.Conversation)); err != nil {
			return err
		}
		_, err = t.emit([]newEvent{{kind: store.EventState, conv: convPtr(u.Conversation), epoch: u.State.Epoch, seq: u.State.Version, at: u.Now}})
		return err
	})
}

// ChangeMembership appends a membership record; see store.MembershipChange.
func (s *Store) ChangeMembership(ctx context.Context, mc store.MembershipChange) error {
	if mc.Record.Seq != mc.PrevSeq+1 {
		return fmt.Errorf("sqlstore: change membership: %w: record seq %d does not follow %d", store.ErrInvalid, mc.Record.Seq, mc.PrevSeq)
	}
	if len(mc.Record.Encoded) == 0 {
		return fmt.Errorf("sqlstore: change membership: %w: empty record", store.ErrInvalid)
	}
	after := make(map[protocol.UserID]protocol.Role, len(mc.Members))
	for _, m := range mc.Members {
		if _, dup := after[m.User]; dup {
			return fmt.Errorf("sqlstore: change membership: %w: member %s listed twice", store.ErrInvalid, m.User)
		}
		after[m.User] = m.Role
	}
	return s.write(ctx, "change membership", func(t *wtx) error {
		c, err := t.lockConversation(mc.Conversation)
		if err != nil {
			return err
		}
		if mc.PrevSeq != c.chainSeq {
			return fmt.Errorf("record follows seq %d, chain is at %d: %w", mc.PrevSeq, c.chainSeq, store.ErrStaleChain)
		}
		before, err := t.currentMembers(mc.Conversation)
		if err != nil {
			return err
		}
		var added []store.MemberRow
		var removed []protocol.UserID
		was := make(map[protocol.UserID]protocol.Role, len(before))
		for _, m := range before {
			was[m.User] = m.Role
			if role, ok := after[m.User]; !ok {
				removed = append(removed, m.User)
			} else if role != m.Role {
				if _, err := t.exec(`UPDATE members SET role = ? WHERE conversation_id = ? AND user_id = ? AND left_event_id IS NULL`,
					int(role), idArg(mc.Conversation), idArg(m.User)); err != nil {
					return err
				}
			}
		}
		for _, m := range mc.Members {
			if _, ok := was[m.User]; !ok {
				added = append(added, m)
			}
		}
		if len(added) > 0 {
			users := make([]protocol.UserID, len(added))
			for i, m := range added {
				users[i] = m.User
			}
			// Existence only: the rotation this change requires covers
			// whatever devices they add meanwhile.
			if err := t.lockUsers(users, false); err != nil {
				return err
			}
		}
		if _, err := t.exec(`INSERT INTO records (conversation_id, seq, encoded) VALUES (?, ?, ?)`,
			idArg(mc.Conversation), i64(mc.Record.Seq), mc.Record.Encoded); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE conversations SET chain_seq = ?, chain_head = ?, rotation_required = TRUE, rotation_reason = 'membership' WHERE id = ?`,
			i64(mc.Record.Seq), mc.Head[:], idArg(mc.Conversation)); err != nil {
			return err
		}
		// Events: the membership change (conversation-wide), removed to
		// each device of each removed member, then rotation_required.
		evs := []newEvent{{kind: store.EventMembership, conv: convPtr(mc.Conversation), seq: mc.Record.Seq, at: mc.Now}}
		for _, u := range removed {
			devs, err := t.activeDevices(u)
			if err != nil {
				return err
			}
			for _, d := range devs {
				evs = append(evs, newEvent{kind: store.EventRemoved, device: devPtr(d), conv: convPtr(mc.Conversation), user: userPtr(u), seq: mc.Record.Seq, at: mc.Now})
			}
		}
		evs = append(evs, newEvent{kind: store.EventRotation, conv: convPtr(mc.Conversation), epoch: c.epoch, reason: "membership", at: mc.Now})
		first, err := t.emit(evs)
		if err != nil {
			return err
		}
		// Spans of membership end and begin at the membership event. These
		// rows are guarded by the conversation row this transaction holds.
		for _, u := range removed {
			if _, err := t.exec(`UPDATE members SET left_event_id = ? WHERE conversation_id = ? AND user_id = ? AND left_event_id IS NULL`,
				first, idArg(mc.Conversation), idArg(u)); err != nil {
				return err
			}
		}
		for _, m := range added {
			if _, err := t.exec(`INSERT INTO members (conversation_id, user_id, role, joined_event_id) VALUES (?, ?, ?, ?)`,
				idArg(mc.Conversation), idArg(m.User), int(m.Role), first); err != nil {
				return err
			}
		}
		return nil
	})
}

// activeDevices lists a user's active devices.
func (t *wtx) activeDevices(u protocol.UserID) ([]protocol.DeviceID, error) {
	return deviceIDs(t.query(`SELECT id FROM devices WHERE user_id = ? AND revoked = FALSE ORDER BY id`, idArg(u)))
}

// deviceIDs reads the rows of a query that selects one device id.
func deviceIDs(rows *sql.Rows, err error) ([]protocol.DeviceID, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []protocol.DeviceID
	for rows.Next() {
		var d protocol.DeviceID
		if err := rows.Scan(scanID(&d)); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

const convCols = `c.id, c.created_at, c.chain_seq, c.chain_head, c.epoch, c.epoch_started_at, c.messages_in_epoch, c.rotation_required, c.rotation_reason, c.last_seq, c.state, c.state_epoch, c.state_version`

func scanConversation(r scanner) (store.Conversation, error) {
	var c store.Conversation
	var head, state []byte
	var st store.StateRow
	if err := r.Scan(scanID(&c.ID), &c.CreatedAt, &c.ChainSeq, &head, &c.Epoch, &c.EpochStartedAt, &c.MessagesInEpoch,
		&c.RotationRequired, &c.RotationReason, &c.LastSeq, &state, &st.Epoch, &st.Version); err != nil {
		return c, err
	}
	if len(head) != len(c.ChainHead) {
		return c, fmt.Errorf("chain head is %d bytes", len(head))
	}
	copy(c.ChainHead[:], head)
	if len(state) > 0 {
		st.Encoded = state
		c.State = &st
	}
	return c, nil
}

// Conversation returns a conversation's state.
func (s *Store) Conversation(ctx context.Context, id protocol.ConversationID) (store.Conversation, error) {
	c, err := scanConversation(s.queryRow(ctx, `SELECT `+convCols+` FROM conversations c WHERE c.id = ?`, idArg(id)))
	if err != nil {
		return c, fmt.Errorf("sqlstore: conversation: %w", notFound(err, "conversation"))
	}
	return c, nil
}

// Conversations lists the conversations user is a current member of.
func (s *Store) Conversations(ctx context.Context, user protocol.UserID) ([]store.Conversation, error) {
	rows, err := s.query(ctx, `SELECT `+convCols+` FROM conversations c JOIN members m ON m.conversation_id = c.id
		WHERE m.user_id = ? AND m.left_event_id IS NULL ORDER BY c.created_at, c.id`, idArg(user))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: conversations: %w", err)
	}
	out, err := collect(rows, scanConversation)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: conversations: %w", err)
	}
	return out, nil
}

// exists returns ErrNotFound unless the conversation exists.
func (s *Store) exists(ctx context.Context, id protocol.ConversationID) error {
	var one int
	return notFound(s.queryRow(ctx, `SELECT 1 FROM conversations WHERE id = ?`, idArg(id)).Scan(&one), "conversation")
}

// Members returns a conversation's current members. With a memo, the
// answer is remembered until the next write that may change it; the
// returned slice is then shared between callers, who must not modify it.
func (s *Store) Members(ctx context.Context, id protocol.ConversationID) ([]store.MemberRow, error) {
	var gen uint64
	if m := s.memo; m != nil {
		if ms, ok := m.memberRows(id); ok {
			return ms, nil
		}
		gen = m.gen.Load()
	}
	var at time.Time
	if r := s.pgr; r != nil {
		if ms, ok := r.memberRows(id); ok {
			return ms, nil
		}
		gen, at = r.gen.Load(), time.Now()
	}
	// One row per member, or one row of NULLs for a conversation without
	// current members; none for no conversation.
	rows, err := s.query(ctx, `SELECT m.user_id, m.role FROM conversations c
		LEFT JOIN members m ON m.conversation_id = c.id AND m.left_event_id IS NULL
		WHERE c.id = ? ORDER BY m.user_id`, idArg(id))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: members: %w", err)
	}
	defer rows.Close()
	found := false
	var ms []store.MemberRow
	for rows.Next() {
		found = true
		var user []byte
		var role *int
		if err := rows.Scan(&user, &role); err != nil {
			return nil, fmt.Errorf("sqlstore: members: %w", err)
		}
		if user == nil {
			continue
		}
		var mr store.MemberRow
		if err := scanID(&mr.User).Scan(user); err != nil {
			return nil, err
		}
		mr.Role = protocol.Role(*role)
		ms = append(ms, mr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: members: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("sqlstore: members: %w", store.ErrNotFound)
	}
	if m := s.memo; m != nil {
		m.putMembers(id, gen, ms)
	}
	s.pgr.putMembers(id, gen, at, ms)
	return ms, nil
}

// Records returns the membership records with seq >= from, in order.
func (s *Store) Records(ctx context.Context, id protocol.ConversationID, from uint64) ([]store.RecordRow, error) {
	if err := s.exists(ctx, id); err != nil {
		return nil, fmt.Errorf("sqlstore: records: %w", err)
	}
	rows, err := s.query(ctx, `SELECT seq, encoded FROM records WHERE conversation_id = ? AND seq >= ? ORDER BY seq`, idArg(id), i64(from))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: records: %w", err)
	}
	defer rows.Close()
	var out []store.RecordRow
	for rows.Next() {
		var r store.RecordRow
		if err := rows.Scan(&r.Seq, &r.Encoded); err != nil {
			return nil, fmt.Errorf("sqlstore: records: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: records: %w", err)
	}
	return out, nil
}

// SessionKeys returns one epoch with only device's key.
func (s *Store) SessionKeys(ctx context.Context, conv protocol.ConversationID, device protocol.DeviceID, epoch uint64) (store.Session, error) {
	var ss store.Session
	var k store.SessionKey
	var pk int64
	err := s.queryRow(ctx, `SELECT s.conversation_id, s.epoch, s.chain_seq, s.creator, s.encoded, s.created_at,
			k.device_id, k.user_id, k.prekey_id, k.initiator_ephemeral_key, k.ciphertext
		FROM sessions s JOIN session_keys k ON k.conversation_id = s.conversation_id AND k.epoch = s.epoch
		WHERE s.conversation_id = ? AND s.epoch = ? AND k.device_id = ?`, idArg(conv), i64(epoch), idArg(device)).Scan(
		scanID(&ss.Conversation), &ss.Epoch, &ss.ChainSeq, scanID(&ss.Creator), &ss.Encoded, &ss.CreatedAt,
		scanID(&k.Device), scanID(&k.User), &pk, &k.InitiatorEphemeral, &k.Ciphertext)
	if err != nil {
		return ss, fmt.Errorf("sqlstore: session keys: %w", notFound(err, "session key"))
	}
	k.PreKeyID = uint32(pk)
	ss.Keys = []store.SessionKey{k}
	return ss, nil
}

package client

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"sandi.dev/protocol"
)

// A server whose store was restored from a backup (or otherwise rolled
// back) has forgotten what it acknowledged after the backup, and numbers
// new events and messages from there again: a device that had read past
// that point would skip the new events (its cursor is ahead) and drop the
// new messages (their sequence numbers look like ones it holds). Every sync
// answer names the store's incarnation, which a restore changes, and its
// newest event id; this file is what the device does when either shows a
// rollback (api.md, "Sync").

// WarnServerRollback is the Warning (and AlarmServerRollback the Alarm)
// recorded when the server turns out to have been rolled back.
const (
	WarnServerRollback  = "server_rollback"
	AlarmServerRollback = "server_rollback"
)

// errResync ends the processing of a sync page that showed a rollback:
// the cursor was moved back, and reading starts again from there.
var errResync = errors.New("the server's store was rolled back: reading the event stream again")

// maxResyncs bounds how many rollbacks one Sync follows in a row.
const maxResyncs = 3

// checkIncarnation looks at a page before its events are processed. A page
// from an unchanged store returns nil (the first incarnation seen is
// adopted). A page that shows a rollback — another incarnation, a resume
// point, or a head behind this device's cursor — moves the cursor back to
// where the two histories agree (the resume point the server named, else
// 0), lets every conversation take sequence numbers it has seen again (the
// ratchets still drop what was already read), records a Warning and an
// Alarm, and returns errResync.
// rolledBack reports whether page shows a rollback, as checkIncarnation
// judges it.
func (c *Client) rolledBack(page *syncPage) bool {
	if page.Incarnation == "" {
		return false
	}
	known := c.acct.Incarnation
	return page.Resume != nil || known != "" && page.Incarnation != known || page.Head < c.acct.Cursor
}

func (c *Client) checkIncarnation(page *syncPage) error {
	if page.Incarnation == "" {
		return nil // a server that does not name incarnations
	}
	known := c.acct.Incarnation
	changed := known != "" && page.Incarnation != known
	behind := page.Head < c.acct.Cursor
	if page.Resume == nil && !changed && !behind {
		if known == "" {
			c.acct.Incarnation = page.Incarnation
			return c.saveAccount()
		}
		return nil
	}
	resume := int64(0)
	if page.Resume != nil && *page.Resume > 0 {
		resume = *page.Resume
	}
	resume = min(resume, c.acct.Cursor)
	ids, err := c.st.List("conv/")
	if err != nil {
		return err
	}
	for _, key := range ids {
		id, err := parseConvKey(key)
		if err != nil {
			continue
		}
		cs, err := c.conv(id)
		if err != nil || cs == nil {
			return err
		}
		cs.LastSeq = 0
		if err := c.saveConv(cs); err != nil {
			return err
		}
	}
	why := fmt.Sprintf("its newest event is %d and this device had read up to %d", page.Head, c.acct.Cursor)
	if changed || page.Resume != nil {
		why = "it now names another incarnation of its store"
	}
	detail := fmt.Sprintf("The server was restored from a backup or otherwise rolled back (%s): messages acknowledged after the backup may be missing on the server and on other devices, and this device reads the server's events again from %d. Messages this device holds that the server no longer has are kept and shown as lost.", why, resume)
	if err := c.raise(Alarm{Kind: AlarmServerRollback, Detail: detail}); err != nil {
		return err
	}
	c.warn(Warning{Kind: WarnServerRollback, User: c.acct.User})
	c.acct.Cursor = resume
	c.acct.Incarnation = page.Incarnation
	if err := c.saveAccount(); err != nil {
		return err
	}
	return errResync
}

func parseConvKey(key string) (protocol.ConversationID, error) {
	s, ok := strings.CutPrefix(key, "conv/")
	if !ok {
		return protocol.ConversationID{}, errors.New("not a conversation key")
	}
	return protocol.ParseConversationID(s)
}

// envelopeRef names a message's envelope in the history: two entries with
// one sequence number are the same message only if their refs match.
func envelopeRef(env []byte) string {
	h := sha256.Sum256(env)
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// liveHistory orders a conversation's history lines (in the order they
// were appended) by sequence number and removes duplicates. Two different
// messages under one sequence number mean the server was rolled back and
// numbered a new message like one this device already held: the one
// appended last is the server's; the earlier ones are marked Lost, get
// Seq 0 (the server no longer has them), and stay where they were, just
// before the message that took their number.
func liveHistory(lines []Message) []Message {
	type entry struct {
		m   Message
		seq uint64
		pos int
	}
	es := make([]entry, len(lines))
	for i, m := range lines {
		es[i] = entry{m, m.Seq, i}
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].seq < es[j].seq })
	out := make([]Message, 0, len(es))
	for i := 0; i < len(es); {
		j := i
		for j < len(es) && es[j].seq == es[i].seq {
			j++
		}
		live := es[j-1].m // appended last
		var lost []string
		for _, e := range es[i : j-1] {
			if e.m.Ref == live.Ref || e.m.Lost || slices.Contains(lost, e.m.Ref) {
				continue
			}
			lost = append(lost, e.m.Ref)
			m := e.m
			m.Lost, m.Seq = true, 0
			out = append(out, m)
		}
		out = append(out, live)
		i = j
	}
	return out
}

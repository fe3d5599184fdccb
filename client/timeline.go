package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"sandi.dev/protocol"
)

// The timeline of a conversation is its messages and, between them, lines
// that tell what happened to the conversation: a member added, removed or
// gone, a role changed, a new title, a new disappearing-message timer, a
// member's identity key changed. A device writes a line when it verifies
// the change (the membership chain, the state, its trust store), so a
// line says no more than the device checked; lines are kept on the device
// only (storage key timeline/CONV, one JSON line each) and placed after
// the messages the device had received when the change reached it.

// Kinds of timeline lines.
const (
	LineAdded    = "added"    // Actor added Users
	LineRemoved  = "removed"  // Actor removed Users
	LineLeft     = "left"     // Actor left
	LineRole     = "role"     // Actor made Users Role
	LineRenamed  = "renamed"  // Actor set the title to Title
	LineTimer    = "timer"    // Actor set the disappearing-message timer to Timer (0: off)
	LineIdentity = "identity" // the identity key of Users changed: compare safety numbers
)

// Line is one line of a conversation's timeline.
type Line struct {
	Conversation protocol.ConversationID `json:"conversation"`
	Kind         string                  `json:"kind"`
	Actor        string                  `json:"actor,omitempty"` // username of the member who made the change
	Users        []string                `json:"users,omitempty"` // usernames the change concerns (at most maxLineNames)
	More         int                     `json:"more,omitempty"`  // how many more it concerns
	Role         string                  `json:"role,omitempty"`
	Title        string                  `json:"title,omitempty"`
	Timer        uint32                  `json:"timer,omitempty"`
	Time         int64                   `json:"time"`     // Unix ms: the change's (its author's clock) or this device's
	AfterSeq     uint64                  `json:"afterSeq"` // shown after the messages up to this seq
}

// maxLineNames is how many usernames a line keeps and names before "and N
// others" (a device looks up at most that many for a change).
const maxLineNames = 5

// Text is the line as a sentence, with the names as given (a caller that
// prints to a terminal escapes it).
func (l Line) Text() string {
	users := names(l.Users, l.More)
	switch l.Kind {
	case LineAdded:
		return fmt.Sprintf("%s added %s", l.Actor, users)
	case LineRemoved:
		return fmt.Sprintf("%s removed %s", l.Actor, users)
	case LineLeft:
		return l.Actor + " left"
	case LineRole:
		return fmt.Sprintf("%s made %s %s", l.Actor, users, l.Role)
	case LineRenamed:
		return fmt.Sprintf("%s renamed the conversation to \"%s\"", l.Actor, l.Title)
	case LineTimer:
		if l.Timer == 0 {
			return l.Actor + " turned off disappearing messages"
		}
		return fmt.Sprintf("%s set disappearing messages to %s", l.Actor, FormatTimer(l.Timer))
	case LineIdentity:
		return fmt.Sprintf("the identity key of %s changed: compare safety numbers", users)
	}
	return l.Kind
}

func names(us []string, more int) string {
	switch n := len(us); {
	case n == 0:
		return ""
	case more > 0:
		return strings.Join(us, ", ") + fmt.Sprintf(" and %d others", more)
	case n == 1:
		return us[0]
	default:
		return strings.Join(us[:n-1], ", ") + " and " + us[n-1]
	}
}

// FormatTimer writes a timer in seconds the way people say it: "off",
// "30 seconds", "5 minutes", "1 hour", "1 day", "1 week", or a sum
// ("1 hour 30 minutes").
func FormatTimer(s uint32) string {
	if s == 0 {
		return "off"
	}
	units := []struct {
		n    uint32
		name string
	}{{604800, "week"}, {86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}}
	var parts []string
	for _, u := range units {
		if k := s / u.n; k > 0 {
			p := fmt.Sprintf("%d %s", k, u.name)
			if k > 1 {
				p += "s"
			}
			parts = append(parts, p)
			s -= k * u.n
		}
	}
	return strings.Join(parts, " ")
}

func timelineKey(conv protocol.ConversationID) string { return "timeline/" + conv.String() }

// addLine stores a line of cs, placed after the messages received so far,
// and keeps it for the result of the running Sync.
func (c *Client) addLine(cs *convState, l Line) error {
	l.Conversation, l.AfterSeq = cs.ID, cs.LastSeq
	if l.Time == 0 {
		l.Time = c.now().UnixMilli()
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if err := c.st.Append(timelineKey(cs.ID), append(b, '\n')); err != nil {
		return err
	}
	c.lines = append(c.lines, l)
	return nil
}

// OnLine sets a function that Listen calls, with the client locked, for
// each timeline line it writes (as onMessage for messages).
func (c *Client) OnLine(f func(Line)) {
	c.mu.Lock()
	c.onLine = f
	c.mu.Unlock()
}

// takeLines returns the lines written since the last call.
func (c *Client) takeLines() []Line {
	l := c.lines
	c.lines = nil
	return l
}

// stateLines writes the lines of a state change from prev (nil: none was
// held) to next, made by actor at time.
func (c *Client) stateLines(cs *convState, prev *protocol.StateContent, next protocol.StateContent, actor string, time int64) error {
	if prev != nil && prev.Title != next.Title {
		if err := c.addLine(cs, Line{Kind: LineRenamed, Actor: actor, Title: next.Title, Time: time}); err != nil {
			return err
		}
	}
	if prev != nil && prev.Timer != next.Timer || prev == nil && next.Timer != 0 {
		return c.addLine(cs, Line{Kind: LineTimer, Actor: actor, Timer: next.Timer, Time: time})
	}
	return nil
}

// chainLines writes the lines of membership records just verified.
func (c *Client) chainLines(ctx context.Context, cs *convState, recs []*protocol.Record) error {
	for _, r := range recs {
		l := Line{Actor: c.displayName(ctx, r.Author), Time: r.Time}
		var users []protocol.UserID
		switch r.Op {
		case protocol.OpAdd:
			l.Kind = LineAdded
			for _, m := range r.Members {
				users = append(users, m.User)
			}
		case protocol.OpRemove:
			l.Kind, users = LineRemoved, r.Users
		case protocol.OpLeave:
			l.Kind = LineLeft
		case protocol.OpRole:
			l.Kind = LineRole
			for _, m := range r.Members {
				users = append(users, m.User)
				l.Role = m.Role.String()
			}
		default:
			// The creation is the conversation itself (its members are
			// listed with it); a rekey's line comes from the trust store.
			continue
		}
		if len(users) > maxLineNames {
			users, l.More = users[:maxLineNames], len(users)-maxLineNames
		}
		for _, u := range users {
			l.Users = append(l.Users, c.displayName(ctx, u))
		}
		if err := c.addLine(cs, l); err != nil {
			return err
		}
	}
	return nil
}

// identityLine writes the line of a changed identity key in conv, or,
// for a change met outside a conversation, in every conversation held
// whose verified chain names the user.
func (c *Client) identityLine(user protocol.UserID, username string, conv protocol.ConversationID) error {
	l := Line{Kind: LineIdentity, Users: []string{username}}
	if conv != (protocol.ConversationID{}) {
		cs, err := c.conv(conv)
		if err != nil || cs == nil {
			return err
		}
		return c.addLine(cs, l)
	}
	held, err := c.storedConvs()
	if err != nil {
		return err
	}
	for _, cs := range held {
		if cs.chain == nil {
			continue
		}
		if _, ok := cs.chain.Member(user); ok {
			if err := c.addLine(cs, l); err != nil {
				return err
			}
		}
	}
	return nil
}

// Lines returns the stored timeline lines of a conversation, in the order
// they were written.
func (c *Client) Lines(conv protocol.ConversationID) ([]Line, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timelineLines(conv)
}

func (c *Client) timelineLines(conv protocol.ConversationID) ([]Line, error) {
	return jsonLines[Line](c.st, timelineKey(conv))
}

// jsonLines reads the value under key as one JSON value a line (a
// history, a timeline): nil when nothing is stored; a line that does not
// parse (a torn last line after a crash) is skipped.
func jsonLines[T any](st Storage, key string) ([]T, error) {
	b, err := st.Get(key)
	if errors.Is(err, ErrNoValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []T
	for _, line := range strings.Split(string(b), "\n") {
		var v T
		if line == "" || json.Unmarshal([]byte(line), &v) != nil {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// Item is one entry of a timeline: a message or a line.
type Item struct {
	Message *Message `json:"message,omitempty"`
	Line    *Line    `json:"line,omitempty"`
}

// Timeline returns a conversation's history (as History gives it) with
// its lines between the messages: each line after the messages up to its
// AfterSeq.
func (c *Client) Timeline(conv protocol.ConversationID) ([]Item, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	hist, err := c.history(conv)
	if err != nil {
		return nil, err
	}
	lines, err := c.timelineLines(conv)
	if err != nil {
		return nil, err
	}
	return mergeTimeline(hist, lines), nil
}

// mergeTimeline places each line before the first message whose seq is
// above the line's AfterSeq (lost messages, seq 0, stay where History
// puts them).
func mergeTimeline(hist []Message, lines []Line) []Item {
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].AfterSeq < lines[j].AfterSeq })
	out := make([]Item, 0, len(hist)+len(lines))
	i := 0
	for k := range hist {
		m := &hist[k]
		for i < len(lines) && m.Seq != 0 && lines[i].AfterSeq < m.Seq {
			out = append(out, Item{Line: &lines[i]})
			i++
		}
		out = append(out, Item{Message: m})
	}
	for ; i < len(lines); i++ {
		out = append(out, Item{Line: &lines[i]})
	}
	return out
}

package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// cmdTimer sets a conversation's disappearing-message timer (its state,
// protocol.md §7.6 and §13.10): a duration (30s, 5m, 1h, 1d, 1w, or Go's
// forms like 1h30m) or off.
func cmdTimer(ctx context.Context, e *cli, args []string) error {
	if len(args) != 2 {
		return usageError{"usage: sandi timer CONV DURATION|off (DURATION like 30s, 5m, 1h, 1d or 1w)"}
	}
	secs, err := parseTimer(args[1])
	if err != nil {
		return usageError{err.Error()}
	}
	id, err := e.conv(ctx, args[0])
	if err != nil {
		return err
	}
	if err := e.c.SetTimer(ctx, id, secs); err != nil {
		return err
	}
	text := "disappearing messages in " + id.String() + ": " + client.FormatTimer(secs)
	return e.out(map[string]any{"conversation": id, "timer": secs}, text)
}

// parseTimer reads a timer: "off" or "0" is 0; a duration is whole
// seconds from 1 second to 2^32-1; d and w (days, weeks) are accepted as
// the last unit.
func parseTimer(s string) (uint32, error) {
	if s == "off" || s == "0" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if n, unit := strings.TrimRight(s, "dw"), s[len(strings.TrimRight(s, "dw")):]; unit == "d" || unit == "w" {
		var k int64
		k, err = strconv.ParseInt(n, 10, 64)
		d = time.Duration(k) * 24 * time.Hour
		if unit == "w" {
			d *= 7
		}
		if k <= 0 || k > math.MaxUint32/86400 {
			err = fmt.Errorf("out of range")
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < time.Second || d%time.Second != 0 || d/time.Second > math.MaxUint32 {
		return 0, fmt.Errorf("a timer is off or a whole number of seconds from 1s up to about 136 years, like 30s, 5m, 1h, 1d or 1w; %q is not", s)
	}
	return uint32(d / time.Second), nil
}

// lineText is a timeline line as the terminal shows it: names and title
// escaped, as for messages.
func lineText(l client.Line) string {
	l.Actor, l.Title = untrustedName(l.Actor), untrusted(l.Title)
	users := make([]string, len(l.Users))
	for i, u := range l.Users {
		users[i] = untrustedName(u)
	}
	l.Users = users
	return l.Text()
}

// printLine prints a timeline line: "[conv] -- text", with its time when
// dated (history); --json as {"conversation": ID, "line": LINE}, LINE
// with the fields of client.Line.
func (e *cli) printLine(l client.Line, dated bool) error {
	head := "[" + l.Conversation.String()[:8] + "] "
	if dated {
		head += time.UnixMilli(l.Time).Local().Format("2006-01-02 15:04") + " "
	}
	return e.out(map[string]any{"conversation": l.Conversation, "line": l}, e.wrap(head+"-- "+lineText(l)))
}

// linesBefore prints and drops the lines of conv placed before a message
// of seq (all of them when seq is 0).
func (e *cli) linesBefore(lines *[]client.Line, conv protocol.ConversationID, seq uint64, dated bool) error {
	rest := (*lines)[:0]
	for _, l := range *lines {
		if l.Conversation == conv && (seq == 0 || l.AfterSeq < seq) {
			if err := e.printLine(l, dated); err != nil {
				return err
			}
			continue
		}
		rest = append(rest, l)
	}
	*lines = rest
	return nil
}

package main

import (
	"strings"
	"testing"
	"time"

	"sandi.dev/client"
)

// TestChatViewTimeline: the chat view shows timeline lines, their names
// and title escaped, and drops a disappearing message when its timer has
// run out, keeping the others.
func TestChatViewTimeline(t *testing.T) {
	m, _ := newTestChat(t, 80, 12)
	m.Update(chatTimelineMsg{client.Line{Conversation: m.conv, Kind: client.LineTimer, Actor: "bob", Timer: 300, Time: testNow.UnixMilli()}})
	m.Update(chatTimelineMsg{client.Line{Conversation: m.conv, Kind: client.LineRenamed, Actor: "bob\x1b[2J", Title: "x\u202ey", Time: testNow.UnixMilli()}})
	other := m.conv
	other[0] ^= 1
	m.Update(chatTimelineMsg{client.Line{Conversation: other, Kind: client.LineLeft, Actor: "mallory"}})
	wantLine(t, m, "-- bob set disappearing messages to 5 minutes")
	wantLine(t, m, `-- ?"bob\x1b[2J" renamed the conversation to "x\u{202e}y"`)
	if strings.Contains(strings.Join(screen(t, m), "\n"), "mallory") {
		t.Fatal("a line of another conversation is shown")
	}
	gone := msgAt(m, 1, "bob", "gone in five minutes", 0)
	gone.ExpiresAt = testNow.Add(5 * time.Minute).UnixMilli()
	m.addMessage(gone)
	m.addMessage(msgAt(m, 2, "bob", "stays", 1))
	m.dropExpired(testNow.Add(5*time.Minute - time.Millisecond))
	wantLine(t, m, "10:00 bob: gone in five minutes")
	m.now = func() time.Time { return testNow.Add(5 * time.Minute) }
	m.Update(chatExpireMsg{})
	if strings.Contains(strings.Join(screen(t, m), "\n"), "gone in five minutes") {
		t.Fatal("the message is still shown after its timer ran out")
	}
	wantLine(t, m, "10:01 bob: stays")
}

// TestParseTimer: the durations sandi timer accepts, and those it refuses.
func TestParseTimer(t *testing.T) {
	for in, want := range map[string]uint32{"off": 0, "0": 0, "30s": 30, "5m": 300, "1h30m": 5400, "1d": 86400, "2w": 1209600, "4294967295s": 4294967295} {
		if got, err := parseTimer(in); err != nil || got != want {
			t.Errorf("parseTimer(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "1.5s", "500ms", "-1m", "0d", "4294967296s", "49711d", "1x", "d", "w"} {
		if got, err := parseTimer(in); err == nil {
			t.Errorf("parseTimer(%q) = %d; want an error", in, got)
		}
	}
}

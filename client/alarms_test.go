package client

import (
	"testing"
	"time"

	"sandi.dev/protocol"
)

// Alarms are kept across a restart of the client on the same storage, are
// not cleared by reading them, and filter by conversation.
func TestAlarmsPersist(t *testing.T) {
	dir := t.TempDir()
	st, err := NewDirStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.UnixMilli(1_780_000_000_000) }
	c, err := Open(Options{Storage: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	conv := protocol.NewConversationID()
	if err := c.raise(Alarm{Kind: AlarmStaleEpoch, Conversation: conv, Detail: "old epoch"}); err != nil {
		t.Fatal(err)
	}
	if err := c.raise(Alarm{Kind: AlarmOwnRekey, Severity: SeverityCritical, Detail: "rekey"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := NewDirStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Open(Options{Storage: st2, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		all, err := c2.Alarms(protocol.ConversationID{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].Kind != AlarmStaleEpoch || all[0].Severity != SeverityWarning || all[0].Time != 1_780_000_000_000 ||
			all[1].Kind != AlarmOwnRekey || all[1].Severity != SeverityCritical {
			t.Fatalf("alarms after restart: %+v", all)
		}
	}
	one, err := c2.Alarms(conv)
	if err != nil {
		t.Fatal(err)
	}
	if len(one) != 1 || one[0].Conversation != conv {
		t.Fatalf("alarms of one conversation: %+v", one)
	}
}

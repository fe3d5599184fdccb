package client

import (
	"strings"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// TestServedNameSeqBound: a name record with seq 2^63 or more that the
// server serves (the account's own key signed it: a hostile device of the
// account, or a buggy one) is not taken: the device keeps showing the
// name it holds, with an alarm, and would sign its next rename above the
// held record, not above a seq the decoder refuses (protocol.md §12.5).
// A record with seq 2^63-1 is taken.
func TestServedNameSeqBound(t *testing.T) {
	c, err := Open(Options{Server: "http://127.0.0.1:1", Storage: NewMemStorage()})
	if err != nil {
		t.Fatal(err)
	}
	id := secret.NewIdentity()
	c.acct = account{Server: "http://127.0.0.1:1", Username: "alice", User: protocol.NewUserID(), Device: protocol.NewDeviceID(), Token: "t"}
	c.id = id
	dev := protocol.NewDeviceID()
	record := func(seq uint64, name string) []byte {
		n := &protocol.DeviceName{User: c.acct.User, Device: dev, Seq: seq, Time: 1, Name: name}
		secret.SignDeviceName(id, n)
		return n.Marshal()
	}
	d := Device{ID: dev, Name: "laptop"}
	if err := c.checkDeviceName(&d, record(3, "laptop")); err != nil || d.Name != "laptop" || !d.NameSigned {
		t.Fatalf("seq 3: %+v, %v", d, err)
	}
	for _, seq := range []uint64{1 << 63, 1<<64 - 1} {
		d := Device{ID: dev, Name: "stuck"}
		if err := c.checkDeviceName(&d, record(seq, "stuck")); err != nil {
			t.Fatal(err)
		}
		if d.Name != "laptop" || !d.NameSigned {
			t.Fatalf("seq %d served: shown as %+v, want the held name", seq, d)
		}
		if held, err := c.heldName(dev); err != nil || held.Seq != 3 {
			t.Fatalf("seq %d served: held %+v, %v; want seq 3 kept", seq, held, err)
		}
	}
	alarms, err := c.alarms(protocol.ConversationID{})
	if err != nil || len(alarms) != 2 || !strings.Contains(alarms[0].Detail, "does not verify") {
		t.Fatalf("alarms %+v, %v; want one for each record refused", alarms, err)
	}
	d = Device{ID: dev, Name: "last"}
	if err := c.checkDeviceName(&d, record(1<<63-1, "last")); err != nil || d.Name != "last" || !d.NameSigned {
		t.Fatalf("seq 2^63-1: %+v, %v", d, err)
	}
	if held, err := c.heldName(dev); err != nil || held.Seq != 1<<63-1 {
		t.Fatalf("seq 2^63-1 not held: %+v, %v", held, err)
	}
}

package server

import (
	"bytes"
	"encoding/binary"
	"testing"

	"sandi.dev/protocol"
)

// FuzzClusterMsg: anyone who may publish on the cluster's NATS subject
// reaches decodeClusterMsg. It must not panic, and what it accepts must
// encode back to the same bytes (one encoding per message).
func FuzzClusterMsg(f *testing.F) {
	u, d := protocol.UserID{1}, protocol.DeviceID{2}
	for _, m := range []clusterMsg{
		{kind: cmWake, seq: 1, users: []protocol.UserID{u, {3}}},
		{kind: cmWake, seq: 1, users: []protocol.UserID{u}, at: 4096},
		{kind: cmRevoke, seq: 2, users: []protocol.UserID{u}, devices: []protocol.DeviceID{d, {4}}},
		{kind: cmRevokeOthers, seq: 3, users: []protocol.UserID{u}, devices: []protocol.DeviceID{d}},
		{kind: cmForget, seq: 4},
		{kind: cmBeat, seq: 4},
	} {
		f.Add(m.encode())
	}
	f.Add([]byte{1, cmWake})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeClusterMsg(b)
		if err != nil {
			return
		}
		if got := m.encode(); !bytes.Equal(got, b) {
			t.Fatalf("decoded %x, encoded again as %x", b, got)
		}
	})
}

// Every kind round-trips, and malformed messages are refused.
func TestClusterMsgDecode(t *testing.T) {
	m := clusterMsg{kind: cmRevoke, node: [8]byte{9}, seq: 7, users: []protocol.UserID{{1}}, devices: []protocol.DeviceID{{2}}}
	got, err := decodeClusterMsg(m.encode())
	if err != nil || got.node != m.node || got.seq != 7 || got.users[0] != m.users[0] || got.devices[0] != m.devices[0] {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	at := clusterMsg{kind: cmWake, node: [8]byte{9}, seq: 8, users: []protocol.UserID{{1}, {2}}, at: 1 << 40}
	got, err = decodeClusterMsg(at.encode())
	if err != nil || len(got.users) != 2 || got.users[1] != at.users[1] || got.at != at.at {
		t.Fatalf("round trip with an event: %+v %v", got, err)
	}
	// The event mark takes one id's place: a node of the previous release
	// reads it as one more account id (the body is whole ids).
	if b := at.encode(); (len(b)-clusterHeader)%protocol.IDSize != 0 || len(b)-clusterHeader != 3*protocol.IDSize {
		t.Fatalf("a wake-up with an event is %d bytes of body, want 3 ids", len(b)-clusterHeader)
	}
	mark := func(users int, at uint64) []byte {
		b := (&clusterMsg{kind: cmWake, users: make([]protocol.UserID, users)}).encode()
		b = append(b, wakeAtMark[:]...)
		return binary.BigEndian.AppendUint64(b, at)
	}
	wake := (&clusterMsg{kind: cmWake, users: []protocol.UserID{{1}}}).encode()
	for name, b := range map[string][]byte{
		"short":                  wake[:clusterHeader-1],
		"version":                append([]byte{2}, wake[1:]...),
		"kind":                   append([]byte{1, 99}, wake[2:]...),
		"wake without ids":       wake[:clusterHeader],
		"event mark alone":       mark(0, 5),
		"event 0":                mark(1, 0),
		"event above 2^63":       mark(1, 1<<63),
		"too many with the mark": mark(maxWakeUsers, 5),
		"partial id":             wake[:len(wake)-1],
		"revoke, no device":      (&clusterMsg{kind: cmRevoke, users: []protocol.UserID{{1}}}).encode(),
		"beat with a body":       append((&clusterMsg{kind: cmBeat}).encode(), make([]byte, 16)...),
		"revoke-others, two kept": (&clusterMsg{kind: cmRevokeOthers, users: []protocol.UserID{{1}},
			devices: []protocol.DeviceID{{2}, {3}}}).encode(),
	} {
		if _, err := decodeClusterMsg(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

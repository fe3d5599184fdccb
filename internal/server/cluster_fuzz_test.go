package server

import (
	"bytes"
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
	wake := (&clusterMsg{kind: cmWake, users: []protocol.UserID{{1}}}).encode()
	for name, b := range map[string][]byte{
		"short":             wake[:clusterHeader-1],
		"version":           append([]byte{2}, wake[1:]...),
		"kind":              append([]byte{1, 99}, wake[2:]...),
		"wake without ids":  wake[:clusterHeader],
		"partial id":        wake[:len(wake)-1],
		"revoke, no device": (&clusterMsg{kind: cmRevoke, users: []protocol.UserID{{1}}}).encode(),
		"beat with a body":  append((&clusterMsg{kind: cmBeat}).encode(), make([]byte, 16)...),
		"revoke-others, two kept": (&clusterMsg{kind: cmRevokeOthers, users: []protocol.UserID{{1}},
			devices: []protocol.DeviceID{{2}, {3}}}).encode(),
	} {
		if _, err := decodeClusterMsg(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

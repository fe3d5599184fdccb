package server_test

import (
	"testing"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// nameRecord is a device name record of d's account for device dev,
// signed by d's identity key.
func (d *device) nameRecord(dev protocol.DeviceID, seq uint64, name string) map[string]any {
	n := &protocol.DeviceName{User: d.user, Device: dev, Seq: seq, Time: d.e.clock.now.UnixMilli(), Name: name}
	secret.SignDeviceName(d.id, n)
	return map[string]any{"record": server.B64(n.Marshal())}
}

// servedName is the name the server gives d's device dev, and the seq of
// its name record.
func (d *device) servedName(dev protocol.DeviceID) (string, uint64) {
	d.e.t.Helper()
	var u struct {
		Devices []struct {
			ID         protocol.DeviceID `json:"id"`
			Name       string            `json:"name"`
			NameRecord server.B64        `json:"nameRecord"`
		} `json:"devices"`
	}
	d.must("GET", "/api/users/"+d.user.String(), nil, &u)
	for _, x := range u.Devices {
		if x.ID == dev {
			n, err := protocol.ParseDeviceName(x.NameRecord)
			if err != nil {
				d.e.t.Fatalf("device %s: served record: %v", dev, err)
			}
			return x.Name, n.Seq
		}
	}
	d.e.t.Fatalf("device %s not served", dev)
	return "", 0
}

// TestDeviceNameSeqBound: a device name record with seq 2^63 or more
// (protocol.md §12.5), which only a device holding the account's key can
// sign, is refused with 400 and changes nothing, so that the device can
// still be renamed after it; 2^63-1 is taken.
func TestDeviceNameSeqBound(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice := e.register("alice")
		path := "/api/devices/" + alice.dev.String() + "/name"
		alice.must("PUT", path, alice.nameRecord(alice.dev, 1, "laptop"), nil)
		for _, seq := range []uint64{1 << 63, 1<<64 - 1} {
			wantCode(t, alice.do("PUT", path, alice.nameRecord(alice.dev, seq, "stuck"), nil), 400, server.CodeBadRequest)
		}
		alice.must("PUT", path, alice.nameRecord(alice.dev, 2, "work laptop"), nil)
		if name, seq := alice.servedName(alice.dev); name != "work laptop" || seq != 2 {
			t.Fatalf("served %q seq %d, want the rename after the refused records", name, seq)
		}
		alice.must("PUT", path, alice.nameRecord(alice.dev, 1<<63-1, "last name"), nil)
		if name, seq := alice.servedName(alice.dev); name != "last name" || seq != 1<<63-1 {
			t.Fatalf("served %q seq %d, want seq 2^63-1 kept", name, seq)
		}
		wantCode(t, alice.do("PUT", path, alice.nameRecord(alice.dev, 3, "older"), nil), 409, server.CodeConflict)
	})
}

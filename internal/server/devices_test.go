package server_test

import (
	"database/sql"
	"strings"
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

// deviceRows counts the rows of user's devices in the database at
// dbURL: revoked and not.
func deviceRows(t *testing.T, dbURL string, user protocol.UserID) (active, revoked int) {
	t.Helper()
	driver := "sqlite"
	if strings.HasPrefix(dbURL, "postgres") {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.QueryRow(`SELECT COALESCE(SUM(CASE WHEN revoked THEN 0 ELSE 1 END), 0), COALESCE(SUM(CASE WHEN revoked THEN 1 ELSE 0 END), 0) FROM devices WHERE user_id = $1`, user[:]).Scan(&active, &revoked)
	if err != nil {
		t.Fatal(err)
	}
	return active, revoked
}

// TestDeviceCap: an account has at most MaxDevices devices that are not
// revoked: a login past it is refused with 409 too_many_devices and a
// sentence saying what to do, and adds no device; once a device is
// removed the login goes through. A login/logout loop (with a link
// request started, or not) leaves one revoked row, not one per turn, while a revoked device that a conversation's
// session names is kept.
func TestDeviceCap(t *testing.T) {
	forEachDBURL(t, func(t *testing.T, dbURL string) {
		e := newEnv(t, dbURL, server.Config{MaxDevices: 3})
		alice, bob := e.register("alice"), e.register("bob")
		keyed := e.login("alice", alice.id) // a second device with the keys
		conv, err := keyed.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		third := e.login("alice", nil)
		err = e.do("", "POST", "/api/auth/login", map[string]string{"username": "alice", "password": "correct horse alice"}, nil)
		a := wantCode(t, err, 409, server.CodeTooManyDevices)
		for _, want := range []string{"3 devices", "Remove a device", "nothing was changed"} {
			if !strings.Contains(a.Detail, want) {
				t.Fatalf("detail %q does not say %q", a.Detail, want)
			}
		}
		if n, r := deviceRows(t, dbURL, alice.user); n != 3 || r != 0 {
			t.Fatalf("after the refused login: %d devices, %d revoked; want 3 and 0", n, r)
		}

		// The device that created the conversation's session signs out:
		// its row stays (the session names it), and no longer counts.
		keyed.must("POST", "/api/auth/logout", nil, nil)
		for i := range 10 {
			d := e.login("alice", nil)
			if i%2 == 0 { // a link request left behind keeps nothing either
				startLinkOf(t, d)
			}
			d.must("POST", "/api/auth/logout", nil, nil)
		}
		if n, r := deviceRows(t, dbURL, alice.user); n != 2 || r != 2 {
			t.Fatalf("after 10 logins and logouts: %d devices, %d revoked; want 2 and 2 (the last one signed out, and the session's creator)", n, r)
		}
		bob.must("GET", "/api/conversations/"+conv.String(), nil, nil)
		third.must("POST", "/api/auth/logout", nil, nil)
		e.login("alice", nil)
		if n, r := deviceRows(t, dbURL, alice.user); n != 2 || r != 1 {
			t.Fatalf("after another login: %d devices, %d revoked; want 2 and 1 (the session's creator)", n, r)
		}
	})
}

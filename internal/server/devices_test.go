package server_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

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

// TestSettingsRateLimit: each change to an account's own settings that no
// other limit counts is limited per device (Config.SettingsPerMinute):
// past it, a request that would succeed gets 429 rate_limited with
// Retry-After and changes nothing; another device of the account is not
// held back, and a minute later the same request goes through.
func TestSettingsRateLimit(t *testing.T) {
	const limit = 3
	e := newEnv(t, t.TempDir()+"/sandi.db", server.Config{SettingsPerMinute: limit})
	alice, bob := e.register("alice"), e.register("bob")
	push := func(d *device, method, path string, body any) {
		t.Helper()
		for range limit { // refused or not, each takes a token
			_ = d.do(method, path, body, nil)
		}
		r := e.raw(nil, d.token, method, path, body)
		r.wantProblem(t, 429, server.CodeRateLimited)
		if h := r.header.Get("Retry-After"); h == "" || h == "0" {
			t.Fatalf("%s %s: 429 with Retry-After %q", method, path, h)
		}
	}

	// A rename past the limit is not taken; it is a minute later.
	path := "/api/devices/" + alice.dev.String() + "/name"
	for seq := range uint64(limit) {
		alice.must("PUT", path, alice.nameRecord(alice.dev, seq+1, fmt.Sprint("name ", seq+1)), nil)
	}
	r := e.raw(nil, alice.token, "PUT", path, alice.nameRecord(alice.dev, limit+1, "one too many"))
	r.wantProblem(t, 429, server.CodeRateLimited)
	if name, seq := alice.servedName(alice.dev); name != "name 3" || seq != limit {
		t.Fatalf("after a refused rename: %q seq %d", name, seq)
	}
	// Another device of the account has its own allowance.
	other := e.login("alice", alice.id)
	other.must("PUT", path, other.nameRecord(alice.dev, limit+1, "from the other device"), nil)

	// A block past the limit is not taken.
	bob2 := e.register("bob2")
	for i := range int64(limit) {
		bob.must("POST", "/api/blocks", bob.statement(alice, i%2 == 0, 1000+i, nil), nil)
	}
	wantCode(t, bob.do("POST", "/api/blocks", bob.statement(bob2, true, 1000, nil), nil), 429, server.CodeRateLimited)
	var bl blocksAnswer
	bob.must("GET", "/api/blocks", nil, &bl)
	if len(bl.Blocks) != 1 || bl.Blocks[0].User != alice.user {
		t.Fatalf("after a refused block: %+v", bl)
	}
	e.clock.now = e.clock.now.Add(time.Minute)
	bob.must("POST", "/api/blocks", bob.statement(bob2, true, 1000, nil), nil)
	alice.must("PUT", path, alice.nameRecord(alice.dev, limit+2, "a minute later"), nil)

	// Every other route of the limit, each from a device of its own.
	unknown := protocol.NewDeviceID().String()
	for _, rt := range []struct{ method, path string }{
		{"DELETE", "/api/blocks/" + alice.user.String()},
		{"POST", "/api/devices/list"},
		{"DELETE", "/api/devices/" + unknown},
		{"DELETE", "/api/sessions/" + unknown},
		{"POST", "/api/devices/link/" + unknown},
	} {
		push(e.login("alice", alice.id), rt.method, rt.path, map[string]any{})
	}
	push(e.login("alice", nil), "POST", "/api/devices/link", map[string]any{}) // a keyless device may start a link
}

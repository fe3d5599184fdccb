//go:build !js

package client_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// deviceNamed returns the device d as c lists it.
func deviceNamed(t *testing.T, c *client.Client, d protocol.DeviceID) client.Device {
	t.Helper()
	devs, err := c.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range devs {
		if dev.ID == d {
			return dev
		}
	}
	t.Fatalf("%s does not list device %s", c.Username(), d)
	return client.Device{}
}

// TestDeviceRename: a rename is signed by the account's identity key and
// seen by the account's other devices. A server that renames the device in
// its database, or drops the signed record, is detected: the signed name is
// still shown, with an alarm.
func TestDeviceRename(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	alice := register(t, n, "alice")
	phone, code := startLinked(t, n)
	if _, err := alice.ApproveLink(ctx, code); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, phone, alice)
	pid := phone.DeviceID()
	if _, err := alice.RenameDevice(ctx, pid.String()[:6], "work phone"); err != nil {
		t.Fatal(err)
	}
	if d := deviceNamed(t, phone, pid); d.Name != "work phone" || !d.NameSigned {
		t.Fatalf("the renamed device sees itself as %+v", d)
	}
	if _, err := alice.RenameDevice(ctx, pid.String(), strings.Repeat("x", 65)); err == nil {
		t.Fatal("a 65-byte name was accepted")
	}
	if _, err := alice.RenameDevice(ctx, pid.String(), "bad\x1b[2Jname"); err == nil {
		t.Fatal("a name with a control character was accepted")
	}

	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var first []byte // the record naming the phone "work phone", seq 1
	if err := db.QueryRow(`SELECT name_record FROM devices WHERE id = ?`, pid[:]).Scan(&first); err != nil {
		t.Fatal(err)
	}
	for i, q := range []string{
		`UPDATE devices SET name = 'alice''s laptop' WHERE id = ?`,
		`UPDATE devices SET name = 'alice''s laptop', name_record = NULL, name_seq = 0 WHERE id = ?`,
	} {
		if _, err := db.Exec(q, pid[:]); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second look raises no second alarm
			if d := deviceNamed(t, alice, pid); d.Name != "work phone" || !d.NameSigned {
				t.Fatalf("attack %d: alice shows the device as %+v; want the signed name", i, d)
			}
		}
		alarms, err := alice.Alarms(protocol.ConversationID{})
		if err != nil {
			t.Fatal(err)
		}
		if len(alarms) != i+1 || !strings.Contains(alarms[i].Detail, pid.String()) {
			t.Fatalf("attack %d: alarms %+v", i, alarms)
		}
	}

	// A server that serves the first record again after a second rename
	// (a rollback), or the phone's record for alice's own device.
	if _, err := alice.RenameDevice(ctx, pid.String(), "old phone"); err != nil {
		t.Fatal(err)
	}
	aid := alice.DeviceID()
	for i, a := range []struct {
		dev        protocol.DeviceID
		name, want string
	}{
		{pid, "work phone", "old phone"},
		{aid, "work phone", ""},
	} {
		if _, err := db.Exec(`UPDATE devices SET name = ?, name_record = ?, name_seq = 1 WHERE id = ?`, a.name, first, a.dev[:]); err != nil {
			t.Fatal(err)
		}
		d := deviceNamed(t, alice, a.dev)
		if a.want != "" && (d.Name != a.want || !d.NameSigned) || a.want == "" && d.NameSigned {
			t.Fatalf("replay %d: alice shows the device as %+v; want %q signed", i, d, a.want)
		}
		alarms, err := alice.Alarms(protocol.ConversationID{})
		if err != nil {
			t.Fatal(err)
		}
		if len(alarms) != 3+i || !strings.Contains(alarms[2+i].Detail, a.dev.String()) {
			t.Fatalf("replay %d: alarms %+v", i, alarms)
		}
	}
}

//go:build !js

package client_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"sandi.dev/client"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Attacks on device lists (protocol.md §12): the server keeps serving a
// removed device, rolls an account's list back, forges or withholds it,
// and keeps a logged-out device's connection open.

// linkDevice logs a new device into approver's account and links it.
func linkDevice(t *testing.T, n *node, approver *client.Client, password string) *client.Client {
	t.Helper()
	d := newClient(t, n, "")
	if err := approveNew(t, d, approver, password); err != nil {
		t.Fatal(err)
	}
	return d
}

// approveNew logs the new device d into approver's account, has approver
// approve its link code, and returns what d's WaitLink returns.
func approveNew(t *testing.T, d, approver *client.Client, password string) error {
	t.Helper()
	ctx := context.Background()
	if err := d.Login(ctx, approver.Username(), password); err != nil {
		t.Fatal(err)
	}
	code, err := d.StartLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := approver.ApproveLink(ctx, code); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return d.WaitLink(wctx, 10*time.Millisecond)
}

// wantListAlarm checks that c raised a device-list alarm about user.
func wantListAlarm(t *testing.T, c *client.Client, user protocol.UserID) {
	t.Helper()
	as, err := c.Alarms(protocol.ConversationID{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(as, func(a client.Alarm) bool { return a.Kind == client.AlarmDeviceList && a.User == user }) {
		t.Fatalf("no %s alarm about %s in %+v", client.AlarmDeviceList, user, as)
	}
}

// serverDB opens the node's SQLite database, as a malicious operator would.
func serverDB(t *testing.T, n *node) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type savedDevice struct {
	signed, lastResort []byte
}

func saveDevice(t *testing.T, db *sql.DB, dev protocol.DeviceID) savedDevice {
	t.Helper()
	var s savedDevice
	if err := db.QueryRow(`SELECT signed_prekey, last_resort FROM devices WHERE id = ?`, dev[:]).Scan(&s.signed, &s.lastResort); err != nil {
		t.Fatal(err)
	}
	return s
}

// revive undoes a device's revocation in the database and puts it back in
// the server's own record of the account's list (not in the signed list,
// which the server cannot sign): the server serves its bundle again.
func revive(t *testing.T, db *sql.DB, user protocol.UserID, dev protocol.DeviceID, s savedDevice) {
	t.Helper()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE devices SET revoked = FALSE, signed_prekey = ?, last_resort = ? WHERE id = ?`, []any{s.signed, s.lastResort, dev[:]}},
		{`INSERT INTO device_list_entries (user_id, device_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, []any{user[:], dev[:]}},
	} {
		if _, err := db.Exec(q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeviceListAttacks(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	db := serverDB(t, n)

	// The server keeps serving the bundle of a device its account removed:
	// a sender seals nothing to it, refuses the epoch and raises an alarm.
	t.Run("removed device served", func(t *testing.T) {
		alice := register(t, n, "alice1")
		phone := linkDevice(t, n, alice, "password of alice1")
		bob := register(t, n, "bob1")
		conv, err := bob.CreateConversation(ctx, "", "alice1")
		if err != nil {
			t.Fatal(err)
		}
		saved := saveDevice(t, db, phone.DeviceID())
		if _, err := alice.RemoveDevice(ctx, phone.DeviceID().String()[:6]); err != nil {
			t.Fatal(err)
		}
		revive(t, db, alice.UserID(), phone.DeviceID(), saved)
		_, err = bob.Send(ctx, conv, "not for the removed phone")
		wantMisbehaved(t, err)
		wantListAlarm(t, bob, alice.UserID())
		if as, err := bob.Alarms(conv); err != nil || len(as) == 0 {
			t.Fatalf("the alarm is not shown in the conversation concerned: %v, %v", as, err)
		}
		if _, err := bob.CreateConversation(ctx, "", "alice1"); !errors.Is(err, client.ErrServerMisbehaved) {
			t.Fatalf("a new conversation with the revived device: %v", err)
		}
		// The phone itself got no new epoch to read.
		if res, err := phone.Sync(ctx); err == nil && len(res.Messages) != 0 {
			t.Fatalf("the removed phone read %+v", res.Messages)
		}
	})

	// The server serves an older list of the account (one that still
	// names a device removed since): refused as a rollback.
	t.Run("rolled-back list", func(t *testing.T) {
		alice := register(t, n, "alice2")
		phone := linkDevice(t, n, alice, "password of alice2")
		bob := register(t, n, "bob2")
		conv, err := bob.CreateConversation(ctx, "", "alice2") // bob accepts the list naming the phone
		if err != nil {
			t.Fatal(err)
		}
		var oldSeq int64
		var oldList []byte
		if err := db.QueryRow(`SELECT seq, encoded FROM device_lists WHERE user_id = ?`, idBytes(alice.UserID())).Scan(&oldSeq, &oldList); err != nil {
			t.Fatal(err)
		}
		saved := saveDevice(t, db, phone.DeviceID())
		if _, err := alice.RemoveDevice(ctx, phone.DeviceID().String()); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, conv, "after the removal"); err != nil { // bob accepts the newer list
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE device_lists SET seq = ?, encoded = ? WHERE user_id = ?`, oldSeq, oldList, idBytes(alice.UserID())); err != nil {
			t.Fatal(err)
		}
		revive(t, db, alice.UserID(), phone.DeviceID(), saved)
		_, err = bob.CreateConversation(ctx, "", "alice2")
		wantMisbehaved(t, err)
		wantListAlarm(t, bob, alice.UserID())
	})

	// Forged, unsigned and withheld lists, through a rewriting proxy.
	for i, tc := range []struct {
		name   string
		forge  func(l *protocol.DeviceList) []byte // nil: withhold the list
		before bool                                // bob held a list of the account before
	}{
		{"list signed by the server", func(l *protocol.DeviceList) []byte {
			f := *l
			f.Devices = protocol.SortDevices(append(slices.Clone(l.Devices), protocol.NewDeviceID()))
			secret.SignDeviceList(secret.NewIdentity(), &f)
			return f.Marshal()
		}, false},
		{"unsigned list", func(l *protocol.DeviceList) []byte {
			f := *l
			f.Signature = [protocol.SignatureSize]byte{}
			return f.Marshal()
		}, false},
		{"withheld list", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, n)
			bob := clientVia(t, p)
			name := "bob3" + string(rune('a'+i))
			if err := bob.Register(ctx, name, "password bob"); err != nil {
				t.Fatal(err)
			}
			alice := register(t, n, "alice3"+string(rune('a'+i)))
			if tc.before {
				if _, err := bob.CreateConversation(ctx, "", alice.Username()); err != nil {
					t.Fatal(err)
				}
			}
			p.set(func(r *http.Request, body map[string]any) {
				if r.URL.Path != "/api/keys/claim" {
					return
				}
				var keep []any
				for _, x := range body["deviceLists"].([]any) {
					e := x.(map[string]any)
					if e["user"] != alice.UserID().String() {
						keep = append(keep, e)
						continue
					}
					if tc.forge == nil {
						continue
					}
					l, err := protocol.ParseDeviceList(unb64u(t, e["list"]))
					if err != nil {
						t.Error(err)
						return
					}
					e["list"] = b64u(tc.forge(l))
					keep = append(keep, e)
				}
				body["deviceLists"] = keep
			})
			_, err := bob.CreateConversation(ctx, "", alice.Username())
			wantMisbehaved(t, err)
			wantListAlarm(t, bob, alice.UserID())
		})
	}

	// A device that logs out stops listening at once: the server closes
	// its WebSocket, and the device forgets its keys.
	t.Run("logout ends the live connection", func(t *testing.T) {
		alice := register(t, n, "alice4")
		phone := linkDevice(t, n, alice, "password of alice4")
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		ended := make(chan error, 1)
		go func() { ended <- phone.Listen(lctx, nil, nil) }()
		time.Sleep(200 * time.Millisecond) // let it connect
		if err := phone.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-ended:
			if !errors.Is(err, client.ErrNoAccount) {
				t.Fatalf("Listen ended with %v, want ErrNoAccount", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the logged-out device is still listening")
		}
		if _, ok := phone.IdentityKey(); ok {
			t.Fatal("the logged-out device kept the identity key")
		}
		devs, err := alice.Devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(devs) != 1 || devs[0].ID != alice.DeviceID() || !devs[0].Listed {
			t.Fatalf("alice's devices after the phone logged out: %+v", devs)
		}
	})
}

func idBytes(u protocol.UserID) []byte { return u[:] }

// TestDeviceListMigration: an account from before device lists (no list on
// the server, none held by any device) is served as before, and its first
// device that syncs publishes a list of the devices with valid bundles.
func TestDeviceListMigration(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	db := serverDB(t, n)
	dirA, dirB := t.TempDir(), t.TempDir()
	alice := newClient(t, n, dirA)
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	phone := newClient(t, n, dirB)
	if err := approveNew(t, phone, alice, "password of alice"); err != nil {
		t.Fatal(err)
	}
	bob := register(t, n, "bob")

	// Back to the state before device lists: none on the server, none held.
	for _, q := range []string{`DELETE FROM device_list_entries WHERE user_id = ?`, `DELETE FROM device_lists WHERE user_id = ?`} {
		if _, err := db.Exec(q, idBytes(alice.UserID())); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{dirA, dirB} {
		if err := os.RemoveAll(filepath.Join(dir, "devicelist")); err != nil {
			t.Fatal(err)
		}
	}
	alice.Close() // one process (here: client) per state directory
	phone.Close()
	alice, phone = newClient(t, n, dirA), newClient(t, n, dirB)

	// Until a list exists, senders seal to the served devices, as before.
	conv, err := bob.CreateConversation(ctx, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, conv, "before the list"); err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, phone); !slices.Equal(got, []string{"bob: before the list"}) {
		t.Fatalf("phone read %q", got)
	}
	// The phone's sync published the account's first list: both devices.
	var enc []byte
	if err := db.QueryRow(`SELECT encoded FROM device_lists WHERE user_id = ?`, idBytes(phone.UserID())).Scan(&enc); err != nil {
		t.Fatalf("no list after the sync: %v", err)
	}
	l, err := protocol.ParseDeviceList(enc)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := phone.IdentityKey()
	if err := l.Verify(phone.UserID(), key); err != nil {
		t.Fatal(err)
	}
	if want := protocol.SortDevices([]protocol.DeviceID{alice.DeviceID(), phone.DeviceID()}); l.Seq != 1 || !slices.Equal(l.Devices, want) {
		t.Fatalf("first list %d %v, want 1 %v", l.Seq, l.Devices, want)
	}
	// From now on bob holds it and seals by it.
	if _, err := bob.CreateConversation(ctx, "", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, conv, "after the list"); err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, alice); !slices.Equal(got, []string{"bob: before the list", "bob: after the list"}) {
		t.Fatalf("alice read %q", got)
	}
	// alice's device, which holds the key too, accepts the phone's list and
	// publishes nothing more.
	if err := db.QueryRow(`SELECT encoded FROM device_lists WHERE user_id = ?`, idBytes(phone.UserID())).Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if l2, err := protocol.ParseDeviceList(enc); err != nil || l2.Seq != 1 {
		t.Fatalf("alice's sync changed the list: %v %v", l2, err)
	}
}

// TestDeviceListIdentityReset: a reset deletes the list the old key signed;
// the resetting device publishes the new key's first list, naming itself
// alone, and a contact that held the old list accepts it once the
// membership records the new key.
func TestDeviceListIdentityReset(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	db := serverDB(t, n)
	alice := register(t, n, "alice")
	bob := register(t, n, "bob")
	conv, err := bob.CreateConversation(ctx, "", "alice") // bob holds alice's list 1
	if err != nil {
		t.Fatal(err)
	}
	fresh := newClient(t, n, "")
	if err := fresh.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if err := fresh.ResetIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	var enc []byte
	if err := db.QueryRow(`SELECT encoded FROM device_lists WHERE user_id = ?`, idBytes(fresh.UserID())).Scan(&enc); err != nil {
		t.Fatal(err)
	}
	l, err := protocol.ParseDeviceList(enc)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := fresh.IdentityKey()
	if err := l.Verify(fresh.UserID(), key); err != nil || l.Seq != 1 || !slices.Equal(l.Devices, []protocol.DeviceID{fresh.DeviceID()}) {
		t.Fatalf("list after the reset: %+v (%v)", l, err)
	}
	if _, err := alice.Sync(ctx); !client.IsCode(err, "unauthenticated") {
		t.Fatalf("the old device after the reset: %v", err)
	}
	if _, err := bob.Send(ctx, conv, "to the new alice"); err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, fresh); !slices.Contains(got, "bob: to the new alice") {
		t.Fatalf("the reset device read %q", got)
	}
	if as, _ := bob.Alarms(protocol.ConversationID{}); slices.ContainsFunc(as, func(a client.Alarm) bool { return a.Kind == client.AlarmDeviceList }) {
		t.Fatalf("an identity reset raised a device-list alarm: %+v", as)
	}
}

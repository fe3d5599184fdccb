//go:build !js

package client_test

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"strings"
	"sync"
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
	// (a rollback), or the phone's record for alice's own device (whose
	// signed name, given at registration, she still shows).
	if _, err := alice.RenameDevice(ctx, pid.String(), "old phone"); err != nil {
		t.Fatal(err)
	}
	aid := alice.DeviceID()
	for i, a := range []struct {
		dev        protocol.DeviceID
		name, want string
	}{
		{pid, "work phone", "old phone"},
		{aid, "work phone", "sandi"}, // alice's default name, signed at registration
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

// openNamed opens a client with its own state directory that signs in
// under the device name name.
func openNamed(t *testing.T, n *node, name string) *client.Client {
	t.Helper()
	st, err := client.NewDirStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Open(client.Options{Server: n.url(), Storage: st, DeviceName: name})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDefaultDeviceNameSigned: the name a device gets when it registers
// or is linked, before anyone renames it, is signed too. A server that
// renames either device in its database, keeping or dropping the record,
// is detected by the other device: it shows the signed name, with an
// alarm.
func TestDefaultDeviceNameSigned(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	alice := openNamed(t, n, "alice's laptop")
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	phone := openNamed(t, n, "alice's phone")
	if err := phone.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	code, err := phone.StartLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ApproveLink(ctx, code); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, phone, alice)
	aid, pid := alice.DeviceID(), phone.DeviceID()
	for _, c := range []*client.Client{alice, phone} {
		for id, want := range map[protocol.DeviceID]string{aid: "alice's laptop", pid: "alice's phone"} {
			if d := deviceNamed(t, c, id); d.Name != want || !d.NameSigned {
				t.Fatalf("before any rename, device %s shows as %+v; want %q, signed", id, d, want)
			}
		}
	}

	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, a := range []struct {
		viewer *client.Client
		dev    protocol.DeviceID
		want   string
		q      string
	}{
		{alice, pid, "alice's phone", `UPDATE devices SET name = 'alice''s laptop' WHERE id = ?`},
		{phone, aid, "alice's laptop", `UPDATE devices SET name = 'work laptop', name_record = NULL, name_seq = 0 WHERE id = ?`},
	} {
		if _, err := db.Exec(a.q, a.dev[:]); err != nil {
			t.Fatal(err)
		}
		if d := deviceNamed(t, a.viewer, a.dev); d.Name != a.want || !d.NameSigned {
			t.Fatalf("attack %d: the device shows as %+v; want the signed name %q", i, d, a.want)
		}
		all, err := a.viewer.Alarms(protocol.ConversationID{})
		if err != nil {
			t.Fatal(err)
		}
		var alarms []client.Alarm // the phone also sees attack 0 on itself
		for _, al := range all {
			if strings.Contains(al.Detail, a.dev.String()) {
				alarms = append(alarms, al)
			}
		}
		if len(alarms) != 1 || alarms[0].Kind != client.AlarmDeviceList {
			t.Fatalf("attack %d: alarms %+v; want one for device %s", i, all, a.dev)
		}
	}

	// An identity reset signs the phone's name again under the new key: a
	// device linked afterwards sees it signed, without an alarm.
	if err := phone.ResetIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	desk := openNamed(t, n, "alice's desk")
	if err := desk.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	if code, err = desk.StartLink(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.ApproveLink(ctx, code); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, desk, phone)
	if d := deviceNamed(t, desk, pid); d.Name != "alice's phone" || !d.NameSigned {
		t.Fatalf("after the reset, the phone shows as %+v", d)
	}
	if alarms, err := desk.Alarms(protocol.ConversationID{}); err != nil || len(alarms) != 0 {
		t.Fatalf("after the reset, the new device's alarms: %+v, %v", alarms, err)
	}
}

// refuseOnce answers the first request for which match holds with 403,
// without passing it on.
type refuseOnce struct {
	mu    sync.Mutex
	match func(*http.Request) bool
	done  bool
}

func (r *refuseOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	refuse := !r.done && r.match(req)
	r.done = r.done || refuse
	r.mu.Unlock()
	if refuse {
		body := `{"type":"about:blank","title":"forbidden","status":403,"code":"forbidden","detail":"no"}`
		return &http.Response{StatusCode: 403, Header: http.Header{"Content-Type": {"application/problem+json"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestDefaultNameSignedLater: a server that refuses a new device's signed
// default name does not undo the registration; the device signs it again
// when it next lists its account's devices.
func TestDefaultNameSignedLater(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	rt := &refuseOnce{match: func(r *http.Request) bool { return r.Method == "PUT" && strings.HasSuffix(r.URL.Path, "/name") }}
	alice := newClientWith(t, n, rt)
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatalf("a refused device name undid the registration: %v", err)
	}
	if !rt.done {
		t.Fatal("registration sent no device name")
	}
	if d := deviceNamed(t, alice, alice.DeviceID()); d.Name != "sandi" || !d.NameSigned {
		t.Fatalf("listed again, the device shows as %+v; want its default name, signed", d)
	}
}

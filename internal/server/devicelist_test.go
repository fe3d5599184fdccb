package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// signList signs a device list of d's account with key (d's own if nil).
func (d *device) signList(key *secret.IdentityPrivateKey, seq uint64, prev *protocol.DeviceList, devs ...protocol.DeviceID) *protocol.DeviceList {
	if key == nil {
		key = d.id
	}
	l := &protocol.DeviceList{User: d.user, Seq: seq, Time: d.e.clock.now.UnixMilli(), Devices: protocol.SortDevices(devs)}
	if prev != nil {
		l.Prev = prev.Hash()
	}
	secret.SignDeviceList(key, l)
	return l
}

type listAnswer struct {
	User protocol.UserID `json:"user"`
	List string          `json:"list"`
}

// servedDevices claims d's view of the devices of user, and the list the
// claim answer carried ("" if none).
func (d *device) servedDevices(user protocol.UserID) ([]protocol.DeviceID, string) {
	d.e.t.Helper()
	var ca struct {
		claimAnswer
		DeviceLists []listAnswer `json:"deviceLists"`
	}
	d.must("POST", "/api/keys/claim", map[string]any{"users": []protocol.UserID{user}}, &ca)
	var out []protocol.DeviceID
	for _, b := range ca.Bundles {
		out = append(out, b.Device)
	}
	list := ""
	for _, l := range ca.DeviceLists {
		if l.User == user {
			list = l.List
		}
	}
	return protocol.SortDevices(out), list
}

// wantClosed waits for c to be closed by the server as revoked.
func wantClosed(t *testing.T, c *websocket.Conn, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue // a page that was on its way
		}
		if ctx.Err() != nil {
			t.Fatalf("the revoked device's WebSocket is still open after %v", within)
		}
		if st := websocket.CloseStatus(err); st != websocket.StatusPolicyViolation {
			t.Fatalf("the revoked device's WebSocket ended with %v (status %v), want a policy-violation close", err, st)
		}
		return
	}
}

// TestDeviceLists: the server serves only the devices a verified list
// names, refuses lists that are stale, forged or of another account, and
// revokes a removed or logged-out device at once: its token stops working
// and its open WebSocket is closed (protocol.md §12).
func TestDeviceLists(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		a0 := e.register("alice")
		a1, a2 := e.login("alice", a0.id), e.login("alice", a0.id)
		bob := e.register("bob")
		all := protocol.SortDevices([]protocol.DeviceID{a0.dev, a1.dev, a2.dev})
		if got, list := bob.servedDevices(a0.user); !slices.Equal(got, all) || list != "" {
			t.Fatalf("without a list bob is served %v (list %q), want all three devices", got, list)
		}

		l1 := a0.signList(nil, 1, nil, a0.dev, a1.dev)
		a0.must("POST", "/api/devices/list", map[string]string{"list": b64(l1.Marshal())}, nil)
		got, list := bob.servedDevices(a0.user)
		if want := protocol.SortDevices([]protocol.DeviceID{a0.dev, a1.dev}); !slices.Equal(got, want) || list != b64(l1.Marshal()) {
			t.Fatalf("bob is served %v with list %q, want %v with the signed list", got, list, want)
		}
		var la listAnswer
		bob.must("GET", "/api/users/"+a0.user.String()+"/device-list", nil, &la)
		if la.User != a0.user || la.List != b64(l1.Marshal()) {
			t.Fatalf("device-list answer %+v", la)
		}
		var ui struct {
			Devices    []struct{ ID protocol.DeviceID } `json:"devices"`
			DeviceList string                           `json:"deviceList"`
		}
		bob.must("GET", "/api/users/"+a0.user.String(), nil, &ui)
		if len(ui.Devices) != 2 || ui.DeviceList != la.List {
			t.Fatalf("user lookup: %+v", ui)
		}
		var none listAnswer
		a0.must("GET", "/api/users/"+bob.user.String()+"/device-list", nil, &none)
		if none.List != "" {
			t.Fatalf("bob has no list, got %q", none.List)
		}

		// A session covering the unlisted a2 is refused.
		rec := &protocol.Record{Op: protocol.OpCreate, Conversation: protocol.NewConversationID(), Author: bob.user,
			Members: []protocol.Member{bob.member(protocol.RoleAdmin), a0.member(protocol.RoleMember)}}
		secret.SignRecord(bob.id, rec)
		chain, err := protocol.Genesis(rec)
		if err != nil {
			t.Fatal(err)
		}
		bundles, err := bob.claim(bob.user, a0.user)
		if err != nil {
			t.Fatal(err)
		}
		dist, _, err := secret.NewDistribution(bob.id, secret.EpochRequest{Chain: chain, Epoch: 1, Creator: bob.ref(), Time: e.clock.now.UnixMilli(), Bundles: append(bundles, a2.bundle)})
		if err != nil {
			t.Fatal(err)
		}
		err = bob.do("POST", "/api/conversations", map[string]string{"genesis": b64(rec.Marshal()), "session": b64(dist.Marshal())}, nil)
		wantCode(t, err, 409, server.CodeSessionCoverage)

		// Refused lists change nothing.
		l2 := a0.signList(nil, 2, l1, a0.dev)
		refused := []struct {
			name   string
			by     *device
			list   []byte
			status int
			code   string
		}{
			{"garbage", a0, []byte{1, 2, 3}, 400, server.CodeBadRequest},
			{"signed by another key", a0, a0.signList(secret.NewIdentity(), 2, l1, a0.dev).Marshal(), 400, server.CodeBadSignature},
			{"unsigned", a0, func() []byte { l := *l2; l.Signature = [64]byte{}; return l.Marshal() }(), 400, server.CodeBadSignature},
			{"another account's list", bob, l2.Marshal(), 403, server.CodeForbidden},
			{"the same seq again", a0, a0.signList(nil, 1, nil, a0.dev).Marshal(), 409, server.CodeStaleDeviceList},
			{"the wrong previous list", a0, a0.signList(nil, 2, nil, a0.dev).Marshal(), 409, server.CodeStaleDeviceList},
			{"another account's device", a0, a0.signList(nil, 2, l1, a0.dev, bob.dev).Marshal(), 404, server.CodeNotFound},
		}
		for _, tc := range refused {
			err := tc.by.do("POST", "/api/devices/list", map[string]string{"list": b64(tc.list)}, nil)
			wantCode(t, err, tc.status, tc.code)
			bob.must("GET", "/api/users/"+a0.user.String()+"/device-list", nil, &la)
			if la.List != b64(l1.Marshal()) {
				t.Fatalf("a refused list (%s) replaced the stored one", tc.name)
			}
		}
		// Removal refusals.
		wantCode(t, a0.do("DELETE", "/api/devices/"+a0.dev.String(), map[string]string{"list": b64(l2.Marshal())}, nil), 400, server.CodeBadRequest)
		wantCode(t, a0.do("DELETE", "/api/devices/"+a1.dev.String(), map[string]string{"list": b64(a0.signList(nil, 2, l1, a0.dev, a1.dev).Marshal())}, nil), 400, server.CodeBadRequest)
		bl := bob.signList(nil, 1, nil, bob.dev)
		wantCode(t, bob.do("DELETE", "/api/devices/"+a1.dev.String(), map[string]string{"list": b64(bl.Marshal())}, nil), 404, server.CodeNotFound)
		a1.must("GET", "/api/me", nil, nil)

		// a0 removes a1 while a1 listens: a1's WebSocket is closed at once
		// and its token refused.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ws1, err := a1.dialWS(ctx, nil, a1.cursor)
		if err != nil {
			t.Fatal(err)
		}
		defer ws1.CloseNow()
		a0.must("DELETE", "/api/devices/"+a1.dev.String(), map[string]string{"list": b64(l2.Marshal())}, nil)
		wantClosed(t, ws1, 2*time.Second)
		wantCode(t, a1.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		if _, err := a1.dialWS(ctx, nil, 0); err == nil {
			t.Fatal("a removed device opened a WebSocket")
		}
		if got, _ := bob.servedDevices(a0.user); !slices.Equal(got, []protocol.DeviceID{a0.dev}) {
			t.Fatalf("after the removal bob is served %v", got)
		}

		// a2 (never listed) logs out without a list; a0 logs out with the
		// empty list. Both are revoked and their sockets closed.
		ws2, err := a2.dialWS(ctx, nil, a2.cursor)
		if err != nil {
			t.Fatal(err)
		}
		defer ws2.CloseNow()
		a2.must("POST", "/api/auth/logout", nil, nil)
		wantClosed(t, ws2, 2*time.Second)
		wantCode(t, a2.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)

		ws0, err := a0.dialWS(ctx, nil, a0.cursor)
		if err != nil {
			t.Fatal(err)
		}
		defer ws0.CloseNow()
		wantCode(t, a0.do("POST", "/api/auth/logout", map[string]string{"list": b64(a0.signList(nil, 3, l2, a0.dev).Marshal())}, nil), 400, server.CodeBadRequest)
		l3 := a0.signList(nil, 3, l2)
		a0.must("POST", "/api/auth/logout", map[string]string{"list": b64(l3.Marshal())}, nil)
		wantClosed(t, ws0, 2*time.Second)
		wantCode(t, a0.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		if got, list := bob.servedDevices(a0.user); len(got) != 0 || list != b64(l3.Marshal()) {
			t.Fatalf("after every device left bob is served %v, list %q", got, list)
		}
	})
}

// TestResetClosesSockets: an identity reset signs the account's other
// devices out, and their open WebSockets end at once.
func TestResetClosesSockets(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice := e.register("alice")
		fresh := e.login("alice", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ws, err := alice.dialWS(ctx, nil, alice.cursor)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		fresh.id = secret.NewIdentity()
		if err := fresh.uploadBundle(true); err != nil {
			t.Fatal(err)
		}
		wantClosed(t, ws, 2*time.Second)
		wantCode(t, alice.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		fresh.must("GET", "/api/me", nil, nil)
	})
}

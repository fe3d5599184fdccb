package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
)

type sessionAnswer struct {
	Device    protocol.DeviceID `json:"device"`
	Name      string            `json:"name"`
	CreatedAt int64             `json:"createdAt"`
	LastUsed  int64             `json:"lastUsed"`
	Current   bool              `json:"current"`
	Keys      bool              `json:"keys"`
	Listed    bool              `json:"listed"`
}

func (d *device) sessions() map[protocol.DeviceID]sessionAnswer {
	d.e.t.Helper()
	var a struct {
		Sessions []sessionAnswer `json:"sessions"`
	}
	d.must("GET", "/api/sessions", nil, &a)
	out := map[protocol.DeviceID]sessionAnswer{}
	for _, s := range a.Sessions {
		out[s.Device] = s
	}
	return out
}

// TestKeylessSessionSeesNothing: a login with the password alone, which
// never linked, reads nothing of the account's conversations: not the
// list, the messages with their senders and times, the records, the
// sessions, the sync stream or the WebSocket, nor the account's contacts.
func TestKeylessSessionSeesNothing(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.send(conv, 1, "hello"); err != nil {
			t.Fatal(err)
		}
		snoop := e.login("alice", nil)
		snoop.cursor = 0
		c := "/api/conversations/" + conv.String()
		for _, rq := range [][2]string{
			{"GET", "/api/conversations"},
			{"GET", c},
			{"GET", c + "/messages"},
			{"GET", c + "/records"},
			{"GET", c + "/sessions/1/initial-session"},
			{"GET", "/api/sync?since=0"},
			{"GET", "/api/users/" + bob.user.String()},
			{"GET", "/api/users?username=bob"},
			{"POST", "/api/keys/claim"},
			{"GET", "/api/devices/link"},
		} {
			var body any
			if rq[0] == "POST" {
				body = map[string]any{"users": []protocol.UserID{bob.user}}
			}
			wantCode(t, snoop.do(rq[0], rq[1], body, nil), 403, server.CodeKeysRequired)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The WebSocket with the header is refused at the handshake…
		if ws, err := snoop.dialWS(ctx, nil, 0); err == nil {
			ws.CloseNow()
			t.Fatal("a device without keys opened the event stream")
		}
		// …and with the token in the first frame, closed before any event.
		ws, _, err := websocket.Dial(ctx, e.wsURL(0), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"token": "`+snoop.token+`"}`)); err != nil {
			t.Fatal(err)
		}
		if _, data, err := ws.Read(ctx); err == nil {
			t.Fatalf("a device without keys read a frame: %s", data)
		} else if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("the keyless WebSocket ended with %v, want a policy-violation close", err)
		}
		// What it may do: see itself, and link (then it sees everything).
		snoop.must("GET", "/api/me", nil, nil)
		if ss := snoop.sessions(); len(ss) != 1 || !ss[snoop.dev].Current || ss[snoop.dev].Keys {
			t.Fatalf("a device without keys sees sessions %+v, want only its own", ss)
		}
		snoop.id = alice.id
		if err := snoop.uploadBundle(false); err != nil {
			t.Fatal(err)
		}
		snoop.must("GET", c+"/messages", nil, nil)
	})
}

// TestSessionsListedAndRevoked: every session of an account is listed,
// keyless ones marked; a new login is announced to the other devices;
// a device in the signed list signs out a session the list does not
// name, and nothing else can.
func TestSessionsListedAndRevoked(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice := e.register("alice")
		alice2 := e.login("alice", alice.id)
		l1 := alice.signList(nil, 1, nil, alice.dev, alice2.dev)
		alice.must("POST", "/api/devices/list", map[string]string{"list": b64(l1.Marshal())}, nil)
		alice.events(500)
		alice2.events(500)

		// A live connection hears of the login at once.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, err := alice2.dialWS(ctx, nil, alice2.cursor)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		snoop := e.login("alice", nil)
		fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
		p, err := readFrame(fctx, ws)
		fcancel()
		if err != nil || countKind(p.Events, "session_added") != 1 {
			t.Fatalf("alice2's WebSocket got %+v, %v; want the session_added event at once", p, err)
		}
		for _, d := range []*device{alice, alice2} {
			evs := d.events(500)
			if countKind(evs, "session_added") != 1 {
				t.Fatalf("%s got events %v, want one session_added", d.name, kindsOf(evs))
			}
			for _, ev := range evs {
				if ev.Kind == "session_added" && (ev.User == nil || *ev.User != alice.user || ev.Reason != snoop.dev.String()) {
					t.Fatalf("session_added %+v does not name the new session", ev)
				}
			}
		}
		ss := alice.sessions()
		if len(ss) != 3 || !ss[alice.dev].Current || !ss[alice.dev].Keys || !ss[alice.dev].Listed || !ss[alice2.dev].Listed ||
			ss[snoop.dev].Keys || ss[snoop.dev].Listed || ss[snoop.dev].Current || ss[snoop.dev].LastUsed == 0 {
			t.Fatalf("sessions = %+v", ss)
		}

		// A device with keys that the list does not name (it uploaded its
		// bundle after the list) signs out no one; it can be signed out.
		alice3 := e.login("alice", alice.id)
		wantCode(t, alice3.do("DELETE", "/api/sessions/"+snoop.dev.String(), nil, nil), 403, server.CodeForbidden)
		wantCode(t, snoop.do("DELETE", "/api/sessions/"+alice3.dev.String(), nil, nil), 403, server.CodeKeysRequired)
		// A listed device is removed only by a signed list.
		wantCode(t, alice.do("DELETE", "/api/sessions/"+alice2.dev.String(), nil, nil), 409, server.CodeDeviceListed)
		wantCode(t, alice.do("DELETE", "/api/sessions/"+alice.dev.String(), nil, nil), 400, server.CodeBadRequest)
		other := e.register("mallory")
		wantCode(t, alice.do("DELETE", "/api/sessions/"+other.dev.String(), nil, nil), 404, server.CodeNotFound)
		other.must("GET", "/api/me", nil, nil)

		alice2.must("DELETE", "/api/sessions/"+snoop.dev.String(), nil, nil)
		alice2.must("DELETE", "/api/sessions/"+alice3.dev.String(), nil, nil)
		wantCode(t, snoop.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		wantCode(t, alice3.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		if ss := alice.sessions(); len(ss) != 2 {
			t.Fatalf("after signing out, sessions = %+v", ss)
		}
		wantCode(t, alice.do("DELETE", "/api/sessions/"+snoop.dev.String(), nil, nil), 404, server.CodeNotFound)
	})
}

// TestTokensExpireWhenUnused: a token unused for longer than the idle
// limit stops working; its use is recorded at most once an hour.
func TestTokensExpireWhenUnused(t *testing.T) {
	forEachDB(t, server.Config{SessionIdle: 48 * time.Hour}, func(t *testing.T, e *env) {
		alice := e.register("alice")
		idle := e.login("alice", nil)
		snoop := e.login("alice", nil)
		start := e.clock.now.UnixMilli()
		if ss := alice.sessions(); ss[snoop.dev].LastUsed != start {
			t.Fatalf("a new session's last use is %d, want %d", ss[snoop.dev].LastUsed, start)
		}
		e.clock.now = e.clock.now.Add(30 * time.Hour)
		snoop.must("GET", "/api/me", nil, nil) // records the use
		used := e.clock.now.UnixMilli()
		e.clock.now = e.clock.now.Add(10 * time.Minute)
		snoop.must("GET", "/api/me", nil, nil) // within the hour: not recorded again
		if ss := alice.sessions(); ss[snoop.dev].LastUsed != used || ss[alice.dev].LastUsed != e.clock.now.UnixMilli() || ss[idle.dev].LastUsed != start {
			t.Fatalf("last uses %+v, want snoop's at %d (recorded at most once an hour)", ss, used)
		}
		e.clock.now = e.clock.now.Add(30 * time.Hour) // 60 h after idle's last use, 30 h after the others'
		wantCode(t, idle.do("GET", "/api/me", nil, nil), 401, server.CodeSessionExpired)
		wantCode(t, idle.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		snoop.must("GET", "/api/me", nil, nil)
		ss := alice.sessions()
		if _, ok := ss[idle.dev]; ok || len(ss) != 2 {
			t.Fatalf("an expired keyless session is still listed: %+v", ss)
		}
		// A device with keys keeps its place (its list and keys), without
		// a token: it signs in again to use it.
		e.clock.now = e.clock.now.Add(49 * time.Hour)
		wantCode(t, alice.do("GET", "/api/me", nil, nil), 401, server.CodeSessionExpired)
		if err := e.do("", "GET", "/api/me", nil, nil); err == nil {
			t.Fatal("anonymous request passed")
		}
	})
}

// TestTokensNeverExpire: a negative idle limit keeps tokens for ever.
func TestTokensNeverExpire(t *testing.T) {
	forEachDB(t, server.Config{SessionIdle: -1}, func(t *testing.T, e *env) {
		alice := e.register("alice")
		e.clock.now = e.clock.now.Add(10 * 365 * 24 * time.Hour)
		alice.must("GET", "/api/me", nil, nil)
	})
}

// TestChangePassword: only a device in the signed list that knows the
// current password changes it; on request the sessions the list does not
// name are signed out, and the old password no longer signs in.
func TestChangePassword(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice := e.register("alice")
		alice2 := e.login("alice", alice.id)
		l1 := alice.signList(nil, 1, nil, alice.dev, alice2.dev)
		alice.must("POST", "/api/devices/list", map[string]string{"list": b64(l1.Marshal())}, nil)
		snoop := e.login("alice", nil)
		const old, neu = "correct horse alice", "a new password 42"
		req := func(o, n string, others bool) map[string]any {
			return map[string]any{"oldPassword": o, "newPassword": n, "signOutOthers": others}
		}
		wantCode(t, snoop.do("POST", "/api/auth/password", req(old, neu, true), nil), 403, server.CodeKeysRequired)
		wantCode(t, alice.do("POST", "/api/auth/password", req("wrong password", neu, true), nil), 403, server.CodeBadCredentials)
		wantCode(t, alice.do("POST", "/api/auth/password", req(old, "short", true), nil), 400, server.CodeBadRequest)
		wantCode(t, alice.do("POST", "/api/auth/password", req(old, "éééé", true), nil), 400, server.CodeBadRequest) // 4 characters in 8 bytes
		snoop.must("GET", "/api/me", nil, nil)
		var a struct {
			Revoked []protocol.DeviceID `json:"revoked"`
		}
		alice.must("POST", "/api/auth/password", req(old, neu, true), &a)
		if len(a.Revoked) != 1 || a.Revoked[0] != snoop.dev {
			t.Fatalf("revoked %v, want the keyless session %s", a.Revoked, snoop.dev)
		}
		wantCode(t, snoop.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		alice2.must("GET", "/api/me", nil, nil)
		login := func(pw string) error {
			return e.do("", "POST", "/api/auth/login", map[string]string{"username": "alice", "password": pw}, nil)
		}
		wantCode(t, login(old), 401, server.CodeBadCredentials)
		if err := login(neu); err != nil {
			t.Fatal(err)
		}
		// Without signOutOthers, every session stays.
		n := len(alice.sessions())
		alice.must("POST", "/api/auth/password", req(neu, old, false), &a)
		if len(a.Revoked) != 0 || len(alice.sessions()) != n {
			t.Fatalf("a change without sign-out revoked %v", a.Revoked)
		}
		if err := login(old); err != nil {
			t.Fatal(fmt.Errorf("the password changed back does not sign in: %w", err))
		}
	})
}

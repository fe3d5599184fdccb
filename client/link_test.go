//go:build !js

package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// TestLinkDevice: a second device of alice gets her identity key through a
// code she confirms on her first device, then reads and sends in her
// conversations; bob's device sees one account, two devices.
func TestLinkDevice(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob := register(t, n, "alice"), register(t, n, "bob")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, conv, "before the second device"); err != nil {
			t.Fatal(err)
		}
		phone := newClient(t, n, "")
		if err := phone.Login(ctx, "alice", "password of alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := phone.Send(ctx, conv, "no keys yet"); err == nil {
			t.Fatal("a device without the identity key could send")
		}
		code, err := phone.StartLink(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A wrong code confirms nothing.
		if _, err := alice.ApproveLink(ctx, "AAAA-AAAA-AAAA-AAAA-AAAA"); err == nil {
			t.Fatal("a wrong code was accepted")
		}
		dev, err := alice.ApproveLink(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		if dev != phone.DeviceID() {
			t.Fatalf("approved %s, want %s", dev, phone.DeviceID())
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := phone.WaitLink(wctx, 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		pk, ok := phone.IdentityKey()
		ak, _ := alice.IdentityKey()
		if !ok || pk != ak {
			t.Fatal("the linked device does not hold alice's identity key")
		}
		devs, err := alice.Devices(ctx)
		if err != nil || len(devs) != 2 {
			t.Fatalf("alice's devices: %+v %v", devs, err)
		}
		// The new device makes the conversation rotate; messages after that
		// reach both of alice's devices.
		if _, err := bob.Send(ctx, conv, "hello both alices"); err != nil {
			t.Fatal(err)
		}
		if _, err := phone.Send(ctx, conv, "from alice's phone"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, phone); !slices.Equal(got, []string{"bob: hello both alices"}) {
			t.Fatalf("phone read %q", got)
		}
		if got := syncTexts(t, alice); !slices.Equal(got, []string{"bob: before the second device", "bob: hello both alices", "alice: from alice's phone"}) {
			t.Fatalf("alice read %q", got)
		}
		if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: from alice's phone"}) {
			t.Fatalf("bob read %q", got)
		}
		if s := bob.Stats(); len(s.DecryptFailed) != 0 {
			t.Fatalf("bob's failures: %v", s.DecryptFailed)
		}
	})
}

// TestResetIdentity: with no device at hand, a reset gives the account a new
// identity; contacts are warned and keep talking to it.
func TestResetIdentity(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob := register(t, n, "alice"), register(t, n, "bob")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		before, _, err := bob.SafetyNumber(ctx, "alice")
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
		if _, err := alice.Send(ctx, conv, "old device"); err == nil {
			t.Fatal("the old device still works after the reset")
		}
		if _, err := fresh.Send(ctx, conv, "new identity"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: new identity"}) {
			t.Fatalf("bob read %q", got)
		}
		ws, err := bob.Warnings()
		if err != nil || !slices.ContainsFunc(ws, func(w client.Warning) bool { return w.Kind == client.WarnIdentityChanged }) {
			t.Fatalf("bob's warnings: %+v %v", ws, err)
		}
		after, _, err := bob.SafetyNumber(ctx, "alice")
		if err != nil || after == before {
			t.Fatalf("safety number unchanged after a reset: %v", err)
		}
	})
}

// linkAttacker is a session of an account opened with the password only,
// speaking the HTTP API directly: what anyone who learnt the password has.
type linkAttacker struct {
	t      *testing.T
	url    string
	token  string
	user   protocol.UserID
	device protocol.DeviceID
}

func loginAttacker(t *testing.T, url, username string) *linkAttacker {
	t.Helper()
	a := &linkAttacker{t: t, url: url}
	var ans struct {
		Token    string            `json:"token"`
		UserID   protocol.UserID   `json:"userId"`
		DeviceID protocol.DeviceID `json:"deviceId"`
	}
	if status, body := a.do("POST", "/api/auth/login", map[string]string{"username": username, "password": "password of " + username}, &ans); status != 200 {
		t.Fatalf("attacker login: %d %s", status, body)
	}
	a.token, a.user, a.device = ans.Token, ans.UserID, ans.DeviceID
	return a
}

// do sends a request and returns the status and the raw answer, decoding
// a 2xx answer into out.
func (a *linkAttacker) do(method, path string, body, out any) (int, string) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	if resp.StatusCode < 300 && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode, string(data)
}

// request posts a link request for the attacker's own device.
func (a *linkAttacker) request(pub protocol.KEMPublicKey, tag []byte) {
	a.t.Helper()
	if status, body := a.do("POST", "/api/devices/link", map[string]string{"publicKey": b64u(pub.Bytes()), "tag": b64u(tag)}, nil); status != 201 {
		a.t.Fatalf("attacker's link request: %d %s", status, body)
	}
}

// sealed returns what the server holds for the attacker's own request.
func (a *linkAttacker) sealed() []byte {
	a.t.Helper()
	var ans struct {
		Sealed string `json:"sealed"`
	}
	if status, body := a.do("GET", "/api/devices/link/self", nil, &ans); status != 200 {
		a.t.Fatalf("attacker's link result: %d %s", status, body)
	}
	if ans.Sealed == "" {
		return nil
	}
	return unb64u(a.t, ans.Sealed)
}

// startLinked logs a new device into alice's account and starts linking.
func startLinked(t *testing.T, n *node) (*client.Client, string) {
	t.Helper()
	ctx := context.Background()
	phone := newClient(t, n, "")
	if err := phone.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	code, err := phone.StartLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return phone, code
}

func waitLinked(t *testing.T, phone, alice *client.Client) {
	t.Helper()
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := phone.WaitLink(wctx, 20*time.Millisecond); err != nil {
		t.Fatalf("the genuine new device does not link: %v", err)
	}
	pk, ok := phone.IdentityKey()
	ak, _ := alice.IdentityKey()
	if !ok || pk != ak {
		t.Fatal("the linked device does not hold alice's identity key")
	}
}

// TestLinkHijack: whoever knows the account's password (a keyless session)
// cannot list link requests, and cannot get the identity sealed to a
// temporary key of its own when the user types the genuine code, whatever
// request it posts, including copies of the genuine request's fields.
func TestLinkHijack(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice := register(t, n, "alice")
		phone, code := startLinked(t, n)

		// A keyless session of the account cannot list requests.
		att := loginAttacker(t, n.url(), "alice")
		if status, body := att.do("GET", "/api/devices/link", nil, nil); status != 403 || !strings.Contains(body, `"keys_required"`) {
			t.Fatalf("a keyless session lists link requests: %d %s", status, body)
		}

		// Suppose it learnt the genuine request's key and tag anyway (from
		// the server's database): it posts requests of its own that copy
		// them, from three keyless sessions.
		genuine, err := n.st.LinkRequest(ctx, phone.DeviceID())
		if err != nil {
			t.Fatal(err)
		}
		genuinePub, err := protocol.ParseKEMPublicKey(genuine.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		attTmp := secret.NewKEMKey()
		copyTag := att
		copyAll := loginAttacker(t, n.url(), "alice")
		ownTag := loginAttacker(t, n.url(), "alice")
		copyTag.request(attTmp.Public(), genuine.Tag)                   // its own key, the genuine tag
		copyAll.request(genuinePub, genuine.Tag)                        // the genuine key and tag
		ownTag.request(attTmp.Public(), bytes.Repeat([]byte{0x5a}, 32)) // its own key, a tag of its own

		dev, err := alice.ApproveLink(ctx, code)
		if err != nil {
			t.Fatalf("approve the genuine code: %v", err)
		}
		if dev != phone.DeviceID() {
			t.Fatalf("approved %s, not the genuine new device %s", dev, phone.DeviceID())
		}
		for _, a := range []*linkAttacker{copyTag, copyAll, ownTag} {
			if s := a.sealed(); s != nil {
				t.Fatalf("an attacker's request received a sealed identity (%d bytes)", len(s))
			}
		}
		waitLinked(t, phone, alice)
	})
}

// TestLinkMaliciousServer: a server that swaps in its own temporary key,
// adds requests of its own with the genuine tag, or lists the genuine
// request twice gets nothing sealed to a key of its own.
func TestLinkMaliciousServer(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		p := newProxy(t, n)
		alice := clientVia(t, p)
		if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
			t.Fatal(err)
		}
		phone, code := startLinked(t, n)
		evil := secret.NewKEMKey().Public()
		rewrite := func(f func(reqs []any) []any) {
			p.set(func(r *http.Request, body map[string]any) {
				if r.Method == "GET" && r.URL.Path == "/api/devices/link" {
					reqs, _ := body["requests"].([]any)
					body["requests"] = f(reqs)
				}
			})
		}
		withKey := func(req any, pub protocol.KEMPublicKey, dev string) map[string]any {
			m := map[string]any{}
			for k, v := range req.(map[string]any) {
				m[k] = v
			}
			m["publicKey"] = b64u(pub.Bytes())
			if dev != "" {
				m["device"] = dev
			}
			return m
		}

		// The genuine request with the server's key in place of the new
		// device's: the tag does not verify, nothing is sealed.
		rewrite(func(reqs []any) []any { return []any{withKey(reqs[0], evil, "")} })
		if _, err := alice.ApproveLink(ctx, code); !errors.Is(err, client.ErrNoLinkRequest) {
			t.Fatalf("approve with the server's key swapped in: %v, want ErrNoLinkRequest", err)
		}
		// The genuine request listed twice: refused, with an alarm.
		rewrite(func(reqs []any) []any { return []any{reqs[0], reqs[0]} })
		if _, err := alice.ApproveLink(ctx, code); !errors.Is(err, client.ErrLinkAmbiguous) {
			t.Fatalf("approve with the genuine request listed twice: %v, want ErrLinkAmbiguous", err)
		}
		if as, err := alice.Alarms(protocol.ConversationID{}); err != nil || len(as) != 1 || as[0].Kind != client.AlarmServerData || as[0].Severity != client.SeverityCritical {
			t.Fatalf("alarms after an ambiguous link code: %+v, %v", as, err)
		}
		if r, err := n.st.LinkRequest(ctx, phone.DeviceID()); err != nil || r.Sealed != nil {
			t.Fatalf("the genuine request after refused approvals: %+v, %v", r, err)
		}
		// Requests of the server's own, with the genuine tag, beside the
		// genuine one: only the genuine one verifies, and is sealed to.
		rewrite(func(reqs []any) []any {
			fake := withKey(reqs[0], evil, protocol.NewDeviceID().String())
			return []any{fake, withKey(reqs[0], evil, ""), reqs[0], fake}
		})
		dev, err := alice.ApproveLink(ctx, code)
		if err != nil || dev != phone.DeviceID() {
			t.Fatalf("approve beside the server's requests: %s, %v", dev, err)
		}
		waitLinked(t, phone, alice)
	})
}

// TestLinkAmbiguousCode: when someone who knows the password has also seen
// the code and answers it from a session of its own, two requests verify:
// the approving device refuses both, and raises an alarm.
func TestLinkAmbiguousCode(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice := register(t, n, "alice")
		phone, code := startLinked(t, n)
		att := loginAttacker(t, n.url(), "alice")
		key, err := secret.ParseLinkCode(code)
		if err != nil {
			t.Fatal(err)
		}
		attTmp := secret.NewKEMKey()
		att.request(attTmp.Public(), key.Tag(att.user, att.device, attTmp.Public()))
		if _, err := alice.ApproveLink(ctx, code); !errors.Is(err, client.ErrLinkAmbiguous) {
			t.Fatalf("approve a code two requests answer: %v, want ErrLinkAmbiguous", err)
		}
		if s := att.sealed(); s != nil {
			t.Fatal("the attacker's request received a sealed identity")
		}
		if as, err := alice.Alarms(protocol.ConversationID{}); err != nil || len(as) != 1 || as[0].Kind != client.AlarmServerData {
			t.Fatalf("alarms after an ambiguous link code: %+v, %v", as, err)
		}
		// The new device starts again; the attacker no longer has the code.
		code, err = phone.StartLink(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.ApproveLink(ctx, code); err != nil {
			t.Fatal(err)
		}
		waitLinked(t, phone, alice)
	})
}

// TestLinkExpiry: a request expires 10 minutes after the new device made
// it: it is no longer listed; an approval made anyway (here: a server that
// replays its earlier list) is refused; the new device is told to start
// again, and a new code works.
func TestLinkExpiry(t *testing.T) {
	for name, db := range dbs(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var mu sync.Mutex
			now := time.Unix(1_800_000_000, 0)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			n := startNode(t, db(t), server.Config{Now: clock})
			p := newProxy(t, n)
			alice := clientVia(t, p)
			if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
				t.Fatal(err)
			}
			phone, code := startLinked(t, n)

			// The proxy keeps the list it saw while the request was pending.
			var saved []any
			p.set(func(r *http.Request, body map[string]any) {
				if r.Method == "GET" && r.URL.Path == "/api/devices/link" {
					saved, _ = body["requests"].([]any)
				}
			})
			if _, err := alice.ApproveLink(ctx, secret.NewLinkKey().Code()); !errors.Is(err, client.ErrNoLinkRequest) {
				t.Fatalf("approve another code: %v", err)
			}
			if len(saved) != 1 {
				t.Fatalf("the pending list: %v", saved)
			}
			p.set(nil)
			mu.Lock()
			now = now.Add(10 * time.Minute)
			mu.Unlock()

			if _, err := alice.ApproveLink(ctx, code); !errors.Is(err, client.ErrNoLinkRequest) {
				t.Fatalf("approve an expired request: %v, want ErrNoLinkRequest", err)
			}
			p.set(func(r *http.Request, body map[string]any) {
				if r.Method == "GET" && r.URL.Path == "/api/devices/link" {
					body["requests"] = saved
				}
			})
			if _, err := alice.ApproveLink(ctx, code); !errors.Is(err, client.ErrLinkExpired) {
				t.Fatalf("approve an expired request the server still lists: %v, want ErrLinkExpired", err)
			}
			p.set(nil)
			if r, err := n.st.LinkRequest(ctx, phone.DeviceID()); err != nil || r.Sealed != nil {
				t.Fatalf("the expired request after the refused approval: %+v, %v", r, err)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := phone.WaitLink(wctx, 20*time.Millisecond); !errors.Is(err, client.ErrLinkExpired) {
				t.Fatalf("the new device waits on an expired request: %v, want ErrLinkExpired", err)
			}
			// A new code works.
			code, err := phone.StartLink(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := alice.ApproveLink(ctx, code); err != nil {
				t.Fatal(err)
			}
			waitLinked(t, phone, alice)
		})
	}
}

// TestLinkOldState: a link started by a version with 20-character codes
// (its stored code does not parse as a link key) ends with ErrLinkExpired,
// and a new link then works.
func TestLinkOldState(t *testing.T) {
	n := startNode(t, dbs(t)["sqlite"](t), serverConfig())
	ctx := context.Background()
	alice := register(t, n, "alice")
	dir := t.TempDir()
	phone := newClient(t, n, dir)
	if err := phone.Login(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	// The old version's state, written while no client holds the directory.
	if err := phone.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := client.NewDirStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, err := json.Marshal(map[string]any{"tmpSeed": b64u(bytes.Repeat([]byte{7}, 32)), "code": "DGTA-CAQD-AQCQ-MBYI-BEFA"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put("link", old); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	phone = newClient(t, n, dir)
	if err := phone.WaitLink(ctx, 20*time.Millisecond); !errors.Is(err, client.ErrLinkExpired) {
		t.Fatalf("waiting on an old link: %v, want ErrLinkExpired", err)
	}
	code, err := phone.StartLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ApproveLink(ctx, code); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, phone, alice)
}

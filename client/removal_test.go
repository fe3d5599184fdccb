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

// Removal as the client enforces it (protocol.md §7.4, §7.5): a malicious
// server that names a stale epoch as current, serves an epoch a removed
// member made for the record before its removal, or an epoch whose
// recipients are not the member devices, does not get a member to send in
// it. Each refusal leaves an alarm.

// mitm stands for a server that answers some requests itself (handle) and
// forwards the rest to a real node through the rewriting proxy (rewrite).
type mitm struct {
	*proxy
	hmu    sync.Mutex
	handle func(r *http.Request, body []byte) (status int, answer any, ok bool)
}

func newMITM(t *testing.T, n *node) *mitm {
	m := &mitm{proxy: newProxy(t, n)}
	inner := m.srv.Config.Handler
	m.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		m.hmu.Lock()
		h := m.handle
		m.hmu.Unlock()
		if h != nil {
			if status, answer, ok := h(r, body); ok {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				json.NewEncoder(w).Encode(answer)
				return
			}
		}
		inner.ServeHTTP(w, r)
	})
	return m
}

func (m *mitm) set(handle func(r *http.Request, body []byte) (int, any, bool), rewrite func(r *http.Request, body map[string]any)) {
	m.hmu.Lock()
	m.handle = handle
	m.hmu.Unlock()
	m.proxy.set(rewrite)
}

func (m *mitm) setRewrite(rewrite func(r *http.Request, body map[string]any)) { m.proxy.set(rewrite) }

// viaMITM registers a user whose client talks to the server through m,
// its requests bounded in time (m may hold an answer back).
func viaMITM(t *testing.T, m *mitm, name string) *client.Client {
	t.Helper()
	return registerVia(t, m.proxy, name, func(o *client.Options) { o.HTTPClient = &http.Client{Timeout: 10 * time.Second} })
}

// envelopes records the envelopes a client posts.
type envelopes struct {
	mu  sync.Mutex
	all [][]byte
}

// capture records the envelope of a message post (nil if r is not one).
func (e *envelopes) capture(t *testing.T, r *http.Request, body []byte) *protocol.Envelope {
	if r.Method != "POST" || !strings.HasSuffix(r.URL.Path, "/messages") {
		return nil
	}
	var req struct {
		Envelope string `json:"envelope"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Error(err)
		return nil
	}
	b := unb64u(t, req.Envelope)
	env, err := protocol.ParseEnvelope(b)
	if err != nil {
		t.Error(err)
		return nil
	}
	e.mu.Lock()
	e.all = append(e.all, b)
	e.mu.Unlock()
	return env
}

func (e *envelopes) list() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

// accepted is a server's answer to a message post it "stored".
func accepted(env *protocol.Envelope) (int, any, bool) {
	return http.StatusCreated, map[string]any{"seq": 9000 + env.Counter, "epoch": env.Epoch, "createdAt": time.Now().UnixMilli()}, true
}

// deliver has the server hand envs to the client behind m as new messages
// of its stream, from seq 5000 on, after the events of the real stream
// that keep (if not nil) keeps.
func deliver(m *mitm, envs [][]byte, keep func(body map[string]any)) {
	m.setRewrite(func(r *http.Request, body map[string]any) {
		if r.URL.Path != "/api/sync" {
			return
		}
		if keep != nil {
			keep(body)
		}
		evs, _ := body["events"].([]any)
		for i, b := range envs {
			env, err := protocol.ParseEnvelope(b)
			if err != nil {
				continue
			}
			evs = append(evs, map[string]any{"id": 0, "kind": "message", "conversation": env.Conversation.String(),
				"message": map[string]any{"conversation": env.Conversation.String(), "seq": 5000 + i, "sender": env.Sender.Device.String(),
					"senderUser": env.Sender.User.String(), "epoch": env.Epoch, "envelope": b64u(b), "createdAt": time.Now().UnixMilli()}})
		}
		body["events"] = evs
	})
}

// readable returns the texts of envs that c decrypts when the server
// delivers them.
func readable(t *testing.T, c *client.Client, m *mitm, envs [][]byte) []string {
	t.Helper()
	deliver(m, envs, nil)
	defer m.setRewrite(nil)
	res, err := c.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, msg := range res.Messages {
		out = append(out, msg.Text)
	}
	return out
}

func wantAlarm(t *testing.T, c *client.Client, conv protocol.ConversationID, kind string) {
	t.Helper()
	as, err := c.Alarms(conv)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Kind == kind {
			return
		}
	}
	t.Fatalf("%s: no %s alarm for %s (alarms %+v)", c.Username(), kind, conv, as)
}

func isConv(r *http.Request, conv protocol.ConversationID) bool {
	return r.Method == "GET" && r.URL.Path == "/api/conversations/"+conv.String()
}

func TestRemovalEnforced(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})

	// setup: alice (admin), bob and carol through their own servers; every
	// device holds epoch 1; then alice removes carol and bob verifies it.
	setup := func(t *testing.T, p string) (alice, bob, carol *client.Client, mb, mc *mitm, conv protocol.ConversationID) {
		alice = register(t, n, p+"alice")
		mb, mc = newMITM(t, n), newMITM(t, n)
		bob, carol = viaMITM(t, mb, p+"bob"), viaMITM(t, mc, p+"carol")
		conv, err := alice.CreateConversation(ctx, "", p+"bob", p+"carol")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Send(ctx, conv, "before the removal"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client.Client{bob, carol} {
			if got := syncTexts(t, c); len(got) != 1 {
				t.Fatalf("%s read %q", c.Username(), got)
			}
		}
		if err := alice.RemoveMembers(ctx, conv, p+"carol"); err != nil {
			t.Fatal(err)
		}
		syncTexts(t, bob)
		return
	}

	// (a) The server says "epoch 1, no rotation needed" after the removal.
	// Bob does not send in epoch 1, which carol still holds.
	t.Run("stale epoch named current", func(t *testing.T) {
		_, bob, carol, mb, mc, conv := setup(t, "a")
		var sent envelopes
		mb.set(func(r *http.Request, body []byte) (int, any, bool) {
			if env := sent.capture(t, r, body); env != nil && env.Epoch == 1 {
				return accepted(env) // stored, for carol
			}
			return 0, nil, false
		}, func(r *http.Request, body map[string]any) {
			if isConv(r, conv) {
				body["epoch"], body["rotationRequired"] = 1, false
			}
		})
		m, err := bob.Send(ctx, conv, "carol must not read this")
		if err != nil {
			t.Fatal(err)
		}
		if m.Epoch == 1 {
			t.Fatal("bob sent in epoch 1, made before carol's removal")
		}
		wantAlarm(t, bob, conv, client.AlarmStaleEpoch)
		if got := readable(t, carol, mc, sent.list()); len(got) != 0 {
			t.Fatalf("carol read %q", got)
		}
	})

	// (b) Carol, removed, makes epoch 2 for the record where she was still
	// a member, sealed to bob, and writes in it; the server names it as
	// current to bob. Bob neither sends nor reads in it.
	t.Run("epoch of a removed member", func(t *testing.T) {
		alice, bob, carol, mb, mc, conv := setup(t, "b")
		var dist []byte
		var carolSent envelopes
		epoch := 1
		var mu sync.Mutex
		// Carol's server keeps her view at record 0 and takes her epoch.
		mc.set(func(r *http.Request, body []byte) (int, any, bool) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case isConv(r, conv):
				return 200, map[string]any{"id": conv.String(), "epoch": epoch, "rotationRequired": epoch == 1, "chainSeq": 0, "lastSeq": 1}, true
			case strings.HasSuffix(r.URL.Path, "/records"):
				return 200, map[string]any{"records": []any{}}, true
			case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/sessions"):
				var req struct {
					Session string `json:"session"`
				}
				if err := json.Unmarshal(body, &req); err != nil {
					t.Error(err)
				}
				dist, epoch = unb64u(t, req.Session), 2
				return http.StatusCreated, map[string]any{"epoch": 2}, true
			}
			if env := carolSent.capture(t, r, body); env != nil {
				return accepted(env)
			}
			return 0, nil, false
		}, nil)
		if _, err := carol.Send(ctx, conv, "carol is still here"); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		d, err := protocol.ParseDistribution(dist)
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if d.Epoch != 2 || d.ChainSeq != 0 {
			t.Fatalf("carol made epoch %d for record %d", d.Epoch, d.ChainSeq)
		}
		entry := d.Entry(protocol.DeviceRef{User: bob.UserID(), Device: bob.DeviceID()})
		if entry == nil {
			t.Fatal("carol's epoch is not sealed to bob")
		}
		// Bob's server names carol's epoch as current.
		var bobSent envelopes
		mb.set(func(r *http.Request, body []byte) (int, any, bool) {
			if r.URL.Path == "/api/conversations/"+conv.String()+"/sessions/2/initial-session" {
				return 200, map[string]any{"conversation": conv.String(), "epoch": 2, "chainSeq": 0, "distribution": b64u(dist),
					"preKeyId": entry.PreKeyID, "initiatorEphemeralKey": b64u(entry.Enc[:]), "ciphertext": b64u(entry.Ciphertext[:])}, true
			}
			if env := bobSent.capture(t, r, body); env != nil && env.Epoch == 2 {
				return accepted(env)
			}
			return 0, nil, false
		}, func(r *http.Request, body map[string]any) {
			if isConv(r, conv) {
				body["epoch"], body["rotationRequired"] = 2, false
			}
		})
		m, err := bob.Send(ctx, conv, "for alice only")
		if err == nil && m.Epoch == 2 {
			t.Fatal("bob sent in the epoch carol made after her removal")
		}
		if err != nil && !errors.Is(err, client.ErrServerMisbehaved) {
			t.Fatalf("bob: %v, want ErrServerMisbehaved", err)
		}
		wantAlarm(t, bob, conv, client.AlarmStaleEpoch)
		// Carol's message in her epoch is not shown to bob either.
		mb.set(func(r *http.Request, body []byte) (int, any, bool) {
			if r.URL.Path == "/api/conversations/"+conv.String()+"/sessions/2/initial-session" {
				return 200, map[string]any{"conversation": conv.String(), "epoch": 2, "chainSeq": 0, "distribution": b64u(dist),
					"preKeyId": entry.PreKeyID, "initiatorEphemeralKey": b64u(entry.Enc[:]), "ciphertext": b64u(entry.Ciphertext[:])}, true
			}
			return 0, nil, false
		}, nil)
		deliverTo := carolSent.list()
		if got := readable(t, bob, mb, deliverTo); len(got) != 0 {
			t.Fatalf("bob read %q from removed carol", got)
		}
		// The server stops lying. Alice makes the real epoch 2, for the
		// record that removed carol: bob reads it, and his next message
		// goes in it, which carol cannot read.
		mb.set(func(r *http.Request, body []byte) (int, any, bool) {
			bobSent.capture(t, r, body)
			return 0, nil, false
		}, nil)
		if _, err := alice.Send(ctx, conv, "alice after the removal"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, bob); !slices.Contains(got, "balice: alice after the removal") {
			t.Fatalf("bob read %q", got)
		}
		m, err = bob.Send(ctx, conv, "for alice only, again")
		if err != nil || m.Epoch != 2 {
			t.Fatalf("bob sent in epoch %d: %v", m.Epoch, err)
		}
		if got := readable(t, carol, mc, bobSent.list()); len(got) != 0 {
			t.Fatalf("carol read %q", got)
		}
	})

	// Carol, removed, writes on in epoch 1, which bob holds; the server
	// delivers it after the removal. Bob refuses it: every message of an
	// epoch made for record 0 came before record 1 in his event stream.
	t.Run("removed member writes on", func(t *testing.T) {
		_, bob, carol, mb, mc, conv := setup(t, "w")
		var carolSent envelopes
		mc.set(func(r *http.Request, body []byte) (int, any, bool) {
			if isConv(r, conv) {
				return 200, map[string]any{"id": conv.String(), "epoch": 1, "rotationRequired": false, "chainSeq": 0, "lastSeq": 1}, true
			}
			if env := carolSent.capture(t, r, body); env != nil {
				return accepted(env)
			}
			return 0, nil, false
		}, nil)
		if _, err := carol.Send(ctx, conv, "carol writes on"); err != nil {
			t.Fatal(err)
		}
		deliver(mb, carolSent.list(), nil)
		res, err := bob.Sync(ctx)
		mb.setRewrite(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) != 0 {
			t.Fatalf("bob read %+v from removed carol", res.Messages)
		}
		if len(res.Failures) != 1 || res.Failures[0].Reason != "server_misbehaved" {
			t.Fatalf("failures %+v", res.Failures)
		}
		wantAlarm(t, bob, conv, client.AlarmStaleEpoch)
	})

	// Carol, removed, makes epoch 3 for record 0 while bob, who has not
	// yet received the removal in his stream but verified it when he sent,
	// holds epoch 2 for record 1. The server delivers carol's message
	// before the removal: bob refuses the epoch, out of order with his.
	t.Run("forged epoch out of order", func(t *testing.T) {
		alice := register(t, n, "oalice")
		mb, mc := newMITM(t, n), newMITM(t, n)
		bob, carol := viaMITM(t, mb, "obob"), viaMITM(t, mc, "ocarol")
		conv, err := alice.CreateConversation(ctx, "", "obob", "ocarol")
		if err != nil {
			t.Fatal(err)
		}
		syncTexts(t, carol)
		// Bob's stream stops before the removal: it shows messages only,
		// and never moves past the first answer.
		var cursor float64
		messagesOnly := func(body map[string]any) {
			evs, _ := body["events"].([]any)
			var keep []any
			for _, x := range evs {
				if e, _ := x.(map[string]any); e["kind"] == "message" {
					keep = append(keep, x)
				}
			}
			body["events"], body["more"] = keep, false
			if cursor == 0 {
				cursor, _ = body["cursor"].(float64)
			}
			body["cursor"] = cursor
		}
		mb.setRewrite(func(r *http.Request, body map[string]any) {
			if r.URL.Path == "/api/sync" {
				messagesOnly(body)
			}
		})
		syncTexts(t, bob)
		if err := alice.RemoveMembers(ctx, conv, "ocarol"); err != nil {
			t.Fatal(err)
		}
		m, err := bob.Send(ctx, conv, "after the removal")
		if err != nil || m.Epoch != 2 {
			t.Fatalf("bob sent in epoch %d: %v", m.Epoch, err)
		}
		var dist []byte
		var carolSent envelopes
		epoch := 2
		var mu sync.Mutex
		mc.set(func(r *http.Request, body []byte) (int, any, bool) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case isConv(r, conv):
				return 200, map[string]any{"id": conv.String(), "epoch": epoch, "rotationRequired": epoch == 2, "chainSeq": 0, "lastSeq": 2}, true
			case strings.HasSuffix(r.URL.Path, "/records"):
				return 200, map[string]any{"records": []any{}}, true
			case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/sessions"):
				var req struct {
					Session string `json:"session"`
				}
				if err := json.Unmarshal(body, &req); err != nil {
					t.Error(err)
				}
				dist, epoch = unb64u(t, req.Session), 3
				return http.StatusCreated, map[string]any{"epoch": 3}, true
			}
			if env := carolSent.capture(t, r, body); env != nil {
				return accepted(env)
			}
			return 0, nil, false
		}, nil)
		if _, err := carol.Send(ctx, conv, "carol in epoch 3"); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		d, err := protocol.ParseDistribution(dist)
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		entry := d.Entry(protocol.DeviceRef{User: bob.UserID(), Device: bob.DeviceID()})
		if d.Epoch != 3 || d.ChainSeq != 0 || entry == nil {
			t.Fatalf("carol made epoch %d for record %d", d.Epoch, d.ChainSeq)
		}
		mb.set(func(r *http.Request, body []byte) (int, any, bool) {
			if r.URL.Path == "/api/conversations/"+conv.String()+"/sessions/3/initial-session" {
				return 200, map[string]any{"conversation": conv.String(), "epoch": 3, "chainSeq": 0, "distribution": b64u(dist),
					"preKeyId": entry.PreKeyID, "initiatorEphemeralKey": b64u(entry.Enc[:]), "ciphertext": b64u(entry.Ciphertext[:])}, true
			}
			return 0, nil, false
		}, nil)
		deliver(mb, carolSent.list(), messagesOnly)
		res, err := bob.Sync(ctx)
		mb.set(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) != 0 {
			t.Fatalf("bob read %+v from removed carol", res.Messages)
		}
		wantAlarm(t, bob, conv, client.AlarmStaleEpoch)
	})

	// (c) An epoch named as current whose recipients are not the member
	// devices: one missing (a device linked since, the rotation it needs
	// hidden), or one extra (a device the account no longer lists).
	t.Run("coverage", func(t *testing.T) {
		t.Run("missing device", func(t *testing.T) {
			alice := register(t, n, "calice")
			mb := newMITM(t, n)
			bob := viaMITM(t, mb, "cbob")
			register(t, n, "ccarol")
			conv, err := alice.CreateConversation(ctx, "", "cbob", "ccarol")
			if err != nil {
				t.Fatal(err)
			}
			if err := alice.RemoveMembers(ctx, conv, "ccarol"); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Send(ctx, conv, "in epoch 2"); err != nil {
				t.Fatal(err)
			}
			tablet := linkDevice(t, n, bob, "password of cbob")
			mb.set(nil, func(r *http.Request, body map[string]any) {
				if isConv(r, conv) {
					body["rotationRequired"] = false
				}
			})
			m, err := bob.Send(ctx, conv, "to my tablet too")
			if err != nil {
				t.Fatal(err)
			}
			if m.Epoch == 2 {
				t.Fatal("bob sent in an epoch that does not cover his tablet")
			}
			wantAlarm(t, bob, conv, client.AlarmEquivocation)
			res, err := tablet.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(res.Messages, func(m client.Message) bool { return m.Text == "to my tablet too" }) {
				t.Fatalf("the tablet read %+v", res.Messages)
			}
		})
		t.Run("extra device", func(t *testing.T) {
			alice := register(t, n, "xalice")
			phone := linkDevice(t, n, alice, "password of xalice")
			mb := newMITM(t, n)
			bob := viaMITM(t, mb, "xbob")
			conv, err := alice.CreateConversation(ctx, "", "xbob")
			if err != nil {
				t.Fatal(err)
			}
			// Bob's server no longer lists alice's phone.
			mb.set(nil, func(r *http.Request, body map[string]any) {
				if r.URL.Path != "/api/users/"+alice.UserID().String() {
					return
				}
				devs, _ := body["devices"].([]any)
				body["devices"] = slices.DeleteFunc(devs, func(x any) bool {
					d, _ := x.(map[string]any)
					return d["id"] == phone.DeviceID().String()
				})
			})
			m, err := bob.Send(ctx, conv, "hello")
			if err == nil && m.Epoch == 1 {
				t.Fatal("bob sent in an epoch with a device his view of alice does not list")
			}
			wantAlarm(t, bob, conv, client.AlarmEquivocation)
		})
		t.Run("device signed by another key", func(t *testing.T) {
			alice := register(t, n, "kalice")
			phone := linkDevice(t, n, alice, "password of kalice")
			mb := newMITM(t, n)
			bob := viaMITM(t, mb, "kbob")
			conv, err := alice.CreateConversation(ctx, "", "kbob")
			if err != nil {
				t.Fatal(err)
			}
			// Bob's server lists alice's phone with a pre-key signed by a
			// key of its own: the phone is not a device bob can verify.
			fake, _, err := secret.NewBundle(secret.NewIdentity(), alice.UserID(), phone.DeviceID(), 1, 1, 1_780_000_000)
			if err != nil {
				t.Fatal(err)
			}
			mb.set(nil, func(r *http.Request, body map[string]any) {
				if r.URL.Path != "/api/users/"+alice.UserID().String() {
					return
				}
				for _, x := range body["devices"].([]any) {
					if d, _ := x.(map[string]any); d["id"] == phone.DeviceID().String() {
						d["signedPreKey"] = b64u(fake.Signed.Marshal())
					}
				}
			})
			m, err := bob.Send(ctx, conv, "hello")
			if err == nil && m.Epoch == 1 {
				t.Fatal("bob sent in an epoch with a device whose pre-key alice's identity did not sign")
			}
			wantAlarm(t, bob, conv, client.AlarmEquivocation)
		})
	})

	// Legitimate history: bob is offline while epoch 2 is made for record 0
	// and carol writes in it, then carol is removed. Back, bob sends first
	// (verifying the removal, in an epoch made for it), then syncs: he
	// reads carol's message in epoch 2, made for the older record, with no
	// alarm.
	t.Run("offline member reads the epoch before a removal", func(t *testing.T) {
		n := startNode(t, t.TempDir()+"/sandi.db", server.Config{RotateAfterMessages: 2})
		alice, bob, carol := register(t, n, "halice"), register(t, n, "hbob"), register(t, n, "hcarol")
		conv, err := alice.CreateConversation(ctx, "", "hbob", "hcarol")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"one", "two"} {
			if _, err := alice.Send(ctx, conv, s); err != nil {
				t.Fatal(err)
			}
		}
		m, err := carol.Send(ctx, conv, "carol before her removal")
		if err != nil || m.Epoch != 2 {
			t.Fatalf("carol sent in epoch %d: %v", m.Epoch, err)
		}
		if err := alice.RemoveMembers(ctx, conv, "hcarol"); err != nil {
			t.Fatal(err)
		}
		if m, err = bob.Send(ctx, conv, "bob is back"); err != nil || m.Epoch != 3 {
			t.Fatalf("bob sent in epoch %d: %v", m.Epoch, err)
		}
		got := syncTexts(t, bob)
		if !slices.Equal(got, []string{"halice: one", "halice: two", "hcarol: carol before her removal"}) {
			t.Fatalf("bob read %q", got)
		}
		as, err := bob.Alarms(conv)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.Kind == client.AlarmStaleEpoch || a.Kind == client.AlarmEquivocation {
				t.Fatalf("alarm %+v", a)
			}
		}
	})

	// (d) The server names an epoch lower than one bob holds: bob sends in
	// the highest he holds.
	t.Run("epoch going down", func(t *testing.T) {
		n := startNode(t, t.TempDir()+"/sandi.db", server.Config{RotateAfterMessages: 2})
		alice := register(t, n, "dalice")
		mb := newMITM(t, n)
		bob := viaMITM(t, mb, "dbob")
		conv, err := alice.CreateConversation(ctx, "", "dbob")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"one", "two", "three"} {
			if _, err := alice.Send(ctx, conv, s); err != nil {
				t.Fatal(err)
			}
		}
		if got := syncTexts(t, bob); len(got) != 3 {
			t.Fatalf("bob read %q", got)
		}
		mb.set(nil, func(r *http.Request, body map[string]any) {
			if isConv(r, conv) {
				body["epoch"], body["rotationRequired"] = 1, false
			}
		})
		m, err := bob.Send(ctx, conv, "in the newest epoch")
		if err != nil {
			t.Fatal(err)
		}
		if m.Epoch != 2 {
			t.Fatalf("bob sent in epoch %d, holds epoch 2", m.Epoch)
		}
		wantAlarm(t, bob, conv, client.AlarmStaleEpoch)
	})
}

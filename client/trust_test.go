//go:build !js

package client_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Attacks on the device's identity trust store (protocol.md "Client trust
// state"): a server that presents an identity key of its own for a contact,
// in a conversation it invents, in a lookup, in a rekey or for the device's
// own account.

// answerProxy is a proxy that may also answer some requests itself, as a server
// that invents data does.
type answerProxy struct {
	*proxy
	hmu    sync.Mutex
	handle func(w http.ResponseWriter, r *http.Request) bool
}

func newAnswerProxy(t *testing.T, n *node) *answerProxy {
	m := &answerProxy{proxy: newProxy(t, n)}
	inner := m.srv.Config.Handler
	m.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hmu.Lock()
		h := m.handle
		m.hmu.Unlock()
		if h != nil && h(w, r) {
			return
		}
		inner.ServeHTTP(w, r)
	})
	return m
}

func (m *answerProxy) answer(h func(w http.ResponseWriter, r *http.Request) bool) {
	m.hmu.Lock()
	m.handle = h
	m.hmu.Unlock()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// rawCall makes one API call as a device whose token the test holds.
func rawCall(t *testing.T, n *node, token, method, path string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, n.url()+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: status %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// claimBundle claims one bundle of user, as any account of the server may
// (the server itself hands them out).
func claimBundle(t *testing.T, n *node, user protocol.UserID) *protocol.Bundle {
	t.Helper()
	var reg struct {
		Token    string            `json:"token"`
		UserID   protocol.UserID   `json:"userId"`
		DeviceID protocol.DeviceID `json:"deviceId"`
	}
	name := "claimer" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	rawCall(t, n, "", "POST", "/api/auth/register", map[string]string{"username": name, "password": "password of " + name, "deviceName": "x"}, &reg)
	// Only a device with keys claims: the claimer uploads a bundle first.
	own, _, err := secret.NewBundle(secret.NewIdentity(), reg.UserID, reg.DeviceID, 1, 1, time.Now().Unix())
	if err != nil {
		t.Fatal(err)
	}
	rawCall(t, n, reg.Token, "POST", "/api/keys/prekey-bundle", map[string]any{"bundle": b64u(own.Marshal())}, nil)
	var ca struct {
		Bundles []struct {
			User   string `json:"user"`
			Bundle string `json:"bundle"`
		} `json:"bundles"`
	}
	rawCall(t, n, reg.Token, "POST", "/api/keys/claim", map[string]any{"users": []string{user.String()}}, &ca)
	if len(ca.Bundles) == 0 {
		t.Fatal("no bundle to claim")
	}
	b, err := protocol.ParseBundle(unb64u(t, ca.Bundles[0].Bundle))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forgedConv is a conversation the server invents: its genesis names user
// victim with an identity key the server holds, and its first epoch is
// sealed to the recipient's claimed bundle. The server can read what is
// sent in it (ep).
type forgedConv struct {
	id      protocol.ConversationID
	fake    *secret.IdentityPrivateKey
	dev     protocol.DeviceRef // the server's device posing as victim's
	genesis []byte
	dist    *protocol.Distribution
	ep      *secret.Epoch

	mu      sync.Mutex
	replies [][]byte // envelopes the recipient sent in it
}

func forgeConv(t *testing.T, victim, to protocol.UserID, toKey protocol.IdentityKey, bundle *protocol.Bundle) *forgedConv {
	t.Helper()
	f := &forgedConv{id: protocol.NewConversationID(), fake: secret.NewIdentity()}
	f.dev = protocol.DeviceRef{User: victim, Device: protocol.NewDeviceID()}
	rec := &protocol.Record{Op: protocol.OpCreate, Conversation: f.id, Time: time.Now().UnixMilli(), Author: victim,
		Members: []protocol.Member{{User: victim, Identity: f.fake.Public(), Role: protocol.RoleAdmin}, {User: to, Identity: toKey, Role: protocol.RoleMember}}}
	secret.SignRecord(f.fake, rec)
	chain, err := protocol.Genesis(rec)
	if err != nil {
		t.Fatal(err)
	}
	f.genesis = rec.Marshal()
	own, _, err := secret.NewBundle(f.fake, victim, f.dev.Device, 1, 0, time.Now().Unix())
	if err != nil {
		t.Fatal(err)
	}
	d, s, err := secret.NewDistribution(f.fake, secret.EpochRequest{Chain: chain, Epoch: 1, Creator: f.dev, Time: time.Now().UnixMilli(),
		Bundles: []*protocol.Bundle{own, bundle}})
	if err != nil {
		t.Fatal(err)
	}
	f.dist = d
	if f.ep, err = secret.NewEpoch(s, f.id, 1, f.dev, d.Devices()); err != nil {
		t.Fatal(err)
	}
	return f
}

// message returns a sync event carrying text from the server's device.
func (f *forgedConv) message(t *testing.T, seq uint64, text string) map[string]any {
	t.Helper()
	pt, _ := json.Marshal(map[string]any{"type": "text", "text": text, "sentAt": time.Now().UnixMilli()})
	env, err := f.ep.Encrypt(f.fake, pt)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kind": "message", "conversation": f.id.String(), "message": map[string]any{
		"conversation": f.id.String(), "seq": seq, "sender": f.dev.Device.String(), "senderUser": f.dev.User.String(),
		"epoch": 1, "envelope": b64u(env.Marshal()), "createdAt": time.Now().UnixMilli()}}
}

// serve answers every request about the invented conversation.
func (f *forgedConv) serve(self protocol.DeviceRef) func(w http.ResponseWriter, r *http.Request) bool {
	base := "/api/conversations/" + f.id.String()
	return func(w http.ResponseWriter, r *http.Request) bool {
		switch p := r.URL.Path; {
		case p == base+"/records":
			recs := []string{}
			if r.URL.Query().Get("from") == "0" {
				recs = append(recs, b64u(f.genesis))
			}
			writeJSON(w, map[string]any{"records": recs})
		case p == base+"/sessions/1/initial-session":
			e := f.dist.Entry(self)
			writeJSON(w, map[string]any{"epoch": 1, "distribution": b64u(f.dist.Marshal()), "preKeyId": e.PreKeyID,
				"initiatorEphemeralKey": b64u(e.Enc[:]), "ciphertext": b64u(e.Ciphertext[:])})
		case p == base:
			writeJSON(w, map[string]any{"id": f.id.String(), "epoch": 1, "rotationRequired": false, "chainSeq": 0, "lastSeq": 1})
		case p == base+"/messages" && r.Method == "POST":
			var body struct {
				Envelope string `json:"envelope"`
			}
			json.NewDecoder(r.Body).Decode(&body)
			f.mu.Lock()
			f.replies = append(f.replies, []byte(body.Envelope))
			f.mu.Unlock()
			w.WriteHeader(http.StatusCreated)
			writeJSON(w, map[string]any{"seq": 2, "createdAt": time.Now().UnixMilli()})
		default:
			return false
		}
		return true
	}
}

// injectOnce adds events to the next sync page only.
func injectOnce(events ...map[string]any) func(r *http.Request, body map[string]any) {
	var once sync.Once
	return func(r *http.Request, body map[string]any) {
		if r.URL.Path != "/api/sync" {
			return
		}
		once.Do(func() {
			evs, _ := body["events"].([]any)
			for _, e := range events {
				evs = append(evs, e)
			}
			body["events"] = evs
		})
	}
}

func alarmsOf(t *testing.T, c *client.Client, conv protocol.ConversationID, kind string) []client.Alarm {
	t.Helper()
	all, err := c.Alarms(conv)
	if err != nil {
		t.Fatal(err)
	}
	var out []client.Alarm
	for _, a := range all {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

func safety(t *testing.T, c *client.Client, user string) string {
	t.Helper()
	n, _, err := c.SafetyNumber(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// verify marks other verified on c, with the number other's device shows.
func verify(t *testing.T, c, other *client.Client) {
	t.Helper()
	n := safety(t, other, c.Username())
	if err := c.MarkVerified(context.Background(), other.Username(), []byte(n)); err != nil {
		t.Fatal(err)
	}
}

func wantNotAccepted(t *testing.T, err error, who protocol.UserID) {
	t.Helper()
	var ie *client.IdentityError
	if !errors.Is(err, client.ErrIdentityNotAccepted) || !errors.As(err, &ie) || ie.User != who {
		t.Fatalf("got %v, want an identity error naming %s", err, who)
	}
}

// TestTrustInventedConversation: the server invents a conversation
// "created by alice" whose genesis names alice with a key the server holds,
// sealed to bob's pre-key. Bob knows alice from a real conversation.
func TestTrustInventedConversation(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	for i, verified := range []bool{false, true} {
		t.Run(map[bool]string{false: "unverified", true: "verified"}[verified], func(t *testing.T) {
			m := newAnswerProxy(t, n)
			suffix := strconv.Itoa(i)
			alice := register(t, n, "alice"+suffix)
			bob := clientVia(t, m.proxy)
			if err := bob.Register(ctx, "bob"+suffix, "password bob"); err != nil {
				t.Fatal(err)
			}
			real, err := alice.CreateConversation(ctx, "", bob.Username())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Send(ctx, real, "the real alice"); err != nil {
				t.Fatal(err)
			}
			if got := syncTexts(t, bob); !slices.Equal(got, []string{alice.Username() + ": the real alice"}) {
				t.Fatalf("bob read %q", got)
			}
			if verified {
				verify(t, bob, alice)
			}
			before := safety(t, bob, alice.Username())

			bobKey, _ := bob.IdentityKey()
			f := forgeConv(t, alice.UserID(), bob.UserID(), bobKey, claimBundle(t, n, bob.UserID()))
			m.answer(f.serve(protocol.DeviceRef{User: bob.UserID(), Device: bob.DeviceID()}))
			m.set(injectOnce(map[string]any{"kind": "membership", "conversation": f.id.String()}, f.message(t, 1, "it is me, alice")))
			res, err := bob.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			shown := slices.ContainsFunc(res.Messages, func(m client.Message) bool { return m.Conversation == f.id })
			// A key met in a genesis record is never accepted by itself,
			// verified contact or not: nothing from the server's key is
			// shown (the message is held for the user's decision),
			// nothing is sent, the safety number stays the pinned one,
			// and the change waits for the user, with an alarm.
			if shown || len(res.Failures) != 0 || len(res.Held) != 1 || res.Held[0].Reason != client.ReasonHeld || !errors.Is(res.Held[0], client.ErrIdentityNotAccepted) {
				t.Fatalf("messages %+v failures %+v held %+v", res.Messages, res.Failures, res.Held)
			}
			kind := client.AlarmIdentityChanged
			if verified {
				kind = client.AlarmIdentityBlocked
			}
			if len(alarmsOf(t, bob, f.id, kind)) == 0 || len(alarmsOf(t, bob, real, kind)) == 0 {
				t.Fatal("no identity alarm for the invented conversation and the real one")
			}
			_, err = bob.Send(ctx, f.id, "hello alice?")
			wantNotAccepted(t, err, alice.UserID())
			_, err = bob.Send(ctx, real, "and here?")
			wantNotAccepted(t, err, alice.UserID())
			if len(f.replies) != 0 {
				t.Fatal("bob sent into the invented conversation")
			}
			if after := safety(t, bob, alice.Username()); after != before {
				t.Fatal("the safety number moved to an unaccepted key")
			}
			ct, err := bob.Contact(ctx, alice.Username())
			if err != nil || ct.Pending == nil || ct.PendingSafetyNumber == before || ct.Verified != verified {
				t.Fatalf("contact %+v %v", ct, err)
			}
			// Bob refuses the change: the real conversation works again,
			// the invented one stays unusable.
			if err := bob.RejectIdentity(alice.Username()); err != nil {
				t.Fatal(err)
			}
			if _, err := bob.Send(ctx, real, "you are the real one"); err != nil {
				t.Fatal(err)
			}
			if got := syncTexts(t, alice); !slices.Equal(got, []string{bob.Username() + ": you are the real one"}) {
				t.Fatalf("alice read %q", got)
			}
			_, err = bob.Send(ctx, f.id, "hello alice?")
			wantNotAccepted(t, err, alice.UserID())
			if len(f.replies) != 0 {
				t.Fatal("bob sent into the invented conversation")
			}
			if ct, err := bob.Contact(ctx, alice.Username()); err != nil || ct.Pending != nil || ct.SafetyNumber != before {
				t.Fatalf("contact after reject %+v %v", ct, err)
			}
			// The held message is dropped, reported as a failure, never shown.
			if hm, err := bob.HeldMessages(); err != nil || len(hm) != 0 {
				t.Fatalf("held after reject %+v %v", hm, err)
			}
			res, err = bob.Sync(ctx)
			if err != nil || len(res.Messages) != 0 || len(res.Failures) != 1 || res.Failures[0].Conversation != f.id {
				t.Fatalf("sync after reject: %+v %v", res, err)
			}
		})
	}
}

// TestTrustAdminFedKey: an honest admin who knows alice from a lookup
// creates a conversation with her, or adds her, while the server answers
// with a key (and a bundle) of its own: refused, with an alarm.
func TestTrustAdminFedKey(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	for _, how := range []string{"create", "add"} {
		t.Run(how, func(t *testing.T) {
			p := newProxy(t, n)
			alice, bob := register(t, n, "alice"+how), register(t, n, "bob"+how)
			carol := clientVia(t, p)
			if err := carol.Register(ctx, "carol"+how, "password carol"); err != nil {
				t.Fatal(err)
			}
			if _, err := carol.FindUser(ctx, alice.Username()); err != nil {
				t.Fatal(err)
			}
			before := safety(t, carol, alice.Username())
			conv := protocol.ConversationID{}
			if how == "add" {
				var err error
				if conv, err = carol.CreateConversation(ctx, "", bob.Username()); err != nil {
					t.Fatal(err)
				}
			}
			fake := secret.NewIdentity()
			ghost, _, err := secret.NewBundle(fake, alice.UserID(), protocol.NewDeviceID(), 1, 1, time.Now().Unix())
			if err != nil {
				t.Fatal(err)
			}
			p.set(func(r *http.Request, body map[string]any) {
				switch {
				case strings.HasPrefix(r.URL.Path, "/api/users") && body["id"] == alice.UserID().String():
					body["identityKey"] = fake.Public().String()
				case r.URL.Path == "/api/keys/claim":
					var keep []any
					for _, x := range body["bundles"].([]any) {
						if x.(map[string]any)["user"] != alice.UserID().String() {
							keep = append(keep, x)
						}
					}
					body["bundles"] = append(keep, map[string]any{"user": alice.UserID().String(), "device": ghost.Device.String(), "bundle": b64u(ghost.Marshal())})
				}
			})
			// The server's own database agrees with its lie, so it would
			// store what carol signs.
			setIdentity(t, n, alice.UserID(), fake.Public())
			if how == "create" {
				_, err = carol.CreateConversation(ctx, "", alice.Username())
			} else {
				err = carol.AddMembers(ctx, conv, alice.Username())
			}
			wantNotAccepted(t, err, alice.UserID())
			if len(alarmsOf(t, carol, protocol.ConversationID{}, client.AlarmIdentityChanged)) == 0 {
				t.Fatal("no identity alarm")
			}
			if ct, err := carol.Contact(ctx, alice.Username()); err != nil || ct.SafetyNumber != before || ct.Pending == nil || ct.PendingSafetyNumber == before {
				t.Fatalf("the change is not held as pending: %+v %v", ct, err)
			}
			// Trying again does not help: the key waits for the user.
			if how == "create" {
				_, err = carol.CreateConversation(ctx, "", alice.Username())
			} else {
				err = carol.AddMembers(ctx, conv, alice.Username())
			}
			wantNotAccepted(t, err, alice.UserID())
			p.set(nil)
			ak, _ := alice.IdentityKey()
			setIdentity(t, n, alice.UserID(), ak)
			if how == "create" && listCount(t, carol) != 0 {
				t.Fatal("a conversation was created with the server's key")
			}
			if how == "add" {
				convs, err := carol.Conversations(ctx)
				if err != nil || len(convs) != 1 || len(convs[0].Members) != 2 {
					t.Fatalf("carol's conversations %+v %v", convs, err)
				}
			}
		})
	}
}

// setIdentity edits the identity key the server's database holds for user.
func setIdentity(t *testing.T, n *node, user protocol.UserID, k protocol.IdentityKey) {
	t.Helper()
	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE users SET identity_key = ? WHERE id = ?`, k[:], user[:]); err != nil {
		t.Fatal(err)
	}
}

// TestTrustVerifiedRekey: a verified contact resets its identity (a rekey
// record in the conversation). Sending waits until the user accepts the
// new key, then works both ways.
func TestTrustVerifiedRekey(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob := register(t, n, "alice"), register(t, n, "bob")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		verify(t, bob, alice)
		before := safety(t, bob, "alice")
		alice2 := newClient(t, n, "")
		if err := alice2.Login(ctx, "alice", "password of alice"); err != nil {
			t.Fatal(err)
		}
		if err := alice2.ResetIdentity(ctx); err != nil {
			t.Fatal(err)
		}
		syncTexts(t, bob)
		_, err = bob.Send(ctx, conv, "are you still alice?")
		wantNotAccepted(t, err, alice.UserID())
		if len(alarmsOf(t, bob, conv, client.AlarmIdentityBlocked)) == 0 {
			t.Fatal("no alarm in the conversation")
		}
		// Verifying again is no way around it: the change comes first.
		err = bob.MarkVerified(ctx, "alice", []byte(safety(t, alice2, "bob")))
		wantNotAccepted(t, err, alice.UserID())
		old, fresh, err := bob.AcceptIdentity("alice")
		if err != nil || old != before || fresh == before || fresh != safety(t, alice2, "bob") {
			t.Fatalf("accept: %q %q %v (before %q)", old, fresh, err, before)
		}
		if _, err := bob.Send(ctx, conv, "welcome back"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, alice2); !slices.Equal(got, []string{"bob: welcome back"}) {
			t.Fatalf("alice read %q", got)
		}
		if _, err := alice2.Send(ctx, conv, "thanks"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: thanks"}) {
			t.Fatalf("bob read %q", got)
		}
		cts, err := bob.Contacts()
		if err != nil || len(cts) != 1 || cts[0].Verified || cts[0].Pending != nil || cts[0].PreviousKeys != 1 {
			t.Fatalf("contacts %+v %v", cts, err)
		}
	})
}

// forgeRekeyRewrite returns a rewrite that puts after record prev of a
// conversation a rekey of user to the server's key fake, and that record.
func forgeRekeyRewrite(t *testing.T, prev *protocol.Record, user protocol.UserID, fake *secret.IdentityPrivateKey) (func(r *http.Request, body map[string]any), *protocol.Record) {
	rk := &protocol.Record{Op: protocol.OpRekey, Conversation: prev.Conversation, Seq: prev.Seq + 1, Prev: prev.Hash(), Author: user,
		Time: time.Now().UnixMilli(), Members: []protocol.Member{{User: user, Identity: fake.Public(), Role: protocol.RoleMember}}}
	secret.SignRecord(fake, rk)
	return func(r *http.Request, body map[string]any) {
		if r.URL.Path != "/api/conversations/"+prev.Conversation.String()+"/records" {
			return
		}
		if from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64); from <= rk.Seq {
			recs, _ := body["records"].([]any)
			body["records"] = append(recs, b64u(rk.Marshal()))
		}
	}, rk
}

// TestTrustUnacceptedEpochCreator: the server forges a rekey of alice (a
// verified contact of bob) and an epoch "by alice" with its key, with a
// message in it. Bob does not use the epoch.
func TestTrustUnacceptedEpochCreator(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	m := newAnswerProxy(t, n)
	alice := register(t, n, "alice")
	bob := clientVia(t, m.proxy)
	if err := bob.Register(ctx, "bob", "password bob"); err != nil {
		t.Fatal(err)
	}
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "hi"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	verify(t, bob, alice)

	// The forged chain: genesis + the server's rekey of alice; epoch 2 made
	// for it by the server's "alice" device, sealed to bob's pre-key.
	fake := secret.NewIdentity()
	g, err := protocol.ParseRecord(mustGenesis(t, n, conv))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := protocol.Genesis(g)
	if err != nil {
		t.Fatal(err)
	}
	rekey, rk := forgeRekeyRewrite(t, g, alice.UserID(), fake)
	if chain, err = chain.Apply(rk); err != nil {
		t.Fatal(err)
	}
	dev := protocol.DeviceRef{User: alice.UserID(), Device: protocol.NewDeviceID()}
	own, _, err := secret.NewBundle(fake, alice.UserID(), dev.Device, 1, 0, time.Now().Unix())
	if err != nil {
		t.Fatal(err)
	}
	d, s, err := secret.NewDistribution(fake, secret.EpochRequest{Chain: chain, Epoch: 2, Creator: dev, Time: time.Now().UnixMilli(),
		Bundles: []*protocol.Bundle{own, claimBundle(t, n, bob.UserID())}})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := secret.NewEpoch(s, conv, 2, dev, d.Devices())
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := json.Marshal(map[string]any{"type": "text", "text": "from the server", "sentAt": 1})
	env, err := ep.Encrypt(fake, pt)
	if err != nil {
		t.Fatal(err)
	}
	self := protocol.DeviceRef{User: bob.UserID(), Device: bob.DeviceID()}
	m.answer(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/api/conversations/"+conv.String()+"/sessions/2/initial-session" {
			return false
		}
		e := d.Entry(self)
		writeJSON(w, map[string]any{"epoch": 2, "distribution": b64u(d.Marshal()), "preKeyId": e.PreKeyID,
			"initiatorEphemeralKey": b64u(e.Enc[:]), "ciphertext": b64u(e.Ciphertext[:])})
		return true
	})
	msg := map[string]any{"kind": "message", "conversation": conv.String(), "message": map[string]any{
		"conversation": conv.String(), "seq": 99, "sender": dev.Device.String(), "senderUser": alice.UserID().String(),
		"epoch": 2, "envelope": b64u(env.Marshal()), "createdAt": time.Now().UnixMilli()}}
	sync := injectOnce(msg)
	m.set(func(r *http.Request, body map[string]any) { sync(r, body); rekey(r, body) })
	res, err := bob.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 0 || len(res.Failures) != 0 || len(res.Held) != 1 || !errors.Is(res.Held[0], client.ErrIdentityNotAccepted) {
		t.Fatalf("messages %+v failures %+v held %+v", res.Messages, res.Failures, res.Held)
	}
	found := false
	for _, a := range alarmsOf(t, bob, conv, client.AlarmIdentityBlocked) {
		found = found || strings.Contains(a.Detail, "epoch 2")
	}
	if !found {
		t.Fatalf("no alarm about epoch 2: %+v", alarmsOf(t, bob, conv, client.AlarmIdentityBlocked))
	}
}

// mustGenesis reads a conversation's genesis record from the server's
// database.
func mustGenesis(t *testing.T, n *node, conv protocol.ConversationID) []byte {
	t.Helper()
	recs, err := n.st.Records(context.Background(), conv, 0)
	if err != nil || len(recs) == 0 {
		t.Fatalf("records: %v", err)
	}
	return recs[0].Encoded
}

// TestTrustOwnRekey: a rekey of the device's own account that this device
// did not make is a critical alarm, and the conversation is not used.
func TestTrustOwnRekey(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	alice := clientVia(t, p)
	if err := alice.Register(ctx, "alice", "password alice"); err != nil {
		t.Fatal(err)
	}
	bob := register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	fake := secret.NewIdentity()
	sync := injectOnce(map[string]any{"kind": "membership", "conversation": conv.String()})
	g, err := protocol.ParseRecord(mustGenesis(t, n, conv))
	if err != nil {
		t.Fatal(err)
	}
	rekey, _ := forgeRekeyRewrite(t, g, alice.UserID(), fake)
	p.set(func(r *http.Request, body map[string]any) {
		sync(r, body)
		rekey(r, body)
		if r.URL.Path == "/api/conversations/"+conv.String() {
			body["chainSeq"] = 1
		}
	})
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	as := alarmsOf(t, alice, conv, client.AlarmOwnRekey)
	if len(as) == 0 || as[0].Severity != client.SeverityCritical {
		t.Fatalf("alarms %+v", as)
	}
	_, err = alice.Send(ctx, conv, "still me")
	wantNotAccepted(t, err, alice.UserID())
	p.set(nil)
	if got := syncTexts(t, bob); len(got) != 0 {
		t.Fatalf("bob read %q", got)
	}
}

// TestTrustSafetyNumberFromPins: once a contact is pinned, its safety
// number comes from the pin, whatever the server's lookup says later.
func TestTrustSafetyNumberFromPins(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	alice := register(t, n, "alice")
	bob := clientVia(t, p)
	if err := bob.Register(ctx, "bob", "password bob"); err != nil {
		t.Fatal(err)
	}
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	want := safety(t, alice, "bob")
	if got := safety(t, bob, "alice"); got != want {
		t.Fatalf("bob %q alice %q", got, want)
	}
	fake := secret.NewIdentity()
	p.set(func(r *http.Request, body map[string]any) {
		if strings.HasPrefix(r.URL.Path, "/api/users") && body["id"] == alice.UserID().String() {
			body["identityKey"] = fake.Public().String()
		}
	})
	if got := safety(t, bob, "alice"); got != want {
		t.Fatalf("bob's safety number for alice follows the server's lookup: %q, want %q", got, want)
	}
	if got := safety(t, bob, alice.UserID().String()); got != want {
		t.Fatalf("by id: %q, want %q", got, want)
	}
	// The conversation still works: it names the pinned key.
	if _, err := bob.Send(ctx, conv, "hello"); err != nil {
		t.Fatal(err)
	}
	// A wrong number is refused; the right one verifies.
	if err := bob.MarkVerified(ctx, "alice", []byte(strings.Replace(want, "0", "1", 1))); !errors.Is(err, client.ErrSafetyNumberMismatch) {
		t.Fatalf("a wrong number: %v", err)
	}
	_, qr, err := alice.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkVerified(ctx, "alice", qr); err != nil {
		t.Fatal(err)
	}
	if cts, err := bob.Contacts(); err != nil || len(cts) != 1 || !cts[0].Verified {
		t.Fatalf("contacts %+v %v", cts, err)
	}
	if err := bob.Unverify(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if cts, err := bob.Contacts(); err != nil || len(cts) != 1 || cts[0].Verified {
		t.Fatalf("contacts after Unverify %+v %v", cts, err)
	}
}

// TestTrustMigration: a device of an older version kept contact/ entries
// (the key its last lookup returned) and chains. On the first Open after
// the upgrade it builds its pins from them: quietly where they agree, with
// an alarm (and the key held as pending) where they already disagree.
func TestTrustMigration(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	alice, carol := register(t, n, "alice"), register(t, n, "carol")
	dir := t.TempDir()
	bob := newClient(t, n, dir)
	if err := bob.Register(ctx, "bob", "password of bob"); err != nil {
		t.Fatal(err)
	}
	withAlice, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	withCarol, err := carol.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, withAlice, "before the upgrade"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)

	// The state as the older version left it: no pins, contact/ entries.
	if err := os.RemoveAll(filepath.Join(dir, "pin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "pins.v1")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	ak, _ := alice.IdentityKey()
	stale := secret.NewIdentity().Public() // carol's entry names another key than her chain
	for id, ct := range map[protocol.UserID]any{
		alice.UserID(): map[string]any{"username": "alice", "identity": ak},
		carol.UserID(): map[string]any{"username": "carol", "identity": stale},
	} {
		b, _ := json.Marshal(ct)
		if err := os.MkdirAll(filepath.Join(dir, "contact"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "contact", id.String()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before, err := bob.Alarms(protocol.ConversationID{})
	if err != nil {
		t.Fatal(err)
	}

	bob.Close()                // one process (here: client) per state directory
	bob = newClient(t, n, dir) // the upgrade: first Open
	cts, err := bob.Contacts()
	if err != nil || len(cts) != 2 {
		t.Fatalf("contacts %+v %v", cts, err)
	}
	if cts[0].Username != "alice" || !cts[0].Identity.Equal(ak) || cts[0].Pending != nil {
		t.Fatalf("alice: %+v", cts[0])
	}
	if ck, _ := carol.IdentityKey(); cts[1].Username != "carol" || !cts[1].Identity.Equal(stale) || cts[1].Pending == nil || !cts[1].Pending.Equal(ck) {
		t.Fatalf("carol: %+v", cts[1])
	}
	all, err := bob.Alarms(protocol.ConversationID{})
	if err != nil {
		t.Fatal(err)
	}
	added := all[len(before):]
	if len(added) == 0 || slices.ContainsFunc(added, func(a client.Alarm) bool { return a.User != carol.UserID() }) ||
		len(alarmsOf(t, bob, withCarol, client.AlarmIdentityChanged)) == 0 {
		t.Fatalf("alarms after the upgrade: %+v", added)
	}
	// Alice's conversation carries on; the safety number is the pinned one.
	if _, err := bob.Send(ctx, withAlice, "after the upgrade"); err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, alice); !slices.Equal(got, []string{"bob: after the upgrade"}) {
		t.Fatalf("alice read %q", got)
	}
	if safety(t, bob, "alice") != safety(t, alice, "bob") {
		t.Fatal("safety numbers differ after the upgrade")
	}
	// Carol's waits for bob; reopening changes nothing more.
	_, err = bob.Send(ctx, withCarol, "hello carol")
	wantNotAccepted(t, err, carol.UserID())
	if all, err = bob.Alarms(protocol.ConversationID{}); err != nil {
		t.Fatal(err)
	}
	bob.Close()
	bob = newClient(t, n, dir)
	if again, err := bob.Alarms(protocol.ConversationID{}); err != nil || len(again) != len(all) {
		t.Fatalf("a second Open raised alarms again: %d, was %d (%v)", len(again), len(all), err)
	}
}

//go:build !js

package client_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
)

// fakeClock is a clock several clients share; tests move it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }

func (f *fakeClock) add(d time.Duration) { f.mu.Lock(); f.now = f.now.Add(d); f.mu.Unlock() }

const day = 24 * time.Hour

// openAt opens a client on st with the fake clock, talking to url.
func openAt(t *testing.T, url string, st client.Storage, clk *fakeClock) *client.Client {
	t.Helper()
	c, err := client.Open(client.Options{Server: url, Storage: st, Now: clk.Now, OneTimeBatch: 2,
		HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// storedPreKeys lists the pre-keys of one kind a device stores: id -> retired.
func storedPreKeys(t *testing.T, st *client.MemStorage, kind protocol.PreKeyKind) map[uint32]int64 {
	t.Helper()
	keys, err := st.List("prekey/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]int64{}
	for _, k := range keys {
		b, err := st.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Kind    protocol.PreKeyKind `json:"kind"`
			Retired int64               `json:"retired"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		id, err := strconv.ParseUint(strings.TrimPrefix(k, "prekey/"), 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == kind {
			out[uint32(id)] = e.Retired
		}
	}
	return out
}

// servedPreKeys returns the signed pre-key and last-resort key the server
// holds for a device (what it serves in a claim).
func servedPreKeys(t *testing.T, n *node, dev protocol.DeviceID) (signed, lastResort *protocol.PreKey) {
	t.Helper()
	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s, l []byte
	if err := db.QueryRow(`SELECT signed_prekey, last_resort FROM devices WHERE id = ?`, dev[:]).Scan(&s, &l); err != nil {
		t.Fatal(err)
	}
	if signed, err = protocol.ParsePreKey(s); err != nil {
		t.Fatal(err)
	}
	if lastResort, err = protocol.ParsePreKey(l); err != nil {
		t.Fatal(err)
	}
	return signed, lastResort
}

// TestLastResortKeysPruned: over half a year of weekly rotations a device
// keeps two last-resort private halves at most: the one the server serves
// and, for 7 days after it was replaced, the one before (27 were kept
// before). Replaced signed pre-keys go 30 days after their replacement. The
// device stays reachable all along, by sealers at the same time.
func TestLastResortKeysPruned(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	ctx := context.Background()
	clk := newFakeClock()
	st := client.NewMemStorage()
	alice := openAt(t, n.url(), st, clk)
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	bob := openAt(t, n.url(), client.NewMemStorage(), clk)
	if err := bob.Register(ctx, "bob", "password of bob"); err != nil {
		t.Fatal(err)
	}
	var prev uint32
	for week := 1; week <= 26; week++ {
		clk.add(7*day + time.Hour)
		if _, err := alice.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		_, served := servedPreKeys(t, n, alice.DeviceID())
		lr := storedPreKeys(t, st, protocol.LastResortPreKey)
		if _, ok := lr[served.ID]; !ok {
			t.Fatalf("week %d: the served last-resort key %d is not kept: %v", week, served.ID, lr)
		}
		if len(lr) > 2 {
			t.Fatalf("week %d: %d last-resort private halves kept: %v", week, len(lr), lr)
		}
		if prev != 0 && prev != served.ID {
			if lr[prev] == 0 {
				t.Fatalf("week %d: the replaced last-resort key %d is not kept (retired) for its grace period: %v", week, prev, lr)
			}
		}
		prev = served.ID
		if sp := storedPreKeys(t, st, protocol.SignedPreKey); len(sp) > 6 {
			t.Fatalf("week %d: %d signed pre-keys kept: %v", week, len(sp), sp)
		}
		if week%5 == 0 { // still reachable
			if _, err := bob.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			conv, err := bob.CreateConversation(ctx, "", "alice")
			if err != nil {
				t.Fatalf("week %d: %v", week, err)
			}
			if _, err := bob.Send(ctx, conv, "hello"); err != nil {
				t.Fatal(err)
			}
			if got := syncTexts(t, alice); len(got) != 1 {
				t.Fatalf("week %d: alice read %q", week, got)
			}
		}
	}
}

// TestOldLastResortRefused: the server serves a device's last-resort key
// (and signed pre-key) of 100 days ago instead of its current ones, hoping
// to have an epoch sealed to a key it may hold. The sealer refuses keys past
// their maximum age: it seals nothing to that key; the device counts as
// dormant, and the honest coverage check then refuses the epoch.
func TestOldLastResortRefused(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	ctx := context.Background()
	clk := newFakeClock()
	p := newProxy(t, n)
	alice := openAt(t, p.srv.URL, client.NewMemStorage(), clk)
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	bob := openAt(t, n.url(), client.NewMemStorage(), clk)
	if err := bob.Register(ctx, "bob", "password of bob"); err != nil {
		t.Fatal(err)
	}
	var old *protocol.Bundle
	p.set(func(r *http.Request, body map[string]any) {
		if r.URL.Path != "/api/keys/claim" {
			return
		}
		for _, x := range body["bundles"].([]any) {
			e := x.(map[string]any)
			if e["user"] != bob.UserID().String() {
				continue
			}
			b, err := protocol.ParseBundle(unb64u(t, e["bundle"]))
			if err != nil {
				t.Error(err)
				return
			}
			if old == nil {
				old = b // kept from today's claim
				continue
			}
			stale := *old
			stale.OneTime = nil
			e["bundle"], e["oneTime"] = b64u(stale.Marshal()), false
		}
	})
	if _, err := alice.CreateConversation(ctx, "", "bob"); err != nil || old == nil {
		t.Fatalf("first conversation: %v", err)
	}
	clk.add(100 * day)
	for _, c := range []*client.Client{alice, bob} { // both rotate their keys
		if _, err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.CreateConversation(ctx, "", "bob"); err == nil {
		t.Fatal("a conversation was created with bob's keys of 100 days ago")
	}
	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var sealed int
	dev := bob.DeviceID()
	if err := db.QueryRow(`SELECT COUNT(*) FROM session_keys WHERE device_id = ? AND prekey_id IN (?, ?)`,
		dev[:], old.LastResort.ID, old.Signed.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if sealed != 0 {
		t.Fatalf("%d epoch keys sealed to bob's pre-keys of 100 days ago", sealed)
	}
}

// withholder is a server that withholds chosen messages from a device's
// sync and delivers them later, renumbered after what the device has seen.
type withholder struct {
	mu      sync.Mutex
	hold    map[float64]bool // seqs to withhold
	held    map[float64]any  // withheld events by seq
	deliver []any            // events to add to the next sync answer
}

func newWithholder(p *proxy) *withholder {
	w := &withholder{hold: map[float64]bool{}, held: map[float64]any{}}
	p.set(func(r *http.Request, body map[string]any) {
		if r.URL.Path != "/api/sync" {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		var keep []any
		for _, x := range body["events"].([]any) {
			ev := x.(map[string]any)
			if m, ok := ev["message"].(map[string]any); ok && w.hold[m["seq"].(float64)] {
				w.held[m["seq"].(float64)] = ev
				continue
			}
			keep = append(keep, x)
		}
		body["events"] = append(keep, w.deliver...)
		w.deliver = nil
	})
	return w
}

func (w *withholder) withhold(seq uint64) { w.mu.Lock(); w.hold[float64(seq)] = true; w.mu.Unlock() }

// release delivers the withheld message seq in the next sync, as seq as.
func (w *withholder) release(t *testing.T, seq, as uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ev, ok := w.held[float64(seq)].(map[string]any)
	if !ok {
		t.Fatalf("message %d was not withheld", seq)
	}
	ev["message"].(map[string]any)["seq"] = float64(as)
	w.deliver = append(w.deliver, ev)
}

func send(t *testing.T, c *client.Client, conv protocol.ConversationID, text string) uint64 {
	t.Helper()
	m, err := c.Send(context.Background(), conv, text)
	if err != nil {
		t.Fatal(err)
	}
	return m.Seq
}

// syncAll syncs c and returns the texts read and the failure reasons.
func syncAll(t *testing.T, c *client.Client) (texts, failures []string) {
	t.Helper()
	res, err := c.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Messages {
		if m.Type == client.ContentText {
			texts = append(texts, m.Text)
		}
	}
	for _, f := range res.Failures {
		failures = append(failures, f.Reason)
	}
	return texts, failures
}

// TestWithheldMessagesExpire: the server withholds messages and delivers
// them later. Within the lifetimes of §8.6 they decrypt; after them the
// device has erased their keys: a skipped message key 7 days after it was
// stored, a superseded epoch's whole state 7 days after a later epoch
// began. The late message is then the failure class "expired": nothing is
// decrypted, nothing crashes, and what the device keeps is smaller.
func TestWithheldMessagesExpire(t *testing.T) {
	// Every 4 messages a new epoch (the server's rotation policy, §7.5).
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{RotateAfterMessages: 4})
	clk := newFakeClock()
	p := newProxy(t, n)
	w := newWithholder(p)
	alice := openAt(t, n.url(), client.NewMemStorage(), clk)
	bobSt := client.NewMemStorage()
	bob := openAt(t, p.srv.URL, bobSt, clk)
	for name, c := range map[string]*client.Client{"alice": alice, "bob": bob} {
		if err := c.Register(context.Background(), name, "password of "+name); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("skipped key", func(t *testing.T) {
		conv, err := alice.CreateConversation(context.Background(), "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		send(t, alice, conv, "m1")
		w.withhold(send(t, alice, conv, "m2"))
		m3 := send(t, alice, conv, "m3")
		w.withhold(m3)
		send(t, alice, conv, "m4")
		if got, f := syncAll(t, bob); strings.Join(got, " ") != "m1 m4" || len(f) != 0 {
			t.Fatalf("bob read %q, failures %q", got, f)
		}
		clk.add(6 * day)
		w.release(t, m3-1, 1000)
		if got, f := syncAll(t, bob); strings.Join(got, " ") != "m2" || len(f) != 0 {
			t.Fatalf("6 days later bob read %q, failures %q", got, f)
		}
		clk.add(2 * day)
		syncAll(t, bob) // the key of m3 (skipped 8 days ago) expires
		w.release(t, m3, 1001)
		if got, f := syncAll(t, bob); len(got) != 0 || strings.Join(f, " ") != "expired" {
			t.Fatalf("8 days later bob read %q, failures %q; want the failure expired", got, f)
		}
		if alarms, err := bob.Alarms(conv); err != nil || len(alarms) != 1 || alarms[0].Kind != client.AlarmServerData {
			t.Fatalf("alarms %+v %v, want one server_data alarm for the late message", alarms, err)
		}
	})

	t.Run("superseded epoch", func(t *testing.T) {
		conv, err := alice.CreateConversation(context.Background(), "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		send(t, alice, conv, "e1a")
		late1 := send(t, alice, conv, "e1b")
		w.withhold(late1)
		late2 := send(t, alice, conv, "e1c")
		w.withhold(late2)
		w.withhold(send(t, alice, conv, "e1d"))
		m := send(t, alice, conv, "e2") // in epoch 2
		clk.add(2 * time.Hour)
		if got, f := syncAll(t, bob); strings.Join(got, " ") != "e1a e2" || len(f) != 0 {
			t.Fatalf("bob read %q, failures %q", got, f)
		}
		epochs := func() []string {
			keys, err := bobSt.List("epoch/" + conv.String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			return keys
		}
		if len(epochs()) != 2 {
			t.Fatalf("bob holds %q", epochs())
		}
		clk.add(6 * day)
		w.release(t, late2, m+1000)
		if got, f := syncAll(t, bob); strings.Join(got, " ") != "e1c" || len(f) != 0 {
			t.Fatalf("6 days later bob read %q, failures %q", got, f)
		}
		clk.add(2 * day)
		syncAll(t, bob) // epoch 1, superseded 8 days ago, expires
		if k := epochs(); len(k) != 1 || !strings.HasSuffix(k[0], "/2") {
			t.Fatalf("8 days later bob holds %q, want epoch 2 only", k)
		}
		w.release(t, late1, m+1001)
		if got, f := syncAll(t, bob); len(got) != 0 || strings.Join(f, " ") != "expired" {
			t.Fatalf("8 days later bob read %q, failures %q; want the failure expired", got, f)
		}
		if s := bob.Stats(); s.DecryptFailed["expired"] != 2 {
			t.Fatalf("stats %v", s.DecryptFailed)
		}
		alarms, err := bob.Alarms(conv)
		if err != nil {
			t.Fatal(err)
		}
		if len(alarms) != 1 || alarms[0].Kind != client.AlarmServerData || !strings.Contains(alarms[0].Detail, "held it back") {
			t.Fatalf("alarms %+v, want one server_data alarm for the late message", alarms)
		}
	})
}

// TestLegacyLastResortKeysPruned: state written before the current
// last-resort key was recorded, with a pile of old last-resort keys, is
// pruned on the first run: the key the server serves is found by the upload
// order (it follows the signed pre-key) and kept, the others go.
func TestLegacyLastResortKeysPruned(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	ctx := context.Background()
	clk := newFakeClock()
	st := client.NewMemStorage()
	alice := openAt(t, n.url(), st, clk)
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	_, served := servedPreKeys(t, n, alice.DeviceID())
	// As earlier code left it: no lastResortId, and 26 older last-resort
	// keys (copies of the current entry under ids of their own).
	acct, err := st.Get("account")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(acct, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "lastResortId")
	next := uint32(m["nextPreKeyId"].(float64))
	m["nextPreKeyId"] = float64(next + 26)
	b, _ := json.Marshal(m)
	if err := st.Put("account", b); err != nil {
		t.Fatal(err)
	}
	cur, err := st.Get("prekey/" + strconv.FormatUint(uint64(served.ID), 10))
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if err := json.Unmarshal(cur, &e); err != nil {
		t.Fatal(err)
	}
	for i := range uint32(26) {
		e["created"] = float64(clk.Now().Add(-time.Duration(i+1)*7*day - time.Hour).Unix())
		b, _ := json.Marshal(e)
		if err := st.Put("prekey/"+strconv.FormatUint(uint64(next+i), 10), b); err != nil {
			t.Fatal(err)
		}
	}
	alice = openAt(t, n.url(), st, clk)
	if got := storedPreKeys(t, st, protocol.LastResortPreKey); len(got) != 27 {
		t.Fatalf("set-up: %d last-resort keys", len(got))
	}
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := storedPreKeys(t, st, protocol.LastResortPreKey)
	if _, ok := got[served.ID]; !ok || len(got) != 1 {
		t.Fatalf("after the first run: %v, want only the served key %d", got, served.ID)
	}
}

//go:build !js

package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
)

// clockedUser registers name on the server at url with a client whose
// clock is clk, its state in dir.
func clockedUser(t *testing.T, url, dir, name string, clk *fakeClock) *client.Client {
	t.Helper()
	st, err := client.NewDirStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := openAt(t, url, st, clk)
	if err := c.Register(context.Background(), name, "password of "+name); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return c
}

// stored reports whether any file of a device's state holds text.
func stored(t *testing.T, dir, text string) bool {
	t.Helper()
	found := false
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(text)) {
				found = true
			}
		}
		return nil
	})
	return found
}

func texts(t *testing.T, c *client.Client, conv protocol.ConversationID) []string {
	t.Helper()
	h, err := c.History(conv)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range h {
		out = append(out, m.Text)
	}
	return out
}

func timerLines(t *testing.T, c *client.Client, conv protocol.ConversationID) []string {
	t.Helper()
	items, err := c.Timeline(conv)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		if it.Line != nil && it.Line.Kind == client.LineTimer {
			out = append(out, it.Line.Text())
		}
	}
	return out
}

// TestDisappearingMessages: a member sets the timer and every member sees
// the line; the messages sent after carry it and disappear from every
// device, and from its storage, once the timer has run out on that
// device's own clock, though the server (whose clock has not moved)
// still holds and serves their envelopes. A message the server held back
// until its timer ran out is never shown; turning the timer off is a line
// too, and later messages stay.
func TestDisappearingMessages(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	aClk, bClk, cClk := newFakeClock(), newFakeClock(), newFakeClock()
	bDir := t.TempDir()
	alice := clockedUser(t, n.url(), t.TempDir(), "alice", aClk)
	bob := clockedUser(t, p.srv.URL, bDir, "bob", bClk)
	carol := clockedUser(t, n.url(), t.TempDir(), "carol", cClk)
	conv, err := alice.CreateConversation(ctx, "plans", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "kept forever"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, conv, 60); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{bob, carol} {
		res, err := c.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(res.Lines, func(l client.Line) bool {
			return l.Kind == client.LineTimer && l.Actor == "alice" && l.Timer == 60 && l.Conversation == conv
		}) {
			t.Fatalf("%s: sync lines %+v; want alice's timer line", c.Username(), res.Lines)
		}
		if got := timerLines(t, c, conv); !slices.Equal(got, []string{"alice set disappearing messages to 1 minute"}) {
			t.Fatalf("%s: timeline timer lines %q", c.Username(), got)
		}
		if tm, err := c.Timer(conv); err != nil || tm != 60 {
			t.Fatalf("%s: timer %d, %v", c.Username(), tm, err)
		}
	}
	if got := timerLines(t, alice, conv); len(got) != 1 {
		t.Fatalf("alice's own timeline: %q; want her timer line", got)
	}

	m, err := alice.Send(ctx, conv, "burn after reading")
	if err != nil {
		t.Fatal(err)
	}
	if m.ExpiresAt != m.SentAt+60_000 {
		t.Fatalf("sent message expires at %d, sent at %d: want 60 s later", m.ExpiresAt, m.SentAt)
	}
	if next, err := alice.NextExpiry(conv); err != nil || next != m.ExpiresAt {
		t.Fatalf("alice's next expiry: %d, %v; want the message's, %d", next, err, m.ExpiresAt)
	}
	var burnt map[string]any // the event of m as the server gave it to bob
	p.set(func(r *http.Request, body map[string]any) {
		evs, _ := body["events"].([]any)
		for _, x := range evs {
			if e, ok := x.(map[string]any)["message"].(map[string]any); ok && e["seq"] == float64(m.Seq) {
				burnt = x.(map[string]any)
			}
		}
	})
	syncTexts(t, bob)
	p.set(nil)
	if got := texts(t, bob, conv); !slices.Contains(got, "burn after reading") {
		t.Fatalf("bob's history before the expiry: %q", got)
	}
	bClk.add(61 * time.Second)
	if got := texts(t, bob, conv); !slices.Equal(got, []string{"kept forever"}) {
		t.Fatalf("bob's history after the expiry: %q", got)
	}
	if stored(t, bDir, "burn after reading") {
		t.Fatal("the expired message's text is still in bob's storage")
	}
	if convs, err := bob.LocalConversations(); err != nil || len(convs) != 1 || convs[0].Unread != 1 {
		t.Fatalf("bob's unread count after the expiry: %+v, %v; want 1 (the message that stays)", convs, err)
	}
	aClk.add(61 * time.Second)
	if err := alice.ExpireMessages(); err != nil {
		t.Fatal(err)
	}
	if got := texts(t, alice, conv); !slices.Equal(got, []string{"kept forever"}) {
		t.Fatalf("alice's history after the expiry: %q", got)
	}

	// The server holds a message back from bob (its sync answers give
	// nothing and keep his cursor) until the timer has run out on his
	// clock, then serves it: bob neither shows nor keeps it.
	var mu sync.Mutex
	hold := true
	p.set(func(r *http.Request, body map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/api/sync" && hold {
			var since float64
			fmt.Sscan(r.URL.Query().Get("since"), &since)
			body["events"], body["cursor"], body["more"] = []any{}, since, false
		}
	})
	if _, err := alice.Send(ctx, conv, "held back"); err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, bob); len(got) != 0 {
		t.Fatalf("bob got %q while the server held it back", got)
	}
	bClk.add(61 * time.Second)
	mu.Lock()
	hold = false
	mu.Unlock()
	if got := syncTexts(t, bob); len(got) != 0 {
		t.Fatalf("bob shows %q, served after its timer ran out", got)
	}
	if got := texts(t, bob, conv); !slices.Equal(got, []string{"kept forever"}) || stored(t, bDir, "held back") {
		t.Fatalf("bob's history %q after a late envelope (stored: %v)", got, stored(t, bDir, "held back"))
	}
	if bob.Stats().Expired != 1 {
		t.Fatalf("bob counted %d expired arrivals, want 1", bob.Stats().Expired)
	}

	// The server serves the expired message's envelope again, under a new
	// seq: nothing shown, nothing stored (the epoch refuses the envelope
	// it has opened once, whether or not it was erased since).
	dups := bob.Stats().Duplicates
	mu.Lock()
	burnt["message"].(map[string]any)["seq"] = float64(m.Seq + 100)
	p.set(func(r *http.Request, body map[string]any) {
		if r.URL.Path == "/api/sync" {
			body["events"] = []any{burnt}
		}
	})
	mu.Unlock()
	got := syncTexts(t, bob)
	p.set(nil)
	if len(got) != 0 || slices.Contains(texts(t, bob, conv), "burn after reading") || stored(t, bDir, "burn after reading") {
		t.Fatalf("an expired envelope served again under a new seq: shown %q, stored %v", got, stored(t, bDir, "burn after reading"))
	}
	if bob.Stats().Duplicates != dups+1 {
		t.Fatalf("bob counted %d duplicates for the envelope served again, want 1", bob.Stats().Duplicates-dups)
	}

	// Off again: a line, and the next message stays.
	if err := carol.SetTimer(ctx, conv, 0); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	if got := timerLines(t, bob, conv); len(got) != 2 || got[1] != "carol turned off disappearing messages" {
		t.Fatalf("bob's timer lines: %q", got)
	}
	syncTexts(t, alice)
	if _, err := alice.Send(ctx, conv, "stays"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	bClk.add(1000 * time.Hour)
	if got := texts(t, bob, conv); !slices.Equal(got, []string{"kept forever", "stays"}) {
		t.Fatalf("bob's history with the timer off: %q", got)
	}

	// A message whose expiry passed comes back into storage (an old
	// backup restored): reading the history erases it.
	line := fmt.Sprintf(`{"conversation":"%s","seq":2,"sender":"alice","type":"text","text":"from an old backup","ref":"AAAAAAAAAAAAAAAA","expiresAt":%d}`+"\n",
		conv, bClk.Now().Add(-time.Hour).UnixMilli())
	f, err := os.OpenFile(filepath.Join(bDir, "history", conv.String()), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(line)
	f.Close()
	if got := texts(t, bob, conv); slices.Contains(got, "from an old backup") || stored(t, bDir, "from an old backup") {
		t.Fatalf("an expired message restored into storage: shown %q, stored %v", got, stored(t, bDir, "from an old backup"))
	}
}

// TestExpiryRefused: a server that answers a message sent with a timer
// with another expiry (it would keep the envelope longer), or with none,
// is reported with an alarm; the message still disappears on the sender's device.
func TestExpiryRefused(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	clk := newFakeClock()
	alice := clockedUser(t, p.srv.URL, t.TempDir(), "alice", clk)
	register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, conv, 300); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "honest"); err != nil {
		t.Fatal(err)
	}
	p.set(func(r *http.Request, body map[string]any) {
		if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/messages") {
			body["expiresAt"] = body["expiresAt"].(float64) + 86_400_000
		}
	})
	if _, err := alice.Send(ctx, conv, "stretched"); err != nil {
		t.Fatal(err)
	}
	// An answer with no expiry at all (the server ignored the timer).
	p.set(func(r *http.Request, body map[string]any) {
		if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/messages") {
			delete(body, "expiresAt")
		}
	})
	if _, err := alice.Send(ctx, conv, "kept by the server"); err != nil {
		t.Fatal(err)
	}
	alarms, err := alice.Alarms(conv)
	if err != nil {
		t.Fatal(err)
	}
	kinds := 0
	for _, a := range alarms {
		if a.Kind == client.AlarmExpiryRefused {
			kinds++
		}
	}
	if kinds != 2 {
		t.Fatalf("alarms %+v; want two %s", alarms, client.AlarmExpiryRefused)
	}
	clk.add(301 * time.Second)
	if got := texts(t, alice, conv); len(got) != 0 {
		t.Fatalf("alice's history after the timer: %q", got)
	}
}

// convLister is a device's storage that counts the listings of its
// conversation states.
type convLister struct {
	client.Storage
	mu sync.Mutex
	n  int
}

func (s *convLister) List(prefix string) ([]string, error) {
	if prefix == "conv/" {
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
	}
	return s.Storage.List(prefix)
}

func (s *convLister) lists() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestSyncPurgesWhenDue: a caught-up sync erases from storage a message
// whose timer ran out, and its attachment's key, the history unread, and it looks at the
// conversations held only when an expiry is due: the syncs before (a
// WebSocket push makes one per event) do not list them.
func TestSyncPurgesWhenDue(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	alice := clockedUser(t, n.url(), t.TempDir(), "alice", newFakeClock())
	clk, dir := newFakeClock(), t.TempDir()
	ds, err := client.NewDirStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := &convLister{Storage: ds}
	bob := openAt(t, n.url(), st, clk)
	if err := bob.Register(ctx, "bob", "password of bob"); err != nil {
		t.Fatal(err)
	}
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, conv, 60); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	first := st.lists()
	att := upload(t, alice, conv, "note.txt", "text/plain", []byte("a file that goes with its message"))
	if _, err := alice.SendMessage(ctx, conv, "short-lived", []client.Attachment{att}); err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: short-lived"}) {
		t.Fatalf("bob got %q", got)
	}
	key, err := json.Marshal(att.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !stored(t, dir, strings.Trim(string(key), `"`)) {
		t.Fatal("bob's storage does not hold the attachment's key")
	}
	syncTexts(t, bob)
	if st.lists() != first {
		t.Fatalf("syncs with no expiry due listed the conversations %d times", st.lists()-first)
	}
	clk.add(61 * time.Second)
	syncTexts(t, bob)
	if stored(t, dir, "short-lived") || stored(t, dir, strings.Trim(string(key), `"`)) {
		t.Fatal("a caught-up sync after the timer left the message, or its attachment's key, in storage")
	}
	syncTexts(t, bob)
	if st.lists() != first+1 {
		t.Fatalf("the conversations were listed %d times after the expiry, want once", st.lists()-first)
	}
}

// TestTimerMaliciousMember: a member that changes the timer changes only
// the messages sent after: shortening it does not make the messages
// already sent go sooner, nor stretching it (or turning it off) later;
// and a member whose clock is ahead (a sentAt in the future) does not
// make its message live longer than its timer past its arrival.
func TestTimerMaliciousMember(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	bClk, bDir := newFakeClock(), t.TempDir()
	alice := clockedUser(t, n.url(), t.TempDir(), "alice", newFakeClock())
	mallory := clockedUser(t, n.url(), t.TempDir(), "mallory", newFakeClock())
	bob := clockedUser(t, n.url(), bDir, "bob", bClk)
	conv, err := alice.CreateConversation(ctx, "", "bob", "mallory")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "forever"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, conv, 3600); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "for an hour"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, mallory)
	if err := mallory.SetTimer(ctx, conv, 1); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob) // the messages come after the shorter timer
	if tm, err := bob.Timer(conv); err != nil || tm != 1 {
		t.Fatalf("bob's timer %d, %v; want mallory's 1 s", tm, err)
	}
	bClk.add(2 * time.Second)
	if err := bob.ExpireMessages(); err != nil {
		t.Fatal(err)
	}
	if got := texts(t, bob, conv); !slices.Equal(got, []string{"forever", "for an hour"}) {
		t.Fatalf("bob's history after mallory shortened the timer: %q", got)
	}
	if err := mallory.SetTimer(ctx, conv, 0); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	bClk.add(3600 * time.Second)
	if err := bob.ExpireMessages(); err != nil {
		t.Fatal(err)
	}
	if got := texts(t, bob, conv); !slices.Equal(got, []string{"forever"}) || stored(t, bDir, "for an hour") {
		t.Fatalf("bob's history after mallory turned the timer off and the hour passed: %q (stored: %v)", got, stored(t, bDir, "for an hour"))
	}

	// A message dated a day ahead, with a minute's timer.
	if err := alice.SetTimer(ctx, conv, 60); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, mallory)
	ahead := bClk.Now().Add(24 * time.Hour).UnixMilli()
	if _, err := mallory.SendContent(ctx, conv, client.Content{Type: client.ContentText, Text: "from the future", SentAt: ahead}); err != nil {
		t.Fatal(err)
	}
	arrival := bClk.Now().UnixMilli()
	syncTexts(t, bob)
	h, err := bob.History(conv)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(h, func(m client.Message) bool { return m.Text == "from the future" }); i < 0 || h[i].SentAt != ahead || h[i].ExpiresAt != arrival+60_000 {
		t.Fatalf("bob's history %+v; want the message dated ahead to expire 60 s after its arrival, %d", h, arrival+60_000)
	}
	bClk.add(61 * time.Second)
	if err := bob.ExpireMessages(); err != nil {
		t.Fatal(err)
	}
	if got := texts(t, bob, conv); !slices.Equal(got, []string{"forever"}) || stored(t, bDir, "from the future") {
		t.Fatalf("bob's history a minute after a message dated ahead: %q (stored: %v)", got, stored(t, bDir, "from the future"))
	}
}

// TestExpiredTargetActions: the actions that name a message whose timer
// ran out are erased with it, also those that come after it is gone (the
// server held them back, or the device was away), whatever their own
// timer: the timer was turned off between the message and its edit and
// reaction, which therefore carry none.
func TestExpiredTargetActions(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	aClk, bClk, bDir := newFakeClock(), newFakeClock(), t.TempDir()
	alice := clockedUser(t, n.url(), t.TempDir(), "alice", aClk)
	carol := clockedUser(t, n.url(), t.TempDir(), "carol", newFakeClock())
	bob := clockedUser(t, p.srv.URL, bDir, "bob", bClk)
	conv, err := alice.CreateConversation(ctx, "", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, conv, 60); err != nil {
		t.Fatal(err)
	}
	m, err := alice.Send(ctx, conv, "short-lived")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, carol)
	if err := carol.SetTimer(ctx, conv, 0); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, alice)
	if _, err := alice.Edit(ctx, conv, m.Ref, "the edited secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.React(ctx, conv, m.Ref, "🔥"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "stays"); err != nil {
		t.Fatal(err)
	}
	// Bob comes back after the minute.
	bClk.add(61 * time.Second)
	if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: stays"}) {
		t.Fatalf("bob got %q", got)
	}
	if err := bob.ExpireMessages(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"short-lived", "the edited secret", "🔥"} {
		if stored(t, bDir, s) {
			t.Errorf("bob's storage holds %q, of or about a message whose timer ran out", s)
		}
	}

	// A message bob held, erased when its timer ran out; its edit comes
	// after (alice, whose clock is behind, still showed it).
	aClk.add(61 * time.Second)
	if err := alice.SetTimer(ctx, conv, 60); err != nil {
		t.Fatal(err)
	}
	m2, err := alice.Send(ctx, conv, "held a minute")
	if err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: held a minute"}) {
		t.Fatalf("bob got %q", got)
	}
	bClk.add(61 * time.Second)
	if err := bob.ExpireMessages(); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, conv, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Edit(ctx, conv, m2.Ref, "another edited secret"); err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	if err := bob.ExpireMessages(); err != nil {
		t.Fatal(err)
	}
	if stored(t, bDir, "held a minute") || stored(t, bDir, "another edited secret") {
		t.Errorf("bob's storage holds the expired message %v, or its later edit %v", stored(t, bDir, "held a minute"), stored(t, bDir, "another edited secret"))
	}
	if got := texts(t, bob, conv); !slices.Equal(got, []string{"stays"}) {
		t.Fatalf("bob's history %q", got)
	}

	// The server gives bob the edit first, and the message only after its
	// timer ran out: the edit, kept waiting for its target, goes when the
	// target comes expired.
	if err := alice.SetTimer(ctx, conv, 60); err != nil {
		t.Fatal(err)
	}
	m3, err := alice.Send(ctx, conv, "served late")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, conv, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Edit(ctx, conv, m3.Ref, "a third edited secret"); err != nil {
		t.Fatal(err)
	}
	var held any
	p.set(func(r *http.Request, body map[string]any) {
		evs, _ := body["events"].([]any)
		keep := evs[:0]
		for _, x := range evs {
			if e, ok := x.(map[string]any)["message"].(map[string]any); ok && e["seq"] == float64(m3.Seq) {
				held = x
				continue
			}
			keep = append(keep, x)
		}
		body["events"] = keep
	})
	syncTexts(t, bob)
	if held == nil || !stored(t, bDir, "a third edited secret") {
		t.Fatalf("held back %v; the edit waits in bob's storage %v", held != nil, stored(t, bDir, "a third edited secret"))
	}
	bClk.add(61 * time.Second)
	p.set(func(r *http.Request, body map[string]any) {
		if r.URL.Path == "/api/sync" {
			held.(map[string]any)["message"].(map[string]any)["seq"] = float64(m3.Seq + 100)
			body["events"] = []any{held}
		}
	})
	syncTexts(t, bob)
	p.set(nil)
	syncTexts(t, bob)
	if stored(t, bDir, "served late") || stored(t, bDir, "a third edited secret") {
		t.Errorf("bob's storage holds the message served late %v, or its edit %v", stored(t, bDir, "served late"), stored(t, bDir, "a third edited secret"))
	}
}

// TestRetryKeepsTimer: the server loses its answer to a message sent with
// a timer, and the timer is turned off before the retry: the retry sends
// the first attempt's envelope, timer and all, so the message still
// disappears from the sender's device and the receiver's.
func TestRetryKeepsTimer(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	aClk, bClk := newFakeClock(), newFakeClock()
	alice := clockedUser(t, p.srv.URL, t.TempDir(), "alice", aClk)
	bob := clockedUser(t, n.url(), t.TempDir(), "bob", bClk)
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetTimer(ctx, conv, 60); err != nil {
		t.Fatal(err)
	}
	id := client.NewClientID()
	p.setLose(func(r *http.Request) bool { return r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/messages") })
	if _, err := alice.SendWithID(ctx, conv, id, "a minute"); err == nil {
		t.Fatal("the send succeeded although its answer was lost")
	}
	p.setLose(nil)
	if err := alice.SetTimer(ctx, conv, 0); err != nil {
		t.Fatal(err)
	}
	m, err := alice.SendWithID(ctx, conv, id, "a minute")
	if err != nil {
		t.Fatal(err)
	}
	if m.ExpiresAt != m.SentAt+60_000 {
		t.Fatalf("the retry's message expires at %d, sent at %d: want the first attempt's timer", m.ExpiresAt, m.SentAt)
	}
	if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: a minute"}) {
		t.Fatalf("bob got %q", got)
	}
	aClk.add(61 * time.Second)
	bClk.add(61 * time.Second)
	for _, c := range []*client.Client{alice, bob} {
		if err := c.ExpireMessages(); err != nil {
			t.Fatal(err)
		}
		if got := texts(t, c, conv); len(got) != 0 {
			t.Fatalf("%s's history a minute after the retried message: %q", c.Username(), got)
		}
	}
	if alarms, err := alice.Alarms(conv); err != nil || len(alarms) != 0 {
		t.Fatalf("alice's alarms %+v, %v", alarms, err)
	}
}

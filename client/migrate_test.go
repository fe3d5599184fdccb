//go:build !js

package client_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/server"
	"sandi.dev/internal/testpg"
	"sandi.dev/protocol"
)

// buildSandi builds the sandi command into a temporary directory.
func buildSandi(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "sandi")
	if out, err := exec.Command(goBin, "build", "-o", bin, "sandi.dev/cmd/sandi").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// historyTexts returns the texts of a conversation's local history.
func historyTexts(t *testing.T, c *client.Client, conv protocol.ConversationID) []string {
	t.Helper()
	h, err := c.History(conv)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range h {
		if m.Type == client.ContentText {
			out = append(out, m.Sender+": "+m.Text)
		}
	}
	return out
}

// TestMigrateToPostgres is the operator's move from SQLite to PostgreSQL as
// docs/operations.md tells it: clients chat on a server over SQLite; the
// server stops; `sandi db copy` (the built command) copies the database to
// PostgreSQL; a server over PostgreSQL starts on the same address. The
// clients carry on without noticing: what they had not read yet arrives
// once, new messages flow both ways, a member who was offline the whole
// time reads the entire history, and a new member can be added.
func TestMigrateToPostgres(t *testing.T) {
	ctx := context.Background()
	bin := buildSandi(t)
	sqlitePath := filepath.Join(t.TempDir(), "sandi.db")
	old := startNode(t, sqlitePath, server.Config{})

	alice, bob, carol := register(t, old, "alice"), register(t, old, "bob"), register(t, old, "carol")
	conv, err := alice.CreateConversation(ctx, "before the move", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	send := func(c *client.Client, text string) {
		t.Helper()
		if _, err := c.Send(ctx, conv, text); err != nil {
			t.Fatalf("%s sends %q: %v", c.Username(), text, err)
		}
	}
	expect := func(c *client.Client, want ...string) {
		t.Helper()
		if got := syncTexts(t, c); !slices.Equal(got, want) {
			t.Fatalf("%s read %q, want %q", c.Username(), got, want)
		}
	}
	send(alice, "hello bob")
	send(bob, "hi alice — ünïcødé 🙂")
	expect(alice, "bob: hi alice — ünïcødé 🙂")
	expect(bob, "alice: hello bob")
	send(alice, "bob has not read this yet")
	// Carol never syncs before the move.

	msgsBefore, err := old.st.Messages(ctx, conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	lastBefore, err := old.st.LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old.stop()

	// sandi db copy --from sandi.db --to postgres://…
	pg := testpg.URL(t)
	cmd := exec.Command(bin, "--home", t.TempDir(), "--json", "db", "copy", "--from", sqlitePath, "--to", pg)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SANDI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sandi db copy: %v\n%s", err, stderr.String())
	}
	var res struct {
		Tables map[string]int64 `json:"tables"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("sandi db copy printed %q: %v", out, err)
	}
	if res.Tables["messages"] != int64(len(msgsBefore)) || res.Tables["users"] != 3 || res.Tables["events"] == 0 {
		t.Fatalf("sandi db copy reports %v; the source had %d messages and 3 users", res.Tables, len(msgsBefore))
	}

	// The server over PostgreSQL, on the same address.
	n := &node{t: t, db: pg, addr: old.addr, cfg: old.cfg}
	var ln net.Listener
	for range 50 {
		if ln, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	n.serve(ln)
	t.Cleanup(n.stop)
	if !strings.HasPrefix(n.db, "postgres") {
		t.Fatal("the new node is not on PostgreSQL")
	}
	msgsAfter, err := n.st.Messages(ctx, conv, 0, 1000)
	if err != nil || !reflect.DeepEqual(msgsAfter, msgsBefore) {
		t.Fatalf("the server's messages after the move differ (%v):\nbefore %+v\nafter  %+v", err, msgsBefore, msgsAfter)
	}
	if last, err := n.st.LastEventID(ctx); err != nil || last != lastBefore {
		t.Fatalf("last event id after the move = %d, %v; want %d", last, err, lastBefore)
	}

	// The clients carry on.
	expect(bob, "alice: bob has not read this yet")
	expect(alice)
	send(alice, "we moved to PostgreSQL")
	send(bob, "nothing lost")
	expect(alice, "bob: nothing lost")
	expect(bob, "alice: we moved to PostgreSQL")
	all := []string{"alice: hello bob", "bob: hi alice — ünïcødé 🙂", "alice: bob has not read this yet",
		"alice: we moved to PostgreSQL", "bob: nothing lost"}
	expect(carol, all...)
	for _, c := range []*client.Client{alice, bob, carol} {
		if got := historyTexts(t, c, conv); !slices.Equal(got, all) {
			t.Fatalf("%s's history is %q, want %q", c.Username(), got, all)
		}
		expect(c) // nothing more, nothing twice
	}
	msgs, err := n.st.Messages(ctx, conv, 0, 1000)
	if err != nil || len(msgs) != len(msgsBefore)+2 || msgs[len(msgs)-1].Seq != msgsBefore[len(msgsBefore)-1].Seq+2 {
		t.Fatalf("the server holds %d messages (%v), want %d with gap-free seqs", len(msgs), err, len(msgsBefore)+2)
	}

	// A new account on the new server joins the conversation.
	dave := register(t, n, "dave")
	if err := alice.AddMembers(ctx, conv, "dave"); err != nil {
		t.Fatal(err)
	}
	send(alice, "welcome dave")
	expect(dave, "alice: welcome dave")
	expect(bob, "alice: welcome dave")
	expect(carol, "alice: welcome dave")
}

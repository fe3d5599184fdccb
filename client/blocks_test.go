//go:build !js

package client_test

import (
	"context"
	"database/sql"
	"net/http"
	"slices"
	"testing"

	"sandi.dev/client"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// blockAlarms returns c's server_data alarms about user.
func blockAlarms(t *testing.T, c *client.Client, user protocol.UserID) []client.Alarm {
	t.Helper()
	as, err := c.Alarms(protocol.ConversationID{})
	if err != nil {
		t.Fatal(err)
	}
	var out []client.Alarm
	for _, a := range as {
		if a.Kind == client.AlarmServerData && a.User == user {
			out = append(out, a)
		}
	}
	return out
}

// blockedNames lists the usernames of c's block list.
func blockedNames(t *testing.T, c *client.Client) []string {
	t.Helper()
	bl, err := c.Blocks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bl {
		out = append(out, b.Username)
	}
	slices.Sort(out)
	return out
}

// onBlockList has p rewrite the answers to GET /api/blocks with f.
func onBlockList(p *proxy, f func(body map[string]any)) {
	p.set(func(r *http.Request, body map[string]any) {
		if r.Method == "GET" && r.URL.Path == "/api/blocks" {
			f(body)
		}
	})
}

// execDB runs a statement on n's SQLite database, as a server's operator
// could.
func execDB(t *testing.T, n *node, q string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

// TestServerCannotUnblock: alice blocks bob, with whom she shares a
// conversation. The server then serves her block list without bob and
// ignores the block: her device keeps bob blocked (and raises an alarm),
// so bob's next conversation still arrives as a request, with an alarm,
// never as one she accepted.
func TestServerCannotUnblock(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	alice := registerVia(t, p, "alice")
	bob := register(t, n, "bob")
	startedBy(t, alice, "bob")
	syncTexts(t, bob)
	if err := alice.Block(ctx, "bob"); err != nil {
		t.Fatal(err)
	}

	onBlockList(p, func(body map[string]any) { body["blocks"], body["unblocks"] = []any{}, []any{} })
	if got := blockedNames(t, alice); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("alice's block list after the server dropped bob = %v; want bob kept", got)
	}
	if len(blockAlarms(t, alice, bob.UserID())) == 0 {
		t.Fatal("no alarm for a block the server stopped serving")
	}
	execDB(t, n, `DELETE FROM blocks`)
	conv := startedBy(t, bob, "alice")
	syncTexts(t, alice)
	if req, err := alice.IsRequest(conv); err != nil || !req {
		t.Fatalf("bob's conversation after the server ignored the block: request = %v, %v; want a request", req, err)
	}
	if as, err := alice.Alarms(conv); err != nil || len(as) == 0 {
		t.Fatalf("alarms in bob's conversation = %v, %v; want one", as, err)
	}
}

// TestServerCannotAddBlock: the server lists as blocked by alice an
// account she never blocked, with a statement another key signed, and
// another without any statement: her device takes neither (a
// conversation from them is no request) and raises an alarm for each,
// once. She can still lift the block without a statement.
func TestServerCannotAddBlock(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	alice := registerVia(t, p, "alice")
	carol, dave := register(t, n, "carol"), register(t, n, "dave")
	startedBy(t, alice, "carol")
	forged := &protocol.Block{User: alice.UserID(), Other: carol.UserID(), Blocked: true, Time: 1 << 50}
	secret.SignBlock(secret.NewIdentity(), forged)
	execDB(t, n, `INSERT INTO blocks (user_id, blocked_id, created_at) VALUES (?, ?, 1)`, idBytes(alice.UserID()), idBytes(dave.UserID()))
	onBlockList(p, func(body map[string]any) {
		body["blocks"] = append(body["blocks"].([]any), map[string]any{"user": carol.UserID(), "username": "carol", "statement": b64u(forged.Marshal())})
	})
	for range 2 {
		if got := blockedNames(t, alice); len(got) != 0 {
			t.Fatalf("alice's block list = %v; want nobody", got)
		}
	}
	for _, u := range []*client.Client{carol, dave} {
		if as := blockAlarms(t, alice, u.UserID()); len(as) != 1 {
			t.Fatalf("alarms about %s = %+v; want one", u.Username(), as)
		}
	}
	conv := startedBy(t, carol, "alice")
	syncTexts(t, alice)
	if req, err := alice.IsRequest(conv); err != nil || req {
		t.Fatalf("carol's conversation = request %v, %v; want an ordinary one", req, err)
	}
	// The block without a statement (as a device before statements made
	// it) is the server's to enforce; alice can still lift it.
	if _, err := dave.CreateConversation(ctx, "", "alice"); !client.IsCode(err, "blocked") {
		t.Fatalf("dave before the unblock: %v; want blocked", err)
	}
	if err := alice.Unblock(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	startedBy(t, dave, "alice")
}

// TestServerReplaysUnblock: alice blocks bob, unblocks him, blocks him
// again; the server then serves her old unblock in place of the block.
// The block holds on her device (the newer statement wins), with an alarm.
func TestServerReplaysUnblock(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	p := newProxy(t, n)
	alice := registerVia(t, p, "alice")
	bob := register(t, n, "bob")
	if err := alice.Block(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Unblock(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	var unblock map[string]any
	onBlockList(p, func(body map[string]any) {
		if us := body["unblocks"].([]any); len(us) == 1 {
			unblock = us[0].(map[string]any)
		}
	})
	if got := blockedNames(t, alice); len(got) != 0 || unblock == nil {
		t.Fatalf("after the unblock: %v, unblock served %v", got, unblock)
	}
	if err := alice.Block(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	onBlockList(p, func(body map[string]any) { body["blocks"], body["unblocks"] = []any{}, []any{unblock} })
	if got := blockedNames(t, alice); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("after the server replayed the unblock: %v; want bob blocked", got)
	}
	if len(blockAlarms(t, alice, bob.UserID())) == 0 {
		t.Fatal("no alarm for a replayed unblock")
	}

	// A device linked now gets the statements from alice's device, so
	// the replay does not fool it either.
	phone := clientVia(t, p)
	if err := approveNew(t, phone, alice, "password of alice"); err != nil {
		t.Fatal(err)
	}
	if got := blockedNames(t, phone); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("a device linked during the replay: %v; want bob blocked", got)
	}
}

// TestUnblockReachesOtherDevice: a block and then an unblock made on one
// device of alice's reach her other device through the server, with no
// alarm; an identity reset signs the list again under the new key, and a
// device linked afterwards takes it with the statements.
func TestUnblockReachesOtherDevice(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	alice := register(t, n, "alice")
	register(t, n, "bob")
	register(t, n, "carol")
	phone := linkDevice(t, n, alice, "password of alice")
	if err := alice.Block(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Block(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if got := blockedNames(t, phone); !slices.Equal(got, []string{"bob", "carol"}) {
		t.Fatalf("the phone's list = %v; want bob and carol", got)
	}
	if err := phone.Unblock(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := blockedNames(t, alice); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("alice's list after the phone unblocked bob = %v; want carol", got)
	}
	for _, c := range []*client.Client{alice, phone} {
		if as, err := c.Alarms(protocol.ConversationID{}); err != nil || len(as) != 0 {
			t.Fatalf("alarms = %+v, %v; want none", as, err)
		}
	}

	if err := alice.ResetIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blockedNames(t, alice); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("alice's list after a reset = %v; want carol", got)
	}
	tablet := linkDevice(t, n, alice, "password of alice")
	if got := blockedNames(t, tablet); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("a device linked after the reset = %v; want carol", got)
	}
	for _, c := range []*client.Client{alice, tablet} {
		as, err := c.Alarms(protocol.ConversationID{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.Kind == client.AlarmServerData {
				t.Fatalf("a block alarm after the reset: %+v", a)
			}
		}
	}
}

// TestServerLosesBlock: the server loses alice's signed block of bob (its
// database restored to before it, or rows deleted): her device keeps bob
// blocked, raises an alarm, and sends the statement again, so that the
// server refuses bob's next conversation once more.
func TestServerLosesBlock(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	if err := alice.Block(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	execDB(t, n, `DELETE FROM block_statements`)
	execDB(t, n, `DELETE FROM blocks`)
	if got := blockedNames(t, alice); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("alice's list after the server lost the block = %v; want bob", got)
	}
	if len(blockAlarms(t, alice, bob.UserID())) != 1 {
		t.Fatal("no alarm for a lost block")
	}
	if _, err := bob.CreateConversation(ctx, "", "alice"); !client.IsCode(err, "blocked") {
		t.Fatalf("bob starting a conversation after alice's device sent the block again: %v; want blocked", err)
	}
}

// TestServerReplaysBlock: alice blocks bob and then unblocks him; the
// server serves her old block in place of the unblock, and, as her block
// of carol, a statement bob signed blocking carol. Her device takes
// neither (bob stays unblocked: his next conversation comes with no
// alarm; carol is not blocked) and raises one alarm for each.
func TestServerReplaysBlock(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	alice := registerVia(t, p, "alice")
	bob, carol := register(t, n, "bob"), register(t, n, "carol")
	if err := alice.Block(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	var block map[string]any
	onBlockList(p, func(body map[string]any) {
		if bs := body["blocks"].([]any); len(bs) == 1 {
			block = bs[0].(map[string]any)
		}
	})
	if got := blockedNames(t, alice); !slices.Equal(got, []string{"bob"}) || block == nil {
		t.Fatalf("after the block: %v, block served %v", got, block)
	}
	if err := alice.Unblock(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := bob.Block(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	var bobs []byte
	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT statement FROM block_statements WHERE user_id = ?`, idBytes(bob.UserID())).Scan(&bobs); err != nil {
		t.Fatal(err)
	}
	onBlockList(p, func(body map[string]any) {
		body["unblocks"] = []any{}
		body["blocks"] = []any{block, map[string]any{"user": carol.UserID(), "username": "carol", "statement": b64u(bobs)}}
	})
	for range 2 {
		if got := blockedNames(t, alice); len(got) != 0 {
			t.Fatalf("alice's block list with her old block replayed and bob's statement = %v; want nobody", got)
		}
	}
	for _, u := range []*client.Client{bob, carol} {
		if as := blockAlarms(t, alice, u.UserID()); len(as) != 1 {
			t.Fatalf("alarms about %s = %+v; want one", u.Username(), as)
		}
	}
	p.set(nil)
	conv := startedBy(t, bob, "alice")
	syncTexts(t, alice)
	if as, err := alice.Alarms(conv); err != nil || len(as) != 0 {
		t.Fatalf("alarms in bob's conversation after the replayed block = %+v, %v; want none (he is not blocked)", as, err)
	}
}

package server_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

type blockEntry struct {
	User      protocol.UserID `json:"user"`
	Username  string          `json:"username"`
	Statement server.B64      `json:"statement"`
}

type blocksAnswer struct {
	Blocks   []blockEntry `json:"blocks"`
	Unblocks []blockEntry `json:"unblocks"`
}

// statement is a block statement of d's account about other, signed by
// key (d's identity key when nil).
func (d *device) statement(other *device, blocked bool, at int64, key *secret.IdentityPrivateKey) map[string]any {
	if key == nil {
		key = d.id
	}
	b := &protocol.Block{User: d.user, Other: other.user, Blocked: blocked, Time: at}
	secret.SignBlock(key, b)
	return map[string]any{"statement": server.B64(b.Marshal())}
}

// TestBlockStatements: a signed block statement (protocol.md §16.2) is
// taken only from the account it is about, for the user it names, under
// the account's identity key, and when newer than the one held; the
// server serves it back, keeps a signed unblock apart from the blocks
// (and stops enforcing the block), and lifts a signed block only with a
// signed unblock.
func TestBlockStatements(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		alice.must("POST", "/api/blocks", alice.statement(bob, true, 1000, nil), nil)
		wantCode(t, alice.do("POST", "/api/blocks", alice.statement(carol, true, 1000, carol.id), nil), 400, server.CodeBadSignature)
		wantCode(t, carol.do("POST", "/api/blocks", alice.statement(bob, true, 1001, nil), nil), 400, server.CodeBadSignature)
		named := alice.statement(bob, true, 1001, nil)
		named["user"] = carol.user
		wantCode(t, alice.do("POST", "/api/blocks", named, nil), 400, server.CodeBadSignature)
		wantCode(t, alice.do("POST", "/api/blocks", alice.statement(bob, false, 999, nil), nil), 409, server.CodeConflict)
		wantCode(t, alice.do("POST", "/api/blocks", map[string]any{"statement": server.B64("short")}, nil), 400, server.CodeBadRequest)
		wantCode(t, alice.do("DELETE", "/api/blocks/"+bob.user.String(), nil, nil), 409, server.CodeConflict)
		_, err := bob.create([]*device{alice})
		wantCode(t, err, 403, server.CodeBlocked)

		var bl blocksAnswer
		alice.must("GET", "/api/blocks", nil, &bl)
		if len(bl.Blocks) != 1 || bl.Blocks[0].User != bob.user || len(bl.Blocks[0].Statement) != protocol.BlockStatementSize || len(bl.Unblocks) != 0 {
			t.Fatalf("alice's list %+v, want bob's signed block", bl)
		}
		alice.must("POST", "/api/blocks", alice.statement(bob, false, 1002, nil), nil)
		alice.must("GET", "/api/blocks", nil, &bl)
		if len(bl.Blocks) != 0 || len(bl.Unblocks) != 1 || bl.Unblocks[0].User != bob.user {
			t.Fatalf("after a signed unblock %+v, want bob's unblock apart", bl)
		}
		if _, err := bob.create([]*device{alice}); err != nil {
			t.Fatalf("after a signed unblock: %v", err)
		}
	})
}

// convIDs lists the conversations d's account is a member of.
func (d *device) convIDs() []protocol.ConversationID {
	var out struct {
		Conversations []struct {
			ID protocol.ConversationID `json:"id"`
		} `json:"conversations"`
	}
	d.must("GET", "/api/conversations", nil, &out)
	var ids []protocol.ConversationID
	for _, c := range out.Conversations {
		ids = append(ids, c.ID)
	}
	return ids
}

// TestBlocks: a user that alice blocked can neither start a conversation
// with her nor add her to one; the refusal names her and changes nothing.
// The block list is the account's (another device of it sees it, another
// account does not), goes one way, and unblocking lifts it.
func TestBlocks(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		alice.must("POST", "/api/blocks", map[string]any{"user": bob.user}, nil)
		alice.must("POST", "/api/blocks", map[string]any{"user": bob.user}, nil) // again: no change

		_, err := bob.create([]*device{alice})
		a := wantCode(t, err, 403, server.CodeBlocked)
		if !slices.Equal(a.Users, []string{alice.user.String()}) {
			t.Fatalf("the refusal names %v, want alice", a.Users)
		}
		_, err = bob.create([]*device{carol, alice})
		wantCode(t, err, 403, server.CodeBlocked)
		if ids := alice.convIDs(); len(ids) != 0 {
			t.Fatalf("alice is in %d conversations after refused creations", len(ids))
		}
		if ids := carol.convIDs(); len(ids) != 0 {
			t.Fatalf("a refused creation left carol %d conversations", len(ids))
		}
		conv, err := bob.create([]*device{carol})
		if err != nil {
			t.Fatal(err)
		}
		err = bob.change(conv, protocol.OpAdd, []protocol.Member{alice.member(protocol.RoleMember)}, nil)
		wantCode(t, err, 403, server.CodeBlocked)
		if ids := alice.convIDs(); len(ids) != 0 {
			t.Fatal("a refused addition made alice a member")
		}

		// One way: alice may still start a conversation with bob.
		if _, err := alice.create([]*device{bob}); err != nil {
			t.Fatalf("the blocker starting a conversation: %v", err)
		}
		// The account's list, not the device's; bob cannot read it.
		var bl blocksAnswer
		e.login("alice", alice.id).must("GET", "/api/blocks", nil, &bl)
		if len(bl.Blocks) != 1 || bl.Blocks[0].User != bob.user || bl.Blocks[0].Username != "bob" {
			t.Fatalf("alice's other device sees %+v", bl)
		}
		bob.must("GET", "/api/blocks", nil, &bl)
		if len(bl.Blocks) != 0 {
			t.Fatalf("bob sees a block list of %d", len(bl.Blocks))
		}
		wantCode(t, bob.do("DELETE", "/api/blocks/"+alice.user.String(), nil, nil), 404, server.CodeNotFound)
		wantCode(t, bob.do("POST", "/api/blocks", map[string]any{"user": bob.user}, nil), 400, server.CodeBadRequest)
		wantCode(t, bob.do("POST", "/api/blocks", map[string]any{"user": protocol.NewUserID()}, nil), 404, server.CodeNotFound)

		alice.must("DELETE", "/api/blocks/"+bob.user.String(), nil, nil)
		if _, err := bob.create([]*device{alice}); err != nil {
			t.Fatalf("after unblocking: %v", err)
		}
	})
}

// TestNewContactsCap: one account cannot put more strangers into
// conversations than the cap in 24 hours (the probe that created a
// conversation with 301 strangers); members of a shared conversation do
// not count, a refusal changes nothing, and the window passes.
func TestNewContactsCap(t *testing.T) {
	forEachDB(t, server.Config{NewContactsPerDay: 3}, func(t *testing.T, e *env) {
		spammer, friend := e.register("spammer"), e.register("friend")
		var strangers []*device
		for i := range 5 {
			strangers = append(strangers, e.register("stranger"+string(rune('a'+i))))
		}
		if _, err := friend.create([]*device{spammer}); err != nil {
			t.Fatal(err)
		}
		_, err := spammer.create(strangers[:4])
		wantCode(t, err, 429, server.CodeTooManyContacts)
		for _, s := range strangers[:4] {
			if len(s.convIDs()) != 0 {
				t.Fatal("a refused creation reached a stranger")
			}
		}
		// friend shares a conversation: three strangers and a friend pass.
		conv, err := spammer.create(append([]*device{friend}, strangers[:3]...))
		if err != nil {
			t.Fatalf("up to the cap: %v", err)
		}
		err = spammer.change(conv, protocol.OpAdd, []protocol.Member{strangers[3].member(protocol.RoleMember)}, nil)
		wantCode(t, err, 429, server.CodeTooManyContacts)
		// The same strangers again are no new contacts.
		if _, err := spammer.create(strangers[:2]); err != nil {
			t.Fatalf("the same users again: %v", err)
		}
		e.clock.now = e.clock.now.Add(24*time.Hour + time.Minute)
		if err := spammer.change(conv, protocol.OpAdd, []protocol.Member{strangers[3].member(protocol.RoleMember)}, nil); err != nil {
			t.Fatalf("a day later: %v", err)
		}
	})
}

// TestBlockCap: one account cannot grow its block list past MaxBlocks
// accounts (the account that blocked every account of the server, N²
// rows in all). One more, with a statement or without, is refused with
// too_many_blocks and changes nothing; an unblock at the cap goes
// through, and so does a new statement about an account held (a
// block/unblock loop does not grow the list). A kept signed unblock
// counts (it is a row the server keeps for §16.2); an unsigned unblock,
// which keeps nothing, frees a place for a new block.
func TestBlockCap(t *testing.T) {
	forEachDB(t, server.Config{MaxBlocks: 2}, func(t *testing.T, e *env) {
		alice, b1, b2, b3 := e.register("alice"), e.register("bob1"), e.register("bob2"), e.register("bob3")
		alice.must("POST", "/api/blocks", alice.statement(b1, true, 1000, nil), nil)
		alice.must("POST", "/api/blocks", map[string]any{"user": b2.user}, nil)
		a := wantCode(t, alice.do("POST", "/api/blocks", alice.statement(b3, true, 1000, nil), nil), 409, server.CodeTooManyBlocks)
		if !strings.Contains(a.Detail, "2 accounts") {
			t.Fatalf("the refusal %q does not say the limit", a.Detail)
		}
		wantCode(t, alice.do("POST", "/api/blocks", map[string]any{"user": b3.user}, nil), 409, server.CodeTooManyBlocks)
		wantCode(t, alice.do("POST", "/api/blocks", alice.statement(b3, false, 1000, nil), nil), 409, server.CodeTooManyBlocks)
		list := func(what string, blocks, unblocks []*device) {
			t.Helper()
			var bl blocksAnswer
			alice.must("GET", "/api/blocks", nil, &bl)
			users := func(es []blockEntry) (out []string) { // in any order
				for _, e := range es {
					out = append(out, e.User.String())
				}
				slices.Sort(out)
				return out
			}
			ids := func(ds []*device) (out []string) {
				for _, d := range ds {
					out = append(out, d.user.String())
				}
				slices.Sort(out)
				return out
			}
			if !slices.Equal(users(bl.Blocks), ids(blocks)) || !slices.Equal(users(bl.Unblocks), ids(unblocks)) {
				t.Fatalf("%s: alice's list %+v", what, bl)
			}
		}
		list("after the refusals", []*device{b1, b2}, nil)
		if _, err := b3.create([]*device{alice}); err != nil {
			t.Fatalf("a refused block is enforced: %v", err)
		}

		// At the cap: an unblock, and a block/unblock loop over an
		// account held.
		alice.must("POST", "/api/blocks", alice.statement(b1, false, 1001, nil), nil)
		list("a signed unblock at the cap", []*device{b2}, []*device{b1})
		if _, err := b1.create([]*device{alice}); err != nil {
			t.Fatalf("after the unblock: %v", err)
		}
		for at := int64(1002); at < 1008; at += 2 {
			alice.must("POST", "/api/blocks", alice.statement(b1, true, at, nil), nil)
			alice.must("POST", "/api/blocks", alice.statement(b1, false, at+1, nil), nil)
		}
		list("a block/unblock loop", []*device{b2}, []*device{b1})
		// The kept unblock counts.
		wantCode(t, alice.do("POST", "/api/blocks", alice.statement(b3, true, 1000, nil), nil), 409, server.CodeTooManyBlocks)

		// An unsigned unblock keeps nothing: a new block fits again.
		alice.must("DELETE", "/api/blocks/"+b2.user.String(), nil, nil)
		alice.must("POST", "/api/blocks", alice.statement(b3, true, 1000, nil), nil)
		list("a new block after an unblock", []*device{b3}, []*device{b1})
		_, err := b3.create([]*device{alice})
		wantCode(t, err, 403, server.CodeBlocked)
		wantCode(t, alice.do("POST", "/api/blocks", map[string]any{"user": b2.user}, nil), 409, server.CodeTooManyBlocks)
	})
}

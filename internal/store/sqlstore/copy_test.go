package sqlstore

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// The tests of Copy run on real databases: SQLite files in the test's
// temporary directory and fresh PostgreSQL databases (testpg).

func newSQLite(t *testing.T, name string) *Store {
	return openTestStore(t, filepath.Join(t.TempDir(), name), nil)
}

func newPostgres(t *testing.T) *Store {
	return openTestStore(t, testpgURL(t), nil)
}

// --- a populated store, made through the Store methods ---

type account struct {
	id   protocol.UserID
	name string
	key  protocol.IdentityKey
	devs []protocol.DeviceID // bundled devices first
	toks [][]byte            // their tokens
}

// world is what fill made: enough to check the copy afterwards.
type world struct {
	alice, bob, carol, dave *account
	conv                    protocol.ConversationID
	binary                  []byte // an envelope holding every byte value
}

func rnd(n int) []byte {
	b := make([]byte, n)
	protocol.Random(b)
	return b
}

type filler struct {
	t   *testing.T
	s   *Store
	ctx context.Context
	now int64
}

func (f *filler) tick() int64 { f.now++; return f.now }

func (f *filler) must(what string, err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatalf("fill: %s: %v", what, err)
	}
}

// user creates an account with bundled devices (10 one-time keys each)
// and then unbundled ones.
func (f *filler) user(name string, bundled, unbundled int) *account {
	f.t.Helper()
	a := &account{id: protocol.NewUserID(), name: name}
	a.key = testIdentity()
	for i := 0; i < bundled+unbundled; i++ {
		d := store.Device{ID: protocol.NewDeviceID(), User: a.id, Name: fmt.Sprintf("%s's device %d — ünïcødé 📱", name, i), CreatedAt: f.tick()}
		tok := rnd(32)
		if i == 0 {
			f.must("create user", f.s.CreateUser(f.ctx, store.User{ID: a.id, Username: name, PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$" + hex.EncodeToString(rnd(8)), CreatedAt: f.now}, d, tok))
		} else {
			f.must("add device", f.s.AddDevice(f.ctx, d, tok, 0))
		}
		a.devs = append(a.devs, d.ID)
		a.toks = append(a.toks, tok)
		if i < bundled {
			f.must("put bundle", f.s.PutBundle(f.ctx, f.bundle(a, d.ID, a.key, false)))
		}
	}
	return a
}

func (f *filler) bundle(a *account, dev protocol.DeviceID, key protocol.IdentityKey, reset bool) store.BundleUpload {
	b := store.BundleUpload{User: a.id, Device: dev, Identity: key, SignedPreKey: rnd(40), LastResort: rnd(40), Reset: reset, Now: f.tick()}
	for i := 1; i <= 10; i++ {
		b.OneTime = append(b.OneTime, store.PreKeyRow{ID: uint32(i), Encoded: rnd(24)})
	}
	return b
}

// keys returns a session key for every active, bundled device of members.
func (f *filler) keys(members ...*account) []store.SessionKey {
	f.t.Helper()
	var out []store.SessionKey
	for _, a := range members {
		devs, err := f.s.Devices(f.ctx, a.id)
		f.must("devices", err)
		for _, d := range devs {
			if d.SignedPreKey != nil {
				out = append(out, store.SessionKey{Device: d.ID, User: a.id, PreKeyID: 1, InitiatorEphemeral: rnd(32), Ciphertext: rnd(48)})
			}
		}
	}
	return out
}

func (f *filler) rotate(conv protocol.ConversationID, creator *account, members ...*account) uint64 {
	f.t.Helper()
	c, err := f.s.Conversation(f.ctx, conv)
	f.must("conversation", err)
	ns := store.NewSession{Now: f.tick(), Session: store.Session{Conversation: conv, Epoch: c.Epoch + 1, ChainSeq: c.ChainSeq,
		Creator: creator.devs[0], Encoded: rnd(80), Keys: f.keys(members...), CreatedAt: f.now}}
	f.must("add session", f.s.AddSession(f.ctx, ns))
	return ns.Session.Epoch
}

func (f *filler) change(conv protocol.ConversationID, members ...*account) {
	f.t.Helper()
	c, err := f.s.Conversation(f.ctx, conv)
	f.must("conversation", err)
	mc := store.MembershipChange{Conversation: conv, PrevSeq: c.ChainSeq, Record: store.RecordRow{Seq: c.ChainSeq + 1, Encoded: rnd(64)},
		Head: [32]byte(rnd(32)), Now: f.tick()}
	for i, a := range members {
		role := protocol.RoleMember
		if i == 0 {
			role = protocol.RoleAdmin
		}
		mc.Members = append(mc.Members, store.MemberRow{User: a.id, Role: role})
	}
	f.must("change membership", f.s.ChangeMembership(f.ctx, mc))
}

func (f *filler) send(conv protocol.ConversationID, a *account, cid string, epoch uint64, env []byte) store.SendResult {
	f.t.Helper()
	if env == nil {
		env = append([]byte("envelope "+cid+" "), rnd(16)...)
	}
	r, err := f.s.SendOne(f.ctx, store.Send{Conversation: conv, Sender: a.devs[0], SenderUser: a.id, ClientID: cid, Epoch: epoch, Envelope: env, Now: f.tick()})
	f.must("send "+cid, err)
	return r
}

// fill writes a bit of everything into s: users and devices with bundles,
// one-time keys (some claimed), a revoked device, a conversation whose
// members change, three epochs with their keys, messages, the events all of
// this emits, and link requests (one pending, one approved with an empty
// sealed value, which must stay empty rather than become NULL).
func fill(t *testing.T, s *Store) *world {
	t.Helper()
	f := &filler{t: t, s: s, ctx: context.Background(), now: 1_700_000_000_000}
	w := &world{}
	w.alice = f.user("alice", 2, 1)
	w.bob = f.user("bob", 1, 1)
	w.carol = f.user("carol", 1, 0)
	w.dave = f.user("dave", 2, 0)

	// Dave resets his identity from his second device: the first is revoked.
	newKey := testIdentity()
	f.must("reset", s.PutBundle(f.ctx, f.bundle(w.dave, w.dave.devs[1], newKey, true)))
	// Claims take keys and mark carol's device low on keys.
	_, err := s.Claim(f.ctx, []protocol.DeviceID{w.bob.devs[0], w.carol.devs[0]}, 20, 1)
	f.must("claim", err)
	// A logout.
	f.must("logout", s.DeleteToken(f.ctx, w.alice.toks[1]))

	// Link requests of the unbundled devices.
	f.must("link request", s.PutLinkRequest(f.ctx, store.LinkRequest{Device: w.alice.devs[2], User: w.alice.id, PublicKey: rnd(40), Tag: rnd(32), CreatedAt: f.tick(), ExpiresAt: 1 << 62}))
	f.must("link request", s.PutLinkRequest(f.ctx, store.LinkRequest{Device: w.bob.devs[1], User: w.bob.id, PublicKey: rnd(40), CreatedAt: f.tick(), ExpiresAt: 1 << 62}))
	f.must("approve link", s.ApproveLink(f.ctx, w.bob.id, w.bob.devs[1], []byte{}, f.now))

	// A conversation of alice, bob and carol.
	w.conv = protocol.NewConversationID()
	nc := store.NewConversation{ID: w.conv, Genesis: store.RecordRow{Seq: 0, Encoded: rnd(64)}, Head: [32]byte(rnd(32)), Now: f.tick(),
		Session: store.Session{Conversation: w.conv, Epoch: 1, Creator: w.alice.devs[0], Encoded: rnd(80), Keys: f.keys(w.alice, w.bob, w.carol), CreatedAt: f.now},
		Members: []store.MemberRow{{User: w.alice.id, Role: protocol.RoleAdmin}, {User: w.bob.id, Role: protocol.RoleMember}, {User: w.carol.id, Role: protocol.RoleMember}}}
	f.must("create conversation", s.CreateConversation(f.ctx, nc))

	w.binary = make([]byte, 0, 512)
	for i := range 512 {
		w.binary = append(w.binary, byte(i))
	}
	f.send(w.conv, w.alice, "a1", 1, nil)
	f.send(w.conv, w.bob, "b1", 1, w.binary)
	f.send(w.conv, w.carol, "c1", 1, nil)
	// A batch.
	res, err := s.Send(f.ctx, []store.Send{
		{Conversation: w.conv, Sender: w.alice.devs[0], SenderUser: w.alice.id, ClientID: "a2", Epoch: 1, Envelope: rnd(100), Now: f.tick()},
		{Conversation: w.conv, Sender: w.bob.devs[0], SenderUser: w.bob.id, ClientID: "b2", Epoch: 1, Envelope: rnd(100), Now: f.tick()},
	})
	f.must("send batch", err)
	for _, r := range res {
		f.must("send batch item", r.Err)
	}

	// Carol leaves and comes back: two spans of membership, two more epochs.
	f.change(w.conv, w.alice, w.bob)
	f.rotate(w.conv, w.bob, w.alice, w.bob)
	f.send(w.conv, w.alice, "a3", 2, nil)
	f.change(w.conv, w.alice, w.bob, w.carol)
	f.rotate(w.conv, w.alice, w.alice, w.bob, w.carol)
	f.send(w.conv, w.carol, "c2", 3, nil)
	f.send(w.conv, w.bob, "b3", 3, nil)
	// Bob's signed device list names both his devices.
	_, err = s.PutDeviceList(f.ctx, store.DeviceListUpdate{User: w.bob.id, Identity: w.bob.key, Seq: 1, Encoded: rnd(99), Devices: w.bob.devs, Now: f.tick()})
	f.must("device list", err)
	// A blob that a message shares, and an unfinished upload.
	shared := store.Blob{ID: hex.EncodeToString(rnd(16)), Conversation: w.conv, User: w.bob.id, Device: w.bob.devs[0], Size: 20, Parts: 1,
		State: "state", CreatedAt: f.tick(), ExpiresAt: f.now + 1000}
	f.must("create blob", s.CreateBlob(f.ctx, shared, store.BlobLimits{}))
	f.must("blob part", s.SetBlobPart(f.ctx, shared.ID, 0, true, "state 2"))
	f.must("complete blob", s.CompleteBlob(f.ctx, shared.ID, f.tick(), f.now+1000))
	_, err = s.SendOne(f.ctx, store.Send{Conversation: w.conv, Sender: w.bob.devs[0], SenderUser: w.bob.id, ClientID: "b4", Epoch: 3,
		Envelope: rnd(50), Now: f.tick(), Blobs: []string{shared.ID}})
	f.must("send with a blob", err)
	unfinished := shared
	unfinished.ID, unfinished.Parts, unfinished.Size = hex.EncodeToString(rnd(16)), 3, 3*(8<<20)
	f.must("create blob", s.CreateBlob(f.ctx, unfinished, store.BlobLimits{}))
	// Bob's backup.
	_, err = s.PutArchive(f.ctx, store.Archive{ID: hex.EncodeToString(rnd(16)), User: w.bob.id, Kind: store.ArchiveBackup, Size: 77, CreatedAt: f.tick()}, 1)
	f.must("put archive", err)
	// Carol blocks dave; dave names a first contact.
	f.must("block", s.Block(f.ctx, w.carol.id, w.dave.id, f.tick(), 0))
	f.must("signed unblock", s.SetBlock(f.ctx, w.carol.id, w.bob.id, false, f.tick(), rnd(106), f.tick(), 0))
	_, err = s.NewContacts(f.ctx, w.dave.id, []protocol.UserID{w.bob.id}, 0, f.tick(), 100)
	f.must("new contacts", err)
	return w
}

// --- comparing databases ---

// dump returns every row of every table of the schema, each row as text,
// sorted. The query is its own (not Copy's): every column with an IS NULL
// flag, so that NULL, an empty value and a missing row all differ; bytes as
// hex; booleans as 0/1 as SQLite stores them.
func dump(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := make(map[string][]string)
	for _, table := range CopyTables() {
		rows, err := s.w.QueryContext(ctx, "SELECT * FROM "+table+" LIMIT 0")
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		cols, err := rows.Columns()
		rows.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Which source a database takes its event ids from (the counter
		// or, on PostgreSQL, the sequence) belongs to the database, as
		// its migrations do: a copy starts as a new database does.
		cols = slices.DeleteFunc(cols, func(c string) bool { return table == "event_counter" && c == "sequenced" })
		var sel []string
		for _, c := range cols {
			sel = append(sel, c, c+" IS NULL")
		}
		rows, err = s.w.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+table)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		vals := make([]any, len(sel))
		ptrs := make([]any, len(sel))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		lines := []string{}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			var fields []string
			for i, c := range cols {
				fields = append(fields, c+"="+cell(t, vals[2*i], vals[2*i+1]))
			}
			lines = append(lines, strings.Join(fields, " "))
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		rows.Close()
		sort.Strings(lines)
		out[table] = lines
	}
	return out
}

func cell(t *testing.T, v, isNull any) string {
	t.Helper()
	switch n := isNull.(type) {
	case bool:
		if n {
			return "NULL"
		}
	case int64:
		if n == 1 {
			return "NULL"
		}
	default:
		t.Fatalf("IS NULL gave %T", isNull)
	}
	switch x := v.(type) {
	case []byte:
		return "x'" + hex.EncodeToString(x) + "'"
	case nil: // the SQLite driver's empty BLOB
		return "x''"
	case string:
		return strconv.Quote(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		if x {
			return "1"
		}
		return "0"
	}
	t.Fatalf("unexpected value %T %v", v, v)
	return ""
}

func sameDump(t *testing.T, what string, want, got map[string][]string) {
	t.Helper()
	for _, table := range CopyTables() {
		if !slices.Equal(want[table], got[table]) {
			t.Errorf("%s: table %s differs:\nwant %d rows:\n  %s\ngot %d rows:\n  %s", what, table,
				len(want[table]), strings.Join(want[table], "\n  "), len(got[table]), strings.Join(got[table], "\n  "))
		}
	}
}

func copyOK(t *testing.T, from, to *Store) []TableCount {
	t.Helper()
	counts, err := Copy(context.Background(), from, to)
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	return counts
}

// --- the tests ---

// TestCopyTablesCoverSchema fails when the schema has a table Copy does not
// handle, or when Copy's order breaks a foreign key: the tables are listed
// from the database itself (sqlite_master, information_schema), not from
// Copy, on both databases.
func TestCopyTablesCoverSchema(t *testing.T) {
	ctx := context.Background()
	for _, db := range []struct {
		name         string
		open         func(t *testing.T) *Store
		tables, refs string // (name) and (table, referenced table) rows
	}{
		{"sqlite", func(t *testing.T) *Store { return newSQLite(t, "schema.db") },
			`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`,
			`SELECT m.name, f."table" FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'`},
		{"postgres", newPostgres,
			`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'goose_db_version'`,
			`SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f' AND connamespace = current_schema()::regnamespace`},
	} {
		t.Run(db.name, func(t *testing.T) {
			s := db.open(t)
			var schema []string
			rows, err := s.w.QueryContext(ctx, db.tables)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var name string
				if err := rows.Scan(&name); err != nil {
					t.Fatal(err)
				}
				schema = append(schema, name)
			}
			rows.Close()
			copied := CopyTables()
			for _, name := range schema {
				if !slices.Contains(copied, name) {
					t.Errorf("table %s is in the schema but Copy does not copy it: add it to copyTables", name)
				}
			}
			for _, name := range copied {
				if !slices.Contains(schema, name) {
					t.Errorf("Copy lists table %s, which the schema does not have", name)
				}
			}
			rows, err = s.w.QueryContext(ctx, db.refs)
			if err != nil {
				t.Fatal(err)
			}
			nrefs := 0
			for rows.Next() {
				var table, ref string
				if err := rows.Scan(&table, &ref); err != nil {
					t.Fatal(err)
				}
				nrefs++
				if ref != table && slices.Index(copied, ref) > slices.Index(copied, table) {
					t.Errorf("%s references %s but Copy copies it first", table, ref)
				}
			}
			rows.Close()
			if nrefs < 10 {
				t.Errorf("found only %d foreign keys: the query is wrong", nrefs)
			}
		})
	}
}

// TestCopy fills a SQLite store, copies it to PostgreSQL and from there to
// a new SQLite file, and checks that every table is identical on all
// three, that both copies work as stores (sequence numbers and event ids
// continue where the source stopped), and that copying into a non-empty
// target is refused and changes nothing.
func TestCopy(t *testing.T) {
	ctx := context.Background()
	src := newSQLite(t, "source.db")
	w := fill(t, src)
	want := dump(t, src)
	for _, table := range CopyTables() {
		if len(want[table]) == 0 {
			t.Fatalf("fill left table %s empty: the test would not check it", table)
		}
	}

	pg := newPostgres(t)
	counts := copyOK(t, src, pg)
	var names []string
	for _, c := range counts {
		names = append(names, c.Table)
		if c.Rows != int64(len(want[c.Table])) {
			t.Errorf("copy reports %d rows of %s, the source has %d", c.Rows, c.Table, len(want[c.Table]))
		}
	}
	if !slices.Equal(names, CopyTables()) {
		t.Errorf("copy reports tables %v, want %v", names, CopyTables())
	}
	sameDump(t, "SQLite to PostgreSQL", want, dump(t, pg))

	back := newSQLite(t, "back.db")
	copyOK(t, pg, back)
	sameDump(t, "PostgreSQL to SQLite", want, dump(t, back))

	// What the store methods read is the same too.
	srcConv, err := src.Conversation(ctx, w.conv)
	if err != nil {
		t.Fatal(err)
	}
	srcLast, _ := src.LastEventID(ctx)
	allDevs := slices.Concat(w.alice.devs, w.bob.devs, w.carol.devs, w.dave.devs)
	users := map[protocol.DeviceID]protocol.UserID{}
	for _, a := range []*account{w.alice, w.bob, w.carol, w.dave} {
		for _, d := range a.devs {
			users[d] = a.id
		}
	}
	for name, dst := range map[string]*Store{"postgres": pg, "sqlite": back} {
		t.Run(name, func(t *testing.T) {
			if c, err := dst.Conversation(ctx, w.conv); err != nil || c != srcConv {
				t.Fatalf("conversation = %+v, %v; want %+v", c, err, srcConv)
			}
			if last, err := dst.LastEventID(ctx); err != nil || last != srcLast {
				t.Fatalf("last event id = %d, %v; want %d", last, err, srcLast)
			}
			synced := 0
			for _, d := range allDevs {
				want, err1 := src.Sync(ctx, users[d], d, 0, 1000)
				got, err2 := dst.Sync(ctx, users[d], d, 0, 1000)
				if err1 != nil || err2 != nil || !reflect.DeepEqual(want, got) {
					t.Fatalf("sync of device %v: copy %d events (%v), source %d (%v)", d, len(got), err2, len(want), err1)
				}
				synced += len(got)
			}
			if synced < 20 {
				t.Fatalf("the devices synced only %d events in all", synced)
			}
			msgs, err := dst.Messages(ctx, w.conv, 0, 100)
			if err != nil || len(msgs) != int(srcConv.LastSeq) {
				t.Fatalf("messages = %d, %v; want %d", len(msgs), err, srcConv.LastSeq)
			}
			if !slices.Equal(msgs[1].Envelope, w.binary) {
				t.Fatalf("the binary envelope changed: %x", msgs[1].Envelope)
			}

			// A new message takes the next seq and the next event id, and
			// a device syncing from where it was gets exactly it.
			r, err := dst.SendOne(ctx, store.Send{Conversation: w.conv, Sender: w.bob.devs[0], SenderUser: w.bob.id,
				ClientID: "after-copy", Epoch: srcConv.Epoch, Envelope: []byte("after the copy"), Now: 1_800_000_000_000})
			if err != nil || r.Duplicate || r.Seq != srcConv.LastSeq+1 || r.EventID != srcLast+1 {
				t.Fatalf("send after the copy: %+v, %v; want seq %d, event %d", r, err, srcConv.LastSeq+1, srcLast+1)
			}
			evs, err := dst.Sync(ctx, w.alice.id, w.alice.devs[0], srcLast, 100)
			if err != nil || len(evs) != 1 || evs[0].ID != srcLast+1 || evs[0].Message == nil || evs[0].Message.ClientID != "after-copy" {
				t.Fatalf("sync after the copy: %+v, %v", evs, err)
			}
			// An old message retried is still recognised.
			r, err = dst.SendOne(ctx, store.Send{Conversation: w.conv, Sender: w.bob.devs[0], SenderUser: w.bob.id,
				ClientID: "b1", Epoch: 1, Envelope: w.binary, Now: 1_800_000_000_001})
			if err != nil || !r.Duplicate || r.Seq != 2 {
				t.Fatalf("retry of a copied message: %+v, %v", r, err)
			}
			// Accounts, keys and tokens came along.
			if _, err := dst.UserByName(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			other := protocol.NewUserID()
			err = dst.CreateUser(ctx, store.User{ID: other, Username: "alice", PasswordHash: "h", CreatedAt: 1},
				store.Device{ID: protocol.NewDeviceID(), User: other, Name: "d", CreatedAt: 1}, rnd(32))
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("a second alice: %v, want ErrConflict", err)
			}
			n, err := dst.CountOneTimeKeys(ctx, w.carol.devs[0])
			if err != nil || n != 9 {
				t.Fatalf("carol's one-time keys = %d, %v; want 9", n, err)
			}
			cl, err := dst.Claim(ctx, []protocol.DeviceID{w.carol.devs[0]}, 0, 1)
			if err != nil || cl[0].OneTime == nil || cl[0].OneTime.ID != 2 {
				t.Fatalf("claim after the copy: %+v, %v; want key 2 (key 1 was claimed before)", cl, err)
			}
			lr, err := dst.LinkRequest(ctx, w.bob.devs[1])
			if err != nil || lr.Sealed == nil && name == "postgres" {
				t.Fatalf("approved link request = %+v, %v; want an empty, not NULL, sealed value", lr, err)
			}
		})
	}

	// A second copy into the now non-empty target is refused and writes
	// nothing.
	before := dump(t, pg)
	_, err = Copy(ctx, src, pg)
	if !errors.Is(err, ErrTargetNotEmpty) {
		t.Fatalf("copy into a non-empty target: %v, want ErrTargetNotEmpty", err)
	}
	sameDump(t, "after the refused copy", before, dump(t, pg))
}

// TestCopySnapshot writes to the source while a copy runs: the copy is the
// source as it was when the copy began, whole (a new device whose account
// was not copied would break a foreign key; a new message would show).
func TestCopySnapshot(t *testing.T) {
	ctx := context.Background()
	sqliteSrc := newSQLite(t, "source.db")
	w := fill(t, sqliteSrc)
	pgSrc := newPostgres(t)
	copyOK(t, sqliteSrc, pgSrc)
	for name, src := range map[string]*Store{"sqlite": sqliteSrc, "postgres": pgSrc} {
		t.Run(name, func(t *testing.T) {
			want := dump(t, src)
			dst := newSQLite(t, "snapshot.db")
			wrote := 0
			_, err := copyStore(ctx, src, dst, func(table string) error {
				switch table {
				case "users", "messages":
					// Written and committed on the source while the copy
					// still has tables to read.
					wrote++
					f := &filler{t: t, s: src, ctx: ctx, now: 1_900_000_000_000}
					f.user(fmt.Sprintf("late%d", wrote), 1, 0)
					f.send(w.conv, w.bob, fmt.Sprintf("late%d", wrote), 3, nil)
				}
				return nil
			}, nil)
			if err != nil {
				t.Fatalf("copy while the source is written: %v", err)
			}
			if wrote != 2 {
				t.Fatalf("the hook wrote %d times", wrote)
			}
			sameDump(t, "snapshot", want, dump(t, dst))
			if after := dump(t, src); len(after["users"]) != len(want["users"])+2 {
				t.Fatalf("the writes during the copy did not reach the source")
			}
		})
	}
}

// TestCopyAllOrNothing fails a copy midway: the target is left exactly as
// it was (empty), and a copy into it afterwards succeeds.
func TestCopyAllOrNothing(t *testing.T) {
	ctx := context.Background()
	src := newSQLite(t, "source.db")
	fill(t, src)
	want := dump(t, src)
	for name, open := range map[string]func(t *testing.T) *Store{
		"postgres": newPostgres,
		"sqlite":   func(t *testing.T) *Store { return newSQLite(t, "target.db") },
	} {
		t.Run(name, func(t *testing.T) {
			dst := open(t)
			empty := dump(t, dst)
			boom := errors.New("boom")
			_, err := copyStore(ctx, src, dst, func(table string) error {
				if table == "events" {
					return boom
				}
				return nil
			}, nil)
			if !errors.Is(err, boom) {
				t.Fatalf("copy failed with %v, want the hook's error", err)
			}
			sameDump(t, "after a failed copy", empty, dump(t, dst))
			copyOK(t, src, dst)
			sameDump(t, "copy after a failed one", want, dump(t, dst))
		})
	}
}

// TestCopyRefuses: what Copy must not copy, and that it then writes
// nothing.
func TestCopyRefuses(t *testing.T) {
	ctx := context.Background()
	src := newSQLite(t, "source.db")
	fill(t, src)
	exec := func(s *Store, q string) {
		t.Helper()
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	refused := func(t *testing.T, from, to *Store, want string) {
		t.Helper()
		before := dump(t, to)
		_, err := Copy(ctx, from, to)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("copy: %v, want an error about %q", err, want)
		}
		sameDump(t, "after a refused copy", before, dump(t, to))
	}

	t.Run("same store", func(t *testing.T) {
		refused(t, src, src, "same store")
	})
	t.Run("non-empty target", func(t *testing.T) {
		dst := newSQLite(t, "target.db")
		f := &filler{t: t, s: dst, ctx: ctx}
		f.user("someone", 0, 1)
		refused(t, src, dst, "not empty (table users has rows)")
	})
	t.Run("used event counter", func(t *testing.T) {
		dst := newPostgres(t)
		exec(dst, "DELETE FROM event_counter")
		exec(dst, "INSERT INTO event_counter (id, last_id, sequenced) VALUES (1, 5, TRUE)")
		refused(t, src, dst, "not empty (table event_counter has rows)")
	})
	t.Run("unknown table", func(t *testing.T) {
		other := newSQLite(t, "other.db")
		copyOK(t, src, other)
		exec(other, "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT)")
		refused(t, other, newPostgres(t), "tables the copy does not know (notes)")
	})
	t.Run("different columns", func(t *testing.T) {
		dst := newPostgres(t)
		exec(dst, "ALTER TABLE users ADD COLUMN nickname TEXT")
		refused(t, src, dst, "table users differs")
	})
	t.Run("other migration version", func(t *testing.T) {
		dst := newPostgres(t)
		exec(dst, "INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, TRUE)")
		refused(t, src, dst, "migration version")
	})
}

// TestCopySequences: a PostgreSQL target whose column has a sequence (an
// identity column, GENERATED ALWAYS) gets the copied values and its
// sequence set past them. The schema has no such column; this adds one to
// the target to check that Copy would handle it.
func TestCopySequences(t *testing.T) {
	ctx := context.Background()
	src := newSQLite(t, "source.db")
	fill(t, src)
	dst := newPostgres(t)
	if _, err := dst.w.ExecContext(ctx, "ALTER TABLE events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY"); err != nil {
		t.Fatal(err)
	}
	copyOK(t, src, dst)
	var maxID, next int64
	if err := dst.w.QueryRowContext(ctx, "SELECT MAX(id) FROM events").Scan(&maxID); err != nil {
		t.Fatal(err)
	}
	if err := dst.w.QueryRowContext(ctx, "SELECT nextval(pg_get_serial_sequence('events', 'id'))").Scan(&next); err != nil {
		t.Fatal(err)
	}
	if maxID < 10 || next != maxID+1 {
		t.Fatalf("after copying events up to id %d the sequence gives %d, want %d", maxID, next, maxID+1)
	}
}

// TestCopyStreams copies a table larger than one insert batch, by count and
// by bytes.
func TestCopyStreams(t *testing.T) {
	ctx := context.Background()
	src := newSQLite(t, "source.db")
	w := fill(t, src)
	conv, err := src.Conversation(ctx, w.conv)
	if err != nil {
		t.Fatal(err)
	}
	var batch []store.Send
	for i := range 1200 {
		size := 100
		if i%100 == 0 {
			size = 1 << 20 // a few large envelopes cross the byte bound
		}
		batch = append(batch, store.Send{Conversation: w.conv, Sender: w.alice.devs[0], SenderUser: w.alice.id,
			ClientID: fmt.Sprintf("bulk%d", i), Epoch: conv.Epoch, Envelope: rnd(size), Now: int64(i)})
	}
	res, err := src.Send(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	dst := newPostgres(t)
	counts := copyOK(t, src, dst)
	i := slices.IndexFunc(counts, func(c TableCount) bool { return c.Table == "messages" })
	if counts[i].Rows != int64(conv.LastSeq)+1200 {
		t.Fatalf("copied %d messages, want %d", counts[i].Rows, conv.LastSeq+1200)
	}
	sameDump(t, "bulk", dump(t, src), dump(t, dst))
}

// testIdentity returns a valid identity key (§2.3: a point of large order)
// from a random seed; the store refuses to load anything else.
func testIdentity() protocol.IdentityKey {
	seed := make([]byte, ed25519.SeedSize)
	protocol.Random(seed)
	k, err := protocol.ParseIdentityKey(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	if err != nil {
		panic(err)
	}
	return k
}

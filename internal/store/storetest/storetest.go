// Package storetest is the conformance suite of store.Store: one set of
// scenarios that every implementation must pass (sqlstore on SQLite and on
// PostgreSQL). It checks the contract written in package store, each
// invariant by a test that fails when the invariant is broken: identity set
// with the first bundle (defect 1), conversation creation all-or-nothing
// under a fault at every step (defect 2), session keys that cover exactly
// the member devices (defect 3), atomic pre-key claims, gap-free sequence
// numbers, idempotent sends, and a sync stream that loses nothing.
package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Opener opens a store for test t. The first call for a given t opens a
// fresh, empty database; later calls for the same t open that same
// database again (the suite closes the earlier store first), which is how
// the suite checks what survives a restart. fault, when not nil, must be
// installed as the store's fault hook: called between the steps of
// CreateConversation, AddSession and PutBundle inside their transaction, an
// error from it must abort the write. The store must be closed when t ends;
// Close must tolerate being called twice.
type Opener func(t *testing.T, fault func(step string) error) store.Store

// PerTest builds an Opener from newDB, which returns a location for a new
// database, and openAt, which opens a store there. It remembers the
// location of each test so that reopening finds the same database.
func PerTest(newDB func(t *testing.T) string, openAt func(t *testing.T, where string, fault func(step string) error) store.Store) Opener {
	var mu sync.Mutex
	dbs := make(map[*testing.T]string)
	return func(t *testing.T, fault func(step string) error) store.Store {
		mu.Lock()
		where, ok := dbs[t]
		mu.Unlock()
		if !ok {
			where = newDB(t)
			mu.Lock()
			dbs[t] = where
			mu.Unlock()
			t.Cleanup(func() {
				mu.Lock()
				delete(dbs, t)
				mu.Unlock()
			})
		}
		return openAt(t, where, fault)
	}
}

// Run runs the whole suite against the stores open makes.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		run  func(*testing.T, Opener)
	}{
		{"Users", testUsers},
		{"Identity", testIdentity},
		{"IdentityReset", testIdentityReset},
		{"ConcurrentIdentities", testConcurrentIdentities},
		{"OneTimeKeys", testOneTimeKeys},
		{"ConcurrentClaims", testConcurrentClaims},
		{"OneTimeCap", testOneTimeCap},
		{"CreateConversation", testCreateConversation},
		{"Coverage", testCoverage},
		{"DeviceLists", testDeviceLists},
		{"DeviceListFaults", testDeviceListFaults},
		{"CreateConversationFaults", testCreateConversationFaults},
		{"AddSessionFaults", testAddSessionFaults},
		{"PutBundleFaults", testPutBundleFaults},
		{"Rotation", testRotation},
		{"EpochRace", testEpochRace},
		{"Membership", testMembership},
		{"SendGapFree", testSendGapFree},
		{"SendConcurrentBatches", testSendConcurrentBatches},
		{"SendChecks", testSendChecks},
		{"Idempotency", testIdempotency},
		{"ConcurrentRetries", testConcurrentRetries},
		{"RotationPolicy", testRotationPolicy},
		{"Sync", testSync},
		{"SyncMembershipSpans", testSyncMembershipSpans},
		{"MemberMessages", testMemberMessages},
		{"MessageExpiry", testMessageExpiry},
		{"SyncCommitOrder", testSyncCommitOrder},
		{"SyncLateCommit", testSyncLateCommit},
		{"SendOneRetries", testSendOneRetries},
		{"Links", testLinks},
		{"Logins", testLogins},
		{"AnswersFollowWrites", testAnswersFollowWrites},
		{"Ping", testPing},
		{"Incarnation", testIncarnation},
		{"State", testState},
		{"Blobs", testBlobs},
		{"BlobQuotaRace", testBlobQuotaRace},
		{"BlobPartsConcurrent", testBlobPartsConcurrent},
		{"Archives", testArchives},
		{"Contacts", testContacts},
		{"DeviceNames", testDeviceNames},
		{"BlockStatements", testBlockStatements},
		{"BlockCap", testBlockCap},
		{"BlockCapRace", testBlockCapRace},
		{"DeviceCap", testDeviceCap},
		{"DeviceCapRace", testDeviceCapRace},
		{"DevicePurge", testDevicePurge},
		{"DevicePurgeEvents", testDevicePurgeEvents},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open) })
	}
}

// fixture holds a store and builds the accounts and conversations the
// scenarios need through the store's own methods.
type fixture struct {
	t   *testing.T
	s   store.Store
	ctx context.Context
	now int64
	n   int
}

func newFixture(t *testing.T, s store.Store) *fixture {
	return &fixture{t: t, s: s, ctx: context.Background(), now: 1_700_000_000_000}
}

// tick advances the fixture's clock by one millisecond.
func (f *fixture) tick() int64 {
	f.now++
	return f.now
}

func random(n int) []byte {
	b := make([]byte, n)
	protocol.Random(b)
	return b
}

func newIdentity() protocol.IdentityKey {
	// A valid key (§2.3), which random bytes are not: the store refuses to
	// load an invalid one.
	seed := make([]byte, ed25519.SeedSize)
	protocol.Random(seed)
	k, err := protocol.ParseIdentityKey(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	if err != nil {
		panic(err)
	}
	return k
}

// acct is an account the fixture made.
type acct struct {
	ID   protocol.UserID
	Name string
	Key  protocol.IdentityKey
	Devs []protocol.DeviceID
	Toks [][]byte
}

// user creates an account with devices devices; with bundled, each
// uploads a bundle (with 10 one-time keys) under the account's key.
func (f *fixture) user(devices int, bundled bool) *acct {
	f.t.Helper()
	f.n++
	a := &acct{ID: protocol.NewUserID(), Name: fmt.Sprintf("user%d-%x", f.n, random(3)), Key: newIdentity()}
	for i := 0; i < devices; i++ {
		f.device(a, bundled)
	}
	return a
}

// device adds a device (the account's first creates the account).
func (f *fixture) device(a *acct, bundled bool) protocol.DeviceID {
	f.t.Helper()
	d := store.Device{ID: protocol.NewDeviceID(), User: a.ID, Name: fmt.Sprintf("dev%d", len(a.Devs)), CreatedAt: f.tick()}
	tok := random(32)
	var err error
	if len(a.Devs) == 0 {
		err = f.s.CreateUser(f.ctx, store.User{ID: a.ID, Username: a.Name, PasswordHash: "$argon2id$test", CreatedAt: f.now}, d, tok)
	} else {
		err = f.s.AddDevice(f.ctx, d, tok, 0)
	}
	if err != nil {
		f.t.Fatalf("create device: %v", err)
	}
	a.Devs = append(a.Devs, d.ID)
	a.Toks = append(a.Toks, tok)
	if bundled {
		f.bundle(a, d.ID, 10)
	}
	return d.ID
}

// bundleUpload is a bundle of dev under key with one-time keys 1..n.
func (f *fixture) bundleUpload(a *acct, dev protocol.DeviceID, key protocol.IdentityKey, n int) store.BundleUpload {
	b := store.BundleUpload{User: a.ID, Device: dev, Identity: key, SignedPreKey: random(40), LastResort: random(40), Now: f.tick()}
	for i := 1; i <= n; i++ {
		b.OneTime = append(b.OneTime, store.PreKeyRow{ID: uint32(i), Encoded: random(24)})
	}
	return b
}

func (f *fixture) bundle(a *acct, dev protocol.DeviceID, n int) {
	f.t.Helper()
	if err := f.s.PutBundle(f.ctx, f.bundleUpload(a, dev, a.Key, n)); err != nil {
		f.t.Fatalf("put bundle: %v", err)
	}
}

// keysFor returns one session key for each active, bundled and listed
// device of members, as the store reports them.
func (f *fixture) keysFor(members ...*acct) []store.SessionKey {
	f.t.Helper()
	var keys []store.SessionKey
	for _, a := range members {
		devs, err := f.s.Devices(f.ctx, a.ID)
		if err != nil {
			f.t.Fatalf("devices: %v", err)
		}
		for _, d := range devs {
			if d.SignedPreKey == nil || d.Unlisted {
				continue
			}
			keys = append(keys, store.SessionKey{Device: d.ID, User: a.ID, PreKeyID: 1, InitiatorEphemeral: random(32), Ciphertext: random(48)})
		}
	}
	return keys
}

func (f *fixture) newConversation(creator *acct, members ...*acct) store.NewConversation {
	id := protocol.NewConversationID()
	all := append([]*acct{creator}, members...)
	nc := store.NewConversation{
		ID:      id,
		Genesis: store.RecordRow{Seq: 0, Encoded: random(64)},
		Head:    [32]byte(random(32)),
		Now:     f.tick(),
		Session: store.Session{Conversation: id, Epoch: 1, ChainSeq: 0, Creator: creator.Devs[0], Encoded: random(80), Keys: f.keysFor(all...), CreatedAt: f.now},
	}
	for i, a := range all {
		role := protocol.RoleMember
		if i == 0 {
			role = protocol.RoleAdmin
		}
		nc.Members = append(nc.Members, store.MemberRow{User: a.ID, Role: role})
	}
	return nc
}

// conversation creates a conversation of creator (admin) and members.
func (f *fixture) conversation(creator *acct, members ...*acct) protocol.ConversationID {
	f.t.Helper()
	nc := f.newConversation(creator, members...)
	if err := f.s.CreateConversation(f.ctx, nc); err != nil {
		f.t.Fatalf("create conversation: %v", err)
	}
	return nc.ID
}

func (f *fixture) conv(id protocol.ConversationID) store.Conversation {
	f.t.Helper()
	c, err := f.s.Conversation(f.ctx, id)
	if err != nil {
		f.t.Fatalf("conversation: %v", err)
	}
	return c
}

// nextSession is the next epoch of conv made by creator's first device for
// the given members.
func (f *fixture) nextSession(conv protocol.ConversationID, creator *acct, members ...*acct) store.NewSession {
	c := f.conv(conv)
	return store.NewSession{Now: f.tick(), Session: store.Session{
		Conversation: conv, Epoch: c.Epoch + 1, ChainSeq: c.ChainSeq, Creator: creator.Devs[0],
		Encoded: random(80), Keys: f.keysFor(members...), CreatedAt: f.now,
	}}
}

// rotate adds the next epoch and returns it.
func (f *fixture) rotate(conv protocol.ConversationID, creator *acct, members ...*acct) uint64 {
	f.t.Helper()
	ns := f.nextSession(conv, creator, members...)
	if err := f.s.AddSession(f.ctx, ns); err != nil {
		f.t.Fatalf("add session: %v", err)
	}
	return ns.Session.Epoch
}

// change sets the members of conv (first admin) with a new record.
func (f *fixture) change(conv protocol.ConversationID, members ...*acct) uint64 {
	f.t.Helper()
	c := f.conv(conv)
	mc := store.MembershipChange{Conversation: conv, PrevSeq: c.ChainSeq, Record: store.RecordRow{Seq: c.ChainSeq + 1, Encoded: random(64)},
		Head: [32]byte(random(32)), Now: f.tick()}
	for i, a := range members {
		role := protocol.RoleMember
		if i == 0 {
			role = protocol.RoleAdmin
		}
		mc.Members = append(mc.Members, store.MemberRow{User: a.ID, Role: role})
	}
	if err := f.s.ChangeMembership(f.ctx, mc); err != nil {
		f.t.Fatalf("change membership: %v", err)
	}
	return mc.Record.Seq
}

// msg is a message from a's device dev (index) with client id cid.
func (f *fixture) msg(conv protocol.ConversationID, a *acct, dev int, cid string, epoch uint64) store.Send {
	return store.Send{Conversation: conv, Sender: a.Devs[dev], SenderUser: a.ID, ClientID: cid, Epoch: epoch,
		Envelope: []byte("envelope:" + cid + ":" + a.Name), Now: f.tick()}
}

func (f *fixture) sendOne(m store.Send) store.SendResult {
	f.t.Helper()
	r, err := f.s.SendOne(f.ctx, m)
	if err != nil {
		f.t.Fatalf("send %q: %v", m.ClientID, err)
	}
	return r
}

// sync returns every event of a's device dev after since.
func (f *fixture) sync(a *acct, dev int, since int64) []store.Event {
	f.t.Helper()
	var all []store.Event
	for {
		evs, err := f.s.Sync(f.ctx, a.ID, a.Devs[dev], since, 1000)
		if err != nil {
			f.t.Fatalf("sync: %v", err)
		}
		if len(evs) == 0 {
			return all
		}
		for _, e := range evs {
			if e.ID <= since {
				f.t.Fatalf("sync after %d returned event %d: ids must increase", since, e.ID)
			}
			since = e.ID
		}
		all = append(all, evs...)
	}
}

func (f *fixture) lastEvent() int64 {
	f.t.Helper()
	id, err := f.s.LastEventID(f.ctx)
	if err != nil {
		f.t.Fatalf("last event id: %v", err)
	}
	return id
}

// kinds counts events by kind.
func kinds(evs []store.Event) map[string]int {
	m := make(map[string]int)
	for _, e := range evs {
		m[e.Kind]++
	}
	return m
}

// ofKind returns the events of one kind.
func ofKind(evs []store.Event, kind string) []store.Event {
	var out []store.Event
	for _, e := range evs {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// messageSeqs returns the seqs of the message events of conv.
func messageSeqs(evs []store.Event, conv protocol.ConversationID) []uint64 {
	var out []uint64
	for _, e := range evs {
		if e.Kind == store.EventMessage && e.Conversation != nil && *e.Conversation == conv {
			out = append(out, e.Seq)
		}
	}
	return out
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func sortedDevs(ds []protocol.DeviceID) []protocol.DeviceID {
	out := slices.Clone(ds)
	slices.SortFunc(out, func(a, b protocol.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

func testPing(t *testing.T, open Opener) {
	s := open(t, nil)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// atOnce runs fn(0) … fn(n-1) in goroutines released together and returns
// their errors.
func atOnce(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			errs[i] = fn(i)
		}()
	}
	start.Done()
	done.Wait()
	return errs
}

// accepted counts the nil errors of calls made at once against a limit,
// failing the test on any error other than refused (the limit's).
func accepted(t *testing.T, errs []error, refused error, what string) int {
	t.Helper()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, refused):
			t.Fatalf("%s: %v", what, err)
		}
	}
	return ok
}

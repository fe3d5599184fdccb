package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// snapshot renders everything a reader can see of the given accounts and
// conversations (and the event stream's head), so that a refused or failed
// write can be shown to have changed nothing.
func (f *fixture) snapshot(accts []*acct, convs []protocol.ConversationID) string {
	f.t.Helper()
	s, ctx := f.s, f.ctx
	var b strings.Builder
	show := func(what string, v any, err error) {
		switch {
		case err == nil:
			fmt.Fprintf(&b, "%s: %+v\n", what, v)
		case errors.Is(err, store.ErrNotFound):
			fmt.Fprintf(&b, "%s: not found\n", what)
		default:
			f.t.Fatalf("snapshot %s: %v", what, err)
		}
	}
	for _, a := range accts {
		u, err := s.User(ctx, a.ID)
		var ident []byte
		if u.Identity != nil {
			ident = u.Identity[:]
		}
		show("identity "+a.Name, fmt.Sprintf("%x", ident), err)
		devs, err := s.Devices(ctx, a.ID)
		show("devices "+a.Name, devs, err)
		for i, d := range a.Devs {
			n, err := s.CountOneTimeKeys(ctx, d)
			show(fmt.Sprintf("one-time keys %s/%d", a.Name, i), n, err)
			dv, err := s.DeviceByToken(ctx, a.Toks[i])
			show(fmt.Sprintf("token %s/%d", a.Name, i), dv.ID, err)
		}
		dl, err := s.DeviceList(ctx, a.ID)
		show("device list "+a.Name, dl, err)
		cs, err := s.Conversations(ctx, a.ID)
		show("conversations "+a.Name, cs, err)
	}
	for _, id := range convs {
		c, err := s.Conversation(ctx, id)
		show("conversation "+id.String(), c, err)
		ms, err := s.Members(ctx, id)
		show("members "+id.String(), ms, err)
		rs, err := s.Records(ctx, id, 0)
		show("records "+id.String(), rs, err)
		for _, a := range accts {
			for _, d := range a.Devs {
				for epoch := uint64(1); epoch <= c.Epoch+1; epoch++ {
					sk, err := s.SessionKeys(ctx, id, d, epoch)
					show(fmt.Sprintf("session %s/%d/%s", id, epoch, d), sk, err)
				}
			}
		}
	}
	show("last event", f.lastEvent(), nil)
	return b.String()
}

func (f *fixture) sameSnapshot(what, before string, accts []*acct, convs []protocol.ConversationID) {
	f.t.Helper()
	after := f.snapshot(accts, convs)
	if after == before {
		return
	}
	var diff strings.Builder
	bl, al := strings.Split(before, "\n"), strings.Split(after, "\n")
	for _, l := range bl {
		if !slices.Contains(al, l) {
			fmt.Fprintf(&diff, "- %s\n", l)
		}
	}
	for _, l := range al {
		if !slices.Contains(bl, l) {
			fmt.Fprintf(&diff, "+ %s\n", l)
		}
	}
	f.t.Fatalf("%s changed what readers see:\n%s", what, diff.String())
}

// testCreateConversation: what a new conversation holds and shows.
func testCreateConversation(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob := f.user(2, true), f.user(1, true)
	carol := f.user(1, false) // no bundle yet: not covered
	dave := f.user(1, true)
	since := f.lastEvent()

	nc := f.newConversation(alice, bob, carol)
	if len(nc.Session.Keys) != 3 {
		t.Fatalf("fixture made %d keys, want 3", len(nc.Session.Keys))
	}
	if err := s.CreateConversation(ctx, nc); err != nil {
		t.Fatalf("create: %v", err)
	}
	c := f.conv(nc.ID)
	if c.ID != nc.ID || c.Epoch != 1 || c.ChainSeq != 0 || c.ChainHead != nc.Head || c.LastSeq != 0 || c.RotationRequired ||
		c.CreatedAt != nc.Now || c.EpochStartedAt != nc.Now || c.MessagesInEpoch != 0 {
		t.Fatalf("new conversation = %+v", c)
	}
	ms, err := s.Members(ctx, nc.ID)
	if err != nil || len(ms) != 3 {
		t.Fatalf("members = %+v, %v", ms, err)
	}
	for _, want := range nc.Members {
		if !slices.Contains(ms, want) {
			t.Fatalf("members %+v lack %+v", ms, want)
		}
	}
	rs, err := s.Records(ctx, nc.ID, 0)
	if err != nil || len(rs) != 1 || rs[0].Seq != 0 || !bytes.Equal(rs[0].Encoded, nc.Genesis.Encoded) {
		t.Fatalf("records = %+v, %v", rs, err)
	}
	if rs, err := s.Records(ctx, nc.ID, 1); err != nil || len(rs) != 0 {
		t.Fatalf("records from 1 = %+v, %v", rs, err)
	}
	for _, k := range nc.Session.Keys {
		sk, err := s.SessionKeys(ctx, nc.ID, k.Device, 1)
		if err != nil {
			t.Fatalf("session keys of %s: %v", k.Device, err)
		}
		if sk.Conversation != nc.ID || sk.Epoch != 1 || sk.ChainSeq != 0 || sk.Creator != alice.Devs[0] ||
			!bytes.Equal(sk.Encoded, nc.Session.Encoded) || len(sk.Keys) != 1 {
			t.Fatalf("session = %+v", sk)
		}
		got := sk.Keys[0]
		if got.Device != k.Device || got.User != k.User || got.PreKeyID != k.PreKeyID ||
			!bytes.Equal(got.InitiatorEphemeral, k.InitiatorEphemeral) || !bytes.Equal(got.Ciphertext, k.Ciphertext) {
			t.Fatalf("session key = %+v, want %+v", got, k)
		}
	}
	_, err = s.SessionKeys(ctx, nc.ID, carol.Devs[0], 1)
	wantErr(t, "session key of an uncovered device", err, store.ErrNotFound)
	_, err = s.SessionKeys(ctx, nc.ID, bob.Devs[0], 2)
	wantErr(t, "session key of a future epoch", err, store.ErrNotFound)
	if cs, err := s.Conversations(ctx, bob.ID); err != nil || len(cs) != 1 || cs[0].ID != nc.ID {
		t.Fatalf("bob's conversations = %+v, %v", cs, err)
	}
	if cs, err := s.Conversations(ctx, dave.ID); err != nil || len(cs) != 0 {
		t.Fatalf("dave's conversations = %+v, %v", cs, err)
	}

	// Events: each device its own session, every member the membership.
	evs := f.sync(bob, 0, since)
	if k := kinds(evs); len(evs) != 2 || k[store.EventSession] != 1 || k[store.EventMembership] != 1 {
		t.Fatalf("bob's events = %+v, want one session and one membership", evs)
	}
	for _, e := range evs {
		if e.Conversation == nil || *e.Conversation != nc.ID || (e.Kind == store.EventSession && e.Epoch != 1) {
			t.Fatalf("bob's event %+v", e)
		}
	}
	if k := kinds(f.sync(carol, 0, since)); k[store.EventSession] != 0 || k[store.EventMembership] != 1 {
		t.Fatalf("carol's events = %v, want the membership and no session", k)
	}
	if k := kinds(f.sync(dave, 0, since)); len(k) != 0 {
		t.Fatalf("dave, not a member, got events %v", k)
	}

	// Refusals change nothing.
	accts := []*acct{alice, bob, carol, dave}
	before := f.snapshot(accts, []protocol.ConversationID{nc.ID})
	again := f.newConversation(alice, dave)
	again.ID, again.Session.Conversation = nc.ID, nc.ID
	wantErr(t, "create with a taken id", s.CreateConversation(ctx, again), store.ErrConflict)
	f.sameSnapshot("a create with a taken id", before, accts, []protocol.ConversationID{nc.ID})

	cases := []struct {
		name   string
		target error
		edit   func(*store.NewConversation)
	}{
		{"unknown member", store.ErrNotFound, func(nc *store.NewConversation) {
			nc.Members = append(nc.Members, store.MemberRow{User: protocol.NewUserID(), Role: protocol.RoleMember})
		}},
		{"creator not a member device", store.ErrNotMember, func(nc *store.NewConversation) { nc.Session.Creator = dave.Devs[0] }},
		{"empty initiator ephemeral key", store.ErrInvalid, func(nc *store.NewConversation) { nc.Session.Keys[0].InitiatorEphemeral = nil }},
		{"empty ciphertext", store.ErrInvalid, func(nc *store.NewConversation) { nc.Session.Keys[1].Ciphertext = []byte{} }},
		{"genesis seq 1", store.ErrInvalid, func(nc *store.NewConversation) { nc.Genesis.Seq = 1 }},
		{"first epoch 2", store.ErrInvalid, func(nc *store.NewConversation) { nc.Session.Epoch = 2 }},
		{"member twice", store.ErrInvalid, func(nc *store.NewConversation) { nc.Members = append(nc.Members, nc.Members[1]) }},
	}
	for _, tc := range cases {
		bad := f.newConversation(alice, bob)
		tc.edit(&bad)
		ids := []protocol.ConversationID{nc.ID, bad.ID}
		before := f.snapshot(accts, ids)
		wantErr(t, tc.name, s.CreateConversation(ctx, bad), tc.target)
		f.sameSnapshot(tc.name, before, accts, ids)
	}
}

// testCoverage: the first session must hold a key for exactly the active,
// bundled devices of the members, checked inside the transaction.
func testCoverage(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob, dave := f.user(2, true), f.user(2, true), f.user(1, true)
	accts := []*acct{alice, bob, dave}

	check := func(name string, nc store.NewConversation, missing, extra []protocol.DeviceID) {
		t.Helper()
		before := f.snapshot(accts, []protocol.ConversationID{nc.ID})
		err := s.CreateConversation(ctx, nc)
		var ce *store.CoverageError
		if !errors.As(err, &ce) || !errors.Is(err, store.ErrCoverage) {
			t.Fatalf("%s: got %v, want a *CoverageError", name, err)
		}
		if !slices.Equal(sortedDevs(ce.Missing), sortedDevs(missing)) || !slices.Equal(sortedDevs(ce.Extra), sortedDevs(extra)) {
			t.Fatalf("%s: Missing=%v Extra=%v, want Missing=%v Extra=%v", name, ce.Missing, ce.Extra, missing, extra)
		}
		f.sameSnapshot(name, before, accts, []protocol.ConversationID{nc.ID})
	}

	nc := f.newConversation(alice, bob)
	nc.Session.Keys = slices.DeleteFunc(nc.Session.Keys, func(k store.SessionKey) bool { return k.Device == bob.Devs[1] })
	check("missing key", nc, []protocol.DeviceID{bob.Devs[1]}, nil)

	nc = f.newConversation(alice, bob)
	nc.Session.Keys = append(nc.Session.Keys, f.keysFor(dave)...)
	check("extra key", nc, nil, []protocol.DeviceID{dave.Devs[0]})

	nc = f.newConversation(alice, bob)
	nc.Session.Keys = slices.DeleteFunc(nc.Session.Keys, func(k store.SessionKey) bool { return k.Device == alice.Devs[1] })
	nc.Session.Keys = append(nc.Session.Keys, f.keysFor(dave)...)
	check("missing and extra", nc, []protocol.DeviceID{alice.Devs[1]}, []protocol.DeviceID{dave.Devs[0]})

	nc = f.newConversation(alice, bob)
	nc.Session.Keys = append(nc.Session.Keys, nc.Session.Keys[0])
	check("two keys for one device", nc, nil, []protocol.DeviceID{nc.Session.Keys[0].Device})

	// A device that uploads its first bundle after the client listed the
	// devices must be covered: the check runs inside the transaction.
	nc = f.newConversation(alice, bob)
	late := f.device(bob, true)
	check("device bundled after the keys were made", nc, []protocol.DeviceID{late}, nil)
}

// faults drives a store's fault hook.
type faults struct {
	mu     sync.Mutex
	record bool
	steps  []string
	failAt string
}

var errInjected = errors.New("injected fault")

func (c *faults) hook(step string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.record {
		c.steps = append(c.steps, step)
	}
	if step == c.failAt {
		return errInjected
	}
	return nil
}

// recordSteps runs fn (which must succeed) and returns the steps the hook
// saw. Fewer than three means the hook is not wired through the write.
func (c *faults) recordSteps(t *testing.T, fn func() error) []string {
	t.Helper()
	c.mu.Lock()
	c.record, c.steps, c.failAt = true, nil, ""
	c.mu.Unlock()
	err := fn()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record = false
	if err != nil {
		t.Fatalf("write with a hook that fails nothing: %v", err)
	}
	if len(c.steps) < 3 {
		t.Fatalf("the fault hook saw steps %q: the write must call it between its steps", c.steps)
	}
	return slices.Clone(c.steps)
}

func (c *faults) failAfter(step string) {
	c.mu.Lock()
	c.failAt = step
	c.mu.Unlock()
}

// testCreateConversationFaults: a conversation is created whole or not at
// all: a failure injected after any step leaves nothing visible — no
// conversation, members, records, sessions or events (defect 2).
func testCreateConversationFaults(t *testing.T, open Opener) {
	fc := &faults{}
	f := newFixture(t, open(t, fc.hook))
	s, ctx := f.s, f.ctx
	alice, bob, carol := f.user(2, true), f.user(1, true), f.user(1, false)
	accts := []*acct{alice, bob, carol}
	steps := fc.recordSteps(t, func() error { return s.CreateConversation(ctx, f.newConversation(alice, bob)) })

	nc := f.newConversation(alice, bob, carol)
	ids := []protocol.ConversationID{nc.ID}
	before := f.snapshot(accts, ids)
	since := f.lastEvent()
	for _, step := range steps {
		fc.failAfter(step)
		err := s.CreateConversation(ctx, nc)
		wantErr(t, "create failing after "+step, err, errInjected)
		f.sameSnapshot("a create failing after "+step, before, accts, ids)
		for _, a := range accts {
			for i := range a.Devs {
				if evs := f.sync(a, i, since); len(evs) != 0 {
					t.Fatalf("a create failing after %s left events: %+v", step, evs)
				}
			}
		}
	}
	fc.failAfter("")
	if err := s.CreateConversation(ctx, nc); err != nil {
		t.Fatalf("the same create without a fault: %v", err)
	}
	if c := f.conv(nc.ID); c.Epoch != 1 {
		t.Fatalf("conversation after the faults: %+v", c)
	}
}

// testAddSessionFaults: a rotation is stored whole or not at all.
func testAddSessionFaults(t *testing.T, open Opener) {
	fc := &faults{}
	f := newFixture(t, open(t, fc.hook))
	s, ctx := f.s, f.ctx
	alice, bob := f.user(2, true), f.user(1, true)
	accts := []*acct{alice, bob}
	warm := f.conversation(alice, bob)
	steps := fc.recordSteps(t, func() error { return s.AddSession(ctx, f.nextSession(warm, alice, alice, bob)) })

	conv := f.conversation(alice, bob)
	f.change(conv, alice, bob) // rotation required
	ids := []protocol.ConversationID{conv}
	ns := f.nextSession(conv, bob, alice, bob)
	before := f.snapshot(accts, ids)
	since := f.lastEvent()
	for _, step := range steps {
		fc.failAfter(step)
		wantErr(t, "add session failing after "+step, s.AddSession(ctx, ns), errInjected)
		f.sameSnapshot("an add session failing after "+step, before, accts, ids)
		if evs := f.sync(bob, 0, since); len(evs) != 0 {
			t.Fatalf("an add session failing after %s left events: %+v", step, evs)
		}
	}
	fc.failAfter("")
	if err := s.AddSession(ctx, ns); err != nil {
		t.Fatalf("the same session without a fault: %v", err)
	}
	if c := f.conv(conv); c.Epoch != 2 || c.RotationRequired {
		t.Fatalf("conversation after the rotation: %+v", c)
	}
}

// testPutBundleFaults: a bundle, the identity it sets, a reset's
// revocations and the events are stored whole or not at all.
func testPutBundleFaults(t *testing.T, open Opener) {
	fc := &faults{}
	f := newFixture(t, open(t, fc.hook))
	s, ctx := f.s, f.ctx
	warm := f.user(1, false)
	steps := fc.recordSteps(t, func() error { return s.PutBundle(ctx, f.bundleUpload(warm, warm.Devs[0], warm.Key, 3)) })

	alice, bob, carol := f.user(1, true), f.user(1, true), f.user(1, false)
	conv := f.conversation(alice, bob)
	d2 := f.device(alice, false)
	accts := []*acct{alice, bob, carol}
	ids := []protocol.ConversationID{conv}
	newKey := newIdentity()
	uploads := []struct {
		name string
		b    store.BundleUpload
	}{
		{"first bundle of an account", f.bundleUpload(carol, carol.Devs[0], carol.Key, 5)},
		{"first bundle of a second device", f.bundleUpload(alice, d2, alice.Key, 5)},
		{"identity reset", func() store.BundleUpload {
			b := f.bundleUpload(alice, d2, newKey, 5)
			b.Reset = true
			return b
		}()},
	}
	for _, up := range uploads {
		before := f.snapshot(accts, ids)
		since := f.lastEvent()
		for _, step := range steps {
			fc.failAfter(step)
			wantErr(t, up.name+" failing after "+step, s.PutBundle(ctx, up.b), errInjected)
			f.sameSnapshot(up.name+" failing after "+step, before, accts, ids)
			if evs := f.sync(bob, 0, since); len(evs) != 0 {
				t.Fatalf("%s failing after %s left events: %+v", up.name, step, evs)
			}
		}
		fc.failAfter("")
		if err := s.PutBundle(ctx, up.b); err != nil {
			t.Fatalf("%s without a fault: %v", up.name, err)
		}
		if f.snapshot(accts, ids) == before {
			t.Fatalf("%s without a fault changed nothing", up.name)
		}
	}
}

// testRotation: the next epoch, its checks and its effects.
func testRotation(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob, dave := f.user(2, true), f.user(1, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	since := f.lastEvent()

	ns := f.nextSession(conv, bob, alice, bob)
	if err := s.AddSession(ctx, ns); err != nil {
		t.Fatalf("add session: %v", err)
	}
	c := f.conv(conv)
	if c.Epoch != 2 || c.EpochStartedAt != ns.Now || c.MessagesInEpoch != 0 || c.RotationRequired {
		t.Fatalf("after rotation: %+v", c)
	}
	for _, k := range ns.Session.Keys {
		sk, err := s.SessionKeys(ctx, conv, k.Device, 2)
		if err != nil || !bytes.Equal(sk.Keys[0].Ciphertext, k.Ciphertext) || sk.Creator != bob.Devs[0] {
			t.Fatalf("epoch 2 key of %s: %+v, %v", k.Device, sk, err)
		}
	}
	evs := f.sync(bob, 0, since)
	if len(evs) != 1 || evs[0].Kind != store.EventSession || evs[0].Epoch != 2 || *evs[0].Conversation != conv {
		t.Fatalf("bob's events after the rotation: %+v, want his one session event", evs)
	}

	for _, epoch := range []uint64{2, 1, 4} {
		bad := f.nextSession(conv, alice, alice, bob)
		bad.Session.Epoch = epoch
		err := s.AddSession(ctx, bad)
		var ee *store.EpochError
		if !errors.Is(err, store.ErrEpochTaken) || !errors.As(err, &ee) || ee.Current != 2 {
			t.Fatalf("session for epoch %d at epoch 2: %v, want ErrEpochTaken with Current 2", epoch, err)
		}
	}
	bad := f.nextSession(conv, dave, alice, bob)
	wantErr(t, "session made by a non-member", s.AddSession(ctx, bad), store.ErrNotMember)
	bad = f.nextSession(conv, alice, alice, bob, dave)
	var ce *store.CoverageError
	if err := s.AddSession(ctx, bad); !errors.As(err, &ce) || len(ce.Extra) != 1 || ce.Extra[0] != dave.Devs[0] {
		t.Fatalf("session with a key for a non-member: %v", err)
	}
	bad = f.nextSession(conv, alice, alice, bob)
	bad.Session.Conversation = protocol.NewConversationID()
	wantErr(t, "session of an unknown conversation", s.AddSession(ctx, bad), store.ErrNotFound)
	bad = f.nextSession(conv, alice, alice, bob)
	bad.Session.Keys[0].InitiatorEphemeral = nil
	wantErr(t, "session key without initiator ephemeral key", s.AddSession(ctx, bad), store.ErrInvalid)
	if c := f.conv(conv); c.Epoch != 2 {
		t.Fatalf("refused sessions moved the epoch to %d", c.Epoch)
	}

	// A device added without a bundle is not covered; its first bundle
	// marks the conversation rotation-required and tells the members.
	d3 := f.device(alice, false)
	f.rotate(conv, alice, alice, bob) // epoch 3 without d3: fine
	since = f.lastEvent()
	f.bundle(alice, d3, 5)
	c = f.conv(conv)
	if !c.RotationRequired || c.RotationReason != "device" {
		t.Fatalf("a member's new device did not mark rotation: %+v", c)
	}
	k := kinds(f.sync(bob, 0, since))
	if k[store.EventDevice] != 1 || k[store.EventRotation] != 1 {
		t.Fatalf("bob's events after alice's new device: %v, want one device and one rotation_required", k)
	}
	if k := kinds(f.sync(dave, 0, since)); k[store.EventDevice] != 0 {
		t.Fatalf("dave, no contact of alice, got %v", k)
	}
	bad = f.nextSession(conv, alice, alice, bob)
	bad.Session.Keys = slices.DeleteFunc(bad.Session.Keys, func(k store.SessionKey) bool { return k.Device == d3 })
	if err := s.AddSession(ctx, bad); !errors.As(err, &ce) || len(ce.Missing) != 1 || ce.Missing[0] != d3 {
		t.Fatalf("session without the new device: %v", err)
	}
	f.rotate(conv, alice, alice, bob)
	if c := f.conv(conv); c.Epoch != 4 || c.RotationRequired || c.RotationReason != "" {
		t.Fatalf("after covering the new device: %+v", c)
	}
}

// testEpochRace: two members rotate to the same epoch at once; exactly one
// wins, the other learns the winner's epoch.
func testEpochRace(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob := f.user(1, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	for round := 0; round < 10; round++ {
		cur := f.conv(conv).Epoch
		nss := []store.NewSession{f.nextSession(conv, alice, alice, bob), f.nextSession(conv, bob, alice, bob)}
		errs := atOnce(2, func(i int) error { return s.AddSession(ctx, nss[i]) })
		win := -1
		for i, err := range errs {
			if err == nil {
				if win >= 0 {
					t.Fatalf("round %d: both sessions for epoch %d accepted", round, cur+1)
				}
				win = i
				continue
			}
			var ee *store.EpochError
			if !errors.Is(err, store.ErrEpochTaken) || !errors.As(err, &ee) || ee.Current != cur+1 {
				t.Fatalf("round %d: loser got %v, want ErrEpochTaken with Current %d", round, err, cur+1)
			}
		}
		if win < 0 {
			t.Fatalf("round %d: both refused: %v", round, errs)
		}
		sk, err := s.SessionKeys(ctx, conv, bob.Devs[0], cur+1)
		if err != nil || !bytes.Equal(sk.Encoded, nss[win].Session.Encoded) {
			t.Fatalf("round %d: stored session is not the winner's (%v)", round, err)
		}
		if c := f.conv(conv); c.Epoch != cur+1 {
			t.Fatalf("round %d: epoch %d, want %d", round, c.Epoch, cur+1)
		}
	}
}

// testMembership: membership records, their checks and events.
func testMembership(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob, carol := f.user(1, true), f.user(2, true), f.user(1, true)
	conv := f.conversation(alice, bob)
	accts := []*acct{alice, bob, carol}
	ids := []protocol.ConversationID{conv}

	mc := func(prev, seq uint64, members ...*acct) store.MembershipChange {
		m := store.MembershipChange{Conversation: conv, PrevSeq: prev, Record: store.RecordRow{Seq: seq, Encoded: random(64)}, Head: [32]byte(random(32)), Now: f.tick()}
		for i, a := range members {
			role := protocol.RoleMember
			if i == 0 {
				role = protocol.RoleAdmin
			}
			m.Members = append(m.Members, store.MemberRow{User: a.ID, Role: role})
		}
		return m
	}
	before := f.snapshot(accts, ids)
	wantErr(t, "record after a stale seq", s.ChangeMembership(ctx, mc(1, 2, alice, bob, carol)), store.ErrStaleChain)
	wantErr(t, "record with a gap", s.ChangeMembership(ctx, mc(0, 2, alice, bob, carol)), store.ErrInvalid)
	ghost := &acct{ID: protocol.NewUserID(), Name: "ghost"}
	wantErr(t, "adding an unknown user", s.ChangeMembership(ctx, mc(0, 1, alice, bob, ghost)), store.ErrNotFound)
	unknown := mc(0, 1, alice)
	unknown.Conversation = protocol.NewConversationID()
	wantErr(t, "record of an unknown conversation", s.ChangeMembership(ctx, unknown), store.ErrNotFound)
	f.sameSnapshot("refused membership changes", before, accts, ids)

	since := f.lastEvent()
	add := mc(0, 1, alice, bob, carol)
	if err := s.ChangeMembership(ctx, add); err != nil {
		t.Fatalf("add carol: %v", err)
	}
	c := f.conv(conv)
	if c.ChainSeq != 1 || c.ChainHead != add.Head || !c.RotationRequired || c.RotationReason != "membership" {
		t.Fatalf("after adding carol: %+v", c)
	}
	ms, _ := s.Members(ctx, conv)
	if len(ms) != 3 || !slices.Contains(ms, store.MemberRow{User: carol.ID, Role: protocol.RoleMember}) {
		t.Fatalf("members after adding carol: %+v", ms)
	}
	if rs, _ := s.Records(ctx, conv, 1); len(rs) != 1 || rs[0].Seq != 1 || !bytes.Equal(rs[0].Encoded, add.Record.Encoded) {
		t.Fatalf("records from 1: %+v", rs)
	}
	for _, a := range []*acct{alice, carol} {
		evs := f.sync(a, 0, since)
		if len(evs) != 2 || evs[0].Kind != store.EventMembership || evs[0].Seq != 1 || evs[1].Kind != store.EventRotation || evs[1].Reason != "membership" || evs[1].Epoch != 1 {
			t.Fatalf("%s's events after carol joined: %+v, want membership then rotation_required", a.Name, evs)
		}
	}
	// Carol joined at seq 1: she does not see the conversation's earlier
	// events (its genesis membership event).
	if k := kinds(f.sync(carol, 0, 0)); k[store.EventMembership] != 1 {
		t.Fatalf("carol sees %d membership events, want only the one she joined at", k[store.EventMembership])
	}

	// A session naming the old chain head is refused.
	ns := f.nextSession(conv, alice, alice, bob, carol)
	ns.Session.ChainSeq = 0
	wantErr(t, "session for a stale chain", s.AddSession(ctx, ns), store.ErrStaleChain)
	f.rotate(conv, alice, alice, bob, carol)

	// A role change.
	role := mc(1, 2, alice, bob, carol)
	role.Members[1].Role = protocol.RoleAdmin
	if err := s.ChangeMembership(ctx, role); err != nil {
		t.Fatalf("role change: %v", err)
	}
	ms, _ = s.Members(ctx, conv)
	if !slices.Contains(ms, store.MemberRow{User: bob.ID, Role: protocol.RoleAdmin}) {
		t.Fatalf("members after the role change: %+v", ms)
	}

	// Removing bob: each of his devices learns it.
	since = f.lastEvent()
	if err := s.ChangeMembership(ctx, mc(2, 3, alice, carol)); err != nil {
		t.Fatalf("remove bob: %v", err)
	}
	for i := range bob.Devs {
		evs := f.sync(bob, i, since)
		rm := ofKind(evs, store.EventRemoved)
		if len(rm) != 1 || *rm[0].Conversation != conv {
			t.Fatalf("bob's device %d events after removal: %+v, want one removed", i, evs)
		}
		if n := kinds(evs)[store.EventRotation]; n != 0 {
			t.Fatalf("bob, removed, sees the rotation_required that follows his removal")
		}
	}
	if n := kinds(f.sync(alice, 0, since))[store.EventRemoved]; n != 0 {
		t.Fatalf("alice got %d removed events for bob's removal", n)
	}
	if cs, _ := s.Conversations(ctx, bob.ID); len(cs) != 0 {
		t.Fatalf("bob still lists the conversation")
	}
	ms, _ = s.Members(ctx, conv)
	if len(ms) != 2 {
		t.Fatalf("members after removing bob: %+v", ms)
	}
}

package server_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

func wantCode(t *testing.T, err error, status int, code string) *apiError {
	t.Helper()
	var a *apiError
	if !errors.As(err, &a) {
		t.Fatalf("got %v, want %d %s", err, status, code)
	}
	if a.Status != status || a.Code != code {
		t.Fatalf("got %d %s (%s), want %d %s", a.Status, a.Code, a.Detail, status, code)
	}
	return a
}

type userAnswer struct {
	ID          protocol.UserID       `json:"id"`
	Username    string                `json:"username"`
	IdentityKey *protocol.IdentityKey `json:"identityKey"`
	Devices     []struct {
		ID protocol.DeviceID `json:"id"`
	} `json:"devices"`
}

// Defect 1: the account's public key is written with the bundle, served
// after every upload, and never silently replaced.
func TestIdentityKeyWithBundle(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		var u userAnswer
		bob.must("GET", "/api/users/"+alice.user.String(), nil, &u)
		if u.IdentityKey == nil || *u.IdentityKey != alice.id.Public() || len(u.Devices) != 1 {
			t.Fatalf("after first upload: %+v", u)
		}
		// Re-upload with the same identity: fine, key unchanged.
		if err := alice.uploadBundle(false); err != nil {
			t.Fatal(err)
		}
		bob.must("GET", "/api/users?username=alice", nil, &u)
		if *u.IdentityKey != alice.id.Public() {
			t.Fatal("identity changed by a re-upload")
		}
		// A bundle with another identity is refused and changes nothing.
		old := alice.id
		alice.id = secret.NewIdentity()
		wantCode(t, alice.uploadBundle(false), 409, server.CodeIdentityMismatch)
		bob.must("GET", "/api/users/"+alice.user.String(), nil, &u)
		if *u.IdentityKey != old.Public() {
			t.Fatal("refused upload changed the identity key")
		}
		// A second device that uploads without linking is refused too.
		alice2 := e.login("alice", nil)
		alice2.id = secret.NewIdentity()
		wantCode(t, alice2.uploadBundle(false), 409, server.CodeIdentityMismatch)

		// Alice and bob share a conversation; an explicit reset from alice2
		// revokes alice's first device and tells bob.
		alice.id = old
		if _, err := alice.create([]*device{bob}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := bob.syncAll(); err != nil {
			t.Fatal(err)
		}
		if err := alice2.uploadBundle(true); err != nil {
			t.Fatal(err)
		}
		bob.must("GET", "/api/users/"+alice.user.String(), nil, &u)
		if *u.IdentityKey != alice2.id.Public() || len(u.Devices) != 1 || u.Devices[0].ID != alice2.dev {
			t.Fatalf("after reset: %+v", u)
		}
		wantCode(t, alice.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		_, kinds, err := bob.syncAll()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(kinds, "identity_changed") {
			t.Fatalf("bob's events after alice's reset: %v", kinds)
		}
	})
}

// Concurrent uploads of two different identities leave one consistent
// state: exactly one identity wins and it is the one served.
func TestConcurrentFirstUploads(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		first := e.register("carol")
		viewer := e.register("dave")
		var devs []*device
		for range 4 {
			d := e.login("carol", nil)
			d.id = secret.NewIdentity()
			devs = append(devs, d)
		}
		_ = first
		var wg sync.WaitGroup
		errs := make([]error, len(devs))
		for i, d := range devs {
			wg.Go(func() { errs[i] = d.uploadBundle(false) })
		}
		wg.Wait()
		for i, err := range errs {
			wantCode(t, err, 409, server.CodeIdentityMismatch) // carol's first device already set it
			_ = i
		}
		var u userAnswer
		viewer.must("GET", "/api/users/"+first.user.String(), nil, &u)
		if *u.IdentityKey != first.id.Public() || len(u.Devices) != 1 {
			t.Fatalf("state after concurrent uploads: %+v", u)
		}
	})
}

// Defect 2: a conversation is created whole or not at all.
func TestCreateConversationAllOrNothing(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		bob2 := e.login("bob", bob.id)
		_, err := alice.create([]*device{bob}, bob2.dev)
		a := wantCode(t, err, 409, server.CodeSessionCoverage)
		if len(a.Missing) != 1 || a.Missing[0] != bob2.dev.String() {
			t.Fatalf("missing = %v, want [%s]", a.Missing, bob2.dev)
		}
		var list struct {
			Conversations []struct{ ID protocol.ConversationID } `json:"conversations"`
		}
		for _, d := range []*device{alice, bob} {
			d.must("GET", "/api/conversations", nil, &list)
			if len(list.Conversations) != 0 {
				t.Fatalf("%s sees a half-created conversation", d.name)
			}
		}
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		bob2.must("GET", "/api/conversations", nil, &list)
		if len(list.Conversations) != 1 || list.Conversations[0].ID != conv {
			t.Fatalf("bob2 lists %+v", list)
		}
		for _, d := range []*device{alice, bob, bob2} {
			if _, err := d.epoch(conv, 1); err != nil {
				t.Fatalf("%s cannot open epoch 1: %v", d.name, err)
			}
		}
	})
}

// Defect 3: every epoch is made by a member client, covers exactly the
// member devices, and sends on a stale epoch are refused until it exists.
func TestRotation(t *testing.T) {
	forEachDB(t, server.Config{RotateAfterMessages: 5}, func(t *testing.T, e *env) {
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.send(conv, 1, "before carol"); err != nil {
			t.Fatal(err)
		}
		if err := alice.change(conv, protocol.OpAdd, []protocol.Member{carol.member(protocol.RoleMember)}, nil); err != nil {
			t.Fatal(err)
		}
		_, err = alice.send(conv, 1, "stale")
		a := wantCode(t, err, 409, server.CodeRotationRequired)
		if a.CurrentEpoch == nil || *a.CurrentEpoch != 1 {
			t.Fatalf("currentEpoch = %v", a.CurrentEpoch)
		}
		// A session that leaves out carol is refused with the missing device.
		a = wantCode(t, bob.rotate(conv, 2, carol.dev), 409, server.CodeSessionCoverage)
		if !slices.Equal(a.Missing, []string{carol.dev.String()}) {
			t.Fatalf("missing = %v", a.Missing)
		}
		// Two members rotate at once: exactly one wins.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, d := range []*device{alice, bob} {
			wg.Go(func() { errs[i] = d.rotate(conv, 2) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
				continue
			}
			a := wantCode(t, err, 409, server.CodeEpochTaken)
			if a.CurrentEpoch == nil || *a.CurrentEpoch < 1 {
				t.Fatalf("loser told current epoch %v", a.CurrentEpoch)
			}
		}
		if won != 1 {
			t.Fatalf("%d rotations won", won)
		}
		if _, err := bob.send(conv, 2, "hello carol"); err != nil {
			t.Fatal(err)
		}
		got, _, err := carol.syncAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].text != "hello carol" {
			t.Fatalf("carol got %+v", got)
		}
		// carol has no key for epoch 1 (before she joined).
		wantCode(t, carol.do("GET", fmt.Sprintf("/api/conversations/%s/sessions/1/initial-session", conv), nil, nil), 404, server.CodeNotFound)
		// Policy: after 5 messages in epoch 2 the next send needs epoch 3.
		for i := range 4 {
			if _, err := alice.send(conv, 2, fmt.Sprint("m", i)); err != nil {
				t.Fatal(err)
			}
		}
		_, err = alice.send(conv, 2, "sixth")
		wantCode(t, err, 409, server.CodeRotationRequired)
		if err := carol.rotate(conv, 3); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.send(conv, 3, "sixth"); err != nil {
			t.Fatal(err)
		}
		got, _, err = bob.syncAll()
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, r := range got {
			texts = append(texts, r.text)
		}
		if want := []string{"before carol", "m0", "m1", "m2", "m3", "sixth"}; !slices.Equal(texts, want) {
			t.Fatalf("bob read %q, want %q", texts, want)
		}
	})
}

// Removal: a removed member's devices get no key for the next epoch and
// read nothing sent after.
func TestRemovedMemberReadsNothingAfter(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		conv, err := alice.create([]*device{bob, carol})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.send(conv, 1, "all three"); err != nil {
			t.Fatal(err)
		}
		if err := alice.change(conv, protocol.OpRemove, nil, []protocol.UserID{carol.user}); err != nil {
			t.Fatal(err)
		}
		if err := alice.rotate(conv, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.send(conv, 2, "without carol"); err != nil {
			t.Fatal(err)
		}
		got, kinds, err := carol.syncAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].text != "all three" || !slices.Contains(kinds, "removed") {
			t.Fatalf("carol got %+v, events %v", got, kinds)
		}
		wantCode(t, carol.do("GET", "/api/conversations/"+conv.String()+"/messages", nil, nil), 404, server.CodeNotFound)
		wantCode(t, carol.do("GET", fmt.Sprintf("/api/conversations/%s/sessions/2/initial-session", conv), nil, nil), 404, server.CodeNotFound)
		got, _, err = bob.syncAll()
		if err != nil || len(got) != 1 || got[0].text != "all three" {
			t.Fatalf("bob: %+v %v", got, err)
		}
	})
}

// Sends are idempotent by client id, with gap-free sequence numbers.
func TestIdempotentSend(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		ep, err := alice.epoch(conv, 1)
		if err != nil {
			t.Fatal(err)
		}
		env1, _ := ep.Encrypt(alice.id, []byte("once"))
		env2, _ := ep.Encrypt(alice.id, []byte("other"))
		path := "/api/conversations/" + conv.String() + "/messages"
		var first, again sendAnswer
		alice.must("POST", path, map[string]string{"clientId": "client-0001", "envelope": b64(env1.Marshal())}, &first)
		alice.must("POST", path, map[string]string{"clientId": "client-0001", "envelope": b64(env1.Marshal())}, &again)
		if first.Seq != 1 || again.Seq != 1 || !again.Duplicate || first.Duplicate {
			t.Fatalf("first %+v, retry %+v", first, again)
		}
		wantCode(t, alice.do("POST", path, map[string]string{"clientId": "client-0001", "envelope": b64(env2.Marshal())}, nil), 409, server.CodeIdempotency)
		// A retry whose signature is forged is refused, even of the very
		// envelope stored (the signature is verified while the store
		// writes: it must not answer with the stored message first).
		forgedRetry := *env1
		forgedRetry.Signature = bob.id.Sign(env1.SignedData())
		wantCode(t, alice.do("POST", path, map[string]string{"clientId": "client-0001", "envelope": b64(forgedRetry.Marshal())}, nil), 400, server.CodeBadSignature)
		alice.must("POST", path, map[string]string{"clientId": "client-0002", "envelope": b64(env2.Marshal())}, &again)
		if again.Seq != 2 {
			t.Fatalf("second message seq %d", again.Seq)
		}
		got, _, err := bob.syncAll()
		if err != nil || len(got) != 2 || got[0].text != "once" || got[1].text != "other" {
			t.Fatalf("bob got %+v %v", got, err)
		}
		// A forged envelope (bob's signature on alice's device) is refused.
		benv, _ := ep.Encrypt(alice.id, []byte("forged"))
		benv.Signature = bob.id.Sign(benv.SignedData())
		wantCode(t, alice.do("POST", path, map[string]string{"clientId": "client-0003", "envelope": b64(benv.Marshal())}, nil), 400, server.CodeBadSignature)
		// Nothing of it was stored: the next message takes seq 3.
		alice.must("POST", path, map[string]string{"clientId": "client-0005", "envelope": b64(env2.Marshal())}, &again)
		if again.Seq != 3 {
			t.Fatalf("after a forged envelope: seq %d, want 3", again.Seq)
		}
		// Too large.
		big := make([]byte, protocol.MaxEnvelopeSize+1)
		wantCode(t, alice.do("POST", path, map[string]string{"clientId": "client-0004", "envelope": b64(big)}, nil), 413, server.CodeTooLarge)
	})
}

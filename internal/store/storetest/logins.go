package storetest

import (
	"errors"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// testLogins: every signed-in device is listed with the use of its
// tokens, a new login is announced to the account's other devices, token
// uses are recorded and passwords replaced.
func testLogins(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx

	alice := f.user(2, true)
	other := f.user(1, true)
	before := f.lastEvent()
	start := f.now
	keyless := f.device(alice, false)

	// The two earlier devices are told of the new one, and only they.
	for i := range 2 {
		evs := ofKind(f.sync(alice, i, before), store.EventSessionAdded)
		if len(evs) != 1 || evs[0].User == nil || *evs[0].User != alice.ID || evs[0].Reason != keyless.String() || evs[0].CreatedAt != start+1 {
			t.Fatalf("device %d got session_added events %+v, want one naming %s", i, evs, keyless)
		}
	}
	if evs := ofKind(f.sync(alice, 2, before), store.EventSessionAdded); len(evs) != 0 {
		t.Fatalf("the new device is told of itself: %+v", evs)
	}
	if evs := ofKind(f.sync(other, 0, before), store.EventSessionAdded); len(evs) != 0 {
		t.Fatalf("another account is told of the login: %+v", evs)
	}

	ls, err := s.Logins(ctx, alice.ID)
	if err != nil || len(ls) != 3 {
		t.Fatalf("Logins = %+v, %v; want 3", ls, err)
	}
	for i, l := range ls {
		if l.Device.ID != alice.Devs[i] || l.Tokens != 1 || l.LastUsed == 0 || l.LastUsed != l.Device.CreatedAt {
			t.Fatalf("login %d = %+v; want device %s with one token last used at its creation", i, l, alice.Devs[i])
		}
		if keys := l.Device.SignedPreKey != nil; keys != (i < 2) {
			t.Fatalf("login %d has keys %v", i, keys)
		}
	}
	_, err = s.Logins(ctx, protocol.NewUserID())
	wantErr(t, "Logins(unknown)", err, store.ErrNotFound)

	// A recorded use is what DeviceByToken and Logins report.
	d, err := s.DeviceByToken(ctx, alice.Toks[2])
	if err != nil || d.TokenUsedAt != ls[2].LastUsed {
		t.Fatalf("DeviceByToken = %+v, %v; want last use %d", d, err, ls[2].LastUsed)
	}
	at := f.tick() + 3_600_000
	if err := s.TouchToken(ctx, alice.Toks[2], at); err != nil {
		t.Fatal(err)
	}
	if d, err := s.DeviceByToken(ctx, alice.Toks[2]); err != nil || d.TokenUsedAt != at {
		t.Fatalf("after TouchToken, DeviceByToken = %+v, %v; want last use %d", d, err, at)
	}
	if ls, err := s.Logins(ctx, alice.ID); err != nil || ls[2].LastUsed != at || ls[0].LastUsed == at {
		t.Fatalf("after TouchToken, Logins = %+v, %v", ls, err)
	}
	wantErr(t, "TouchToken(unknown)", s.TouchToken(ctx, random(32), at), store.ErrNotFound)

	// A device whose token is deleted stays listed, with no token.
	if err := s.DeleteToken(ctx, alice.Toks[2]); err != nil {
		t.Fatal(err)
	}
	if ls, err := s.Logins(ctx, alice.ID); err != nil || len(ls) != 3 || ls[2].Tokens != 0 || ls[2].LastUsed != 0 {
		t.Fatalf("after DeleteToken, Logins = %+v, %v", ls, err)
	}
	// A revoked one is not.
	if err := s.RevokeDevice(ctx, alice.ID, keyless, f.tick()); err != nil {
		t.Fatal(err)
	}
	if ls, err := s.Logins(ctx, alice.ID); err != nil || len(ls) != 2 {
		t.Fatalf("after RevokeDevice, Logins = %+v, %v", ls, err)
	}

	if err := s.SetPassword(ctx, alice.ID, "$argon2id$new"); err != nil {
		t.Fatal(err)
	}
	if u, err := s.User(ctx, alice.ID); err != nil || u.PasswordHash != "$argon2id$new" {
		t.Fatalf("after SetPassword, User = %+v, %v", u, err)
	}
	if u, err := s.User(ctx, other.ID); err != nil || u.PasswordHash == "$argon2id$new" {
		t.Fatalf("SetPassword changed another account: %+v, %v", u, err)
	}
	if err := s.SetPassword(ctx, protocol.NewUserID(), "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetPassword(unknown) = %v, want ErrNotFound", err)
	}
}

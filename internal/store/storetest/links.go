package storetest

import (
	"bytes"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// testLinks: device link requests (store.Links).
func testLinks(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob := f.user(1, true), f.user(1, true)
	newDev := f.device(alice, false)
	other := f.device(alice, false)

	req := store.LinkRequest{Device: newDev, User: alice.ID, PublicKey: random(40), Tag: random(32), CreatedAt: 100, ExpiresAt: 1100}
	if err := s.PutLinkRequest(ctx, req); err != nil {
		t.Fatalf("put link request: %v", err)
	}
	req.PublicKey, req.Tag, req.CreatedAt, req.ExpiresAt = random(40), random(32), 200, 1200 // a new request replaces the pending one
	if err := s.PutLinkRequest(ctx, req); err != nil {
		t.Fatalf("replace link request: %v", err)
	}
	if err := s.PutLinkRequest(ctx, store.LinkRequest{Device: other, User: alice.ID, PublicKey: random(40), Tag: random(32), CreatedAt: 300, ExpiresAt: 1300}); err != nil {
		t.Fatalf("second device's link request: %v", err)
	}
	for _, bad := range []store.LinkRequest{
		{Device: alice.Devs[0], User: alice.ID, PublicKey: random(40), Tag: random(32), ExpiresAt: 1000}, // has a bundle
		{Device: protocol.NewDeviceID(), User: alice.ID, PublicKey: random(40), Tag: random(32)},         // unknown
		{Device: newDev, User: bob.ID, PublicKey: random(40), Tag: random(32)},                           // another account's device
	} {
		wantErr(t, "link request of an ineligible device", s.PutLinkRequest(ctx, bad), store.ErrNotFound)
	}

	rs, err := s.LinkRequests(ctx, alice.ID, 0)
	if err != nil || len(rs) != 2 || rs[0].Device != other || rs[1].Device != newDev || !bytes.Equal(rs[1].PublicKey, req.PublicKey) ||
		!bytes.Equal(rs[1].Tag, req.Tag) || rs[1].CreatedAt != 200 || rs[1].ExpiresAt != 1200 || rs[1].Name == "" {
		t.Fatalf("pending requests = %+v, %v; want both, newest first, the replaced key and tag", rs, err)
	}
	// A request is listed while now < ExpiresAt.
	if rs, _ := s.LinkRequests(ctx, alice.ID, 1199); len(rs) != 2 {
		t.Fatalf("pending requests at 1199 = %+v", rs)
	}
	if rs, _ := s.LinkRequests(ctx, alice.ID, 1200); len(rs) != 1 || rs[0].Device != other {
		t.Fatalf("pending requests at 1200 = %+v, want only the one expiring at 1300", rs)
	}
	if rs, _ := s.LinkRequests(ctx, alice.ID, 1300); len(rs) != 0 {
		t.Fatalf("pending requests at 1300 = %+v, want none", rs)
	}
	if rs, _ := s.LinkRequests(ctx, bob.ID, 0); len(rs) != 0 {
		t.Fatalf("bob sees alice's requests: %+v", rs)
	}

	sealed := random(64)
	wantErr(t, "approve by another account", s.ApproveLink(ctx, bob.ID, newDev, sealed, 500), store.ErrNotFound)
	// An expired request is refused, and stays unapproved.
	wantErr(t, "approve at the expiry", s.ApproveLink(ctx, alice.ID, newDev, sealed, 1200), store.ErrLinkExpired)
	wantErr(t, "approve after the expiry", s.ApproveLink(ctx, alice.ID, newDev, sealed, 5000), store.ErrLinkExpired)
	if r, err := s.LinkRequest(ctx, newDev); err != nil || r.Sealed != nil || r.ExpiresAt != 1200 {
		t.Fatalf("expired request after refused approvals = %+v, %v", r, err)
	}
	if err := s.ApproveLink(ctx, alice.ID, newDev, sealed, 1199); err != nil {
		t.Fatalf("approve: %v", err)
	}
	wantErr(t, "approve twice", s.ApproveLink(ctx, alice.ID, newDev, sealed, 500), store.ErrNotFound)
	r, err := s.LinkRequest(ctx, newDev)
	if err != nil || r.User != alice.ID || !bytes.Equal(r.Sealed, sealed) || !bytes.Equal(r.PublicKey, req.PublicKey) || !bytes.Equal(r.Tag, req.Tag) || r.ExpiresAt != 1200 {
		t.Fatalf("approved request = %+v, %v", r, err)
	}
	if rs, _ := s.LinkRequests(ctx, alice.ID, 0); len(rs) != 1 || rs[0].Device != other {
		t.Fatalf("pending requests after approval = %+v", rs)
	}
	_, err = s.LinkRequest(ctx, protocol.NewDeviceID())
	wantErr(t, "request of an unknown device", err, store.ErrNotFound)
	wantErr(t, "approve an unknown device", s.ApproveLink(ctx, alice.ID, protocol.NewDeviceID(), sealed, 0), store.ErrNotFound)
}

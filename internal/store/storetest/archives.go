package storetest

import (
	"slices"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// testArchives: an account keeps at most the newest keep archives of a
// kind (the others are returned to be deleted), another account's archive
// cannot be deleted, a taken id is a conflict.
func testArchives(t *testing.T, open Opener) {
	f := newFixture(t, open(t, nil))
	s, ctx := f.s, f.ctx
	alice, bob := f.user(1, true), f.user(1, true)
	put := func(a *acct, kind string, keep int) (store.Archive, []string) {
		t.Helper()
		ar := store.Archive{ID: blobID(), User: a.ID, Kind: kind, Size: 100, CreatedAt: f.tick()}
		dropped, err := s.PutArchive(ctx, ar, keep)
		if err != nil {
			t.Fatalf("put %s: %v", kind, err)
		}
		return ar, dropped
	}
	b1, d := put(alice, store.ArchiveBackup, 1)
	if len(d) != 0 {
		t.Fatalf("first backup dropped %v", d)
	}
	tr1, _ := put(alice, store.ArchiveTransfer, 2)
	b2, d := put(alice, store.ArchiveBackup, 1)
	if !slices.Equal(d, []string{b1.ID}) {
		t.Fatalf("second backup dropped %v, want the first %s", d, b1.ID)
	}
	if _, err := s.Archive(ctx, b1.ID); err == nil {
		t.Fatal("a replaced backup is still listed")
	}
	tr2, _ := put(alice, store.ArchiveTransfer, 2)
	_, d = put(alice, store.ArchiveTransfer, 2)
	if !slices.Equal(d, []string{tr1.ID}) {
		t.Fatalf("third transfer dropped %v, want the oldest %s", d, tr1.ID)
	}
	put(bob, store.ArchiveBackup, 1)
	got, err := s.AccountArchives(ctx, alice.ID)
	if err != nil || len(got) != 3 || got[0].ID != b2.ID || got[1].ID != tr2.ID || got[0].User != alice.ID || got[0].Size != 100 || got[0].Kind != store.ArchiveBackup {
		t.Fatalf("alice's archives = %+v, %v", got, err)
	}
	dup := b2
	dup.User = bob.ID
	_, err = s.PutArchive(ctx, dup, 1)
	wantErr(t, "a taken id", err, store.ErrConflict)
	_, err = s.PutArchive(ctx, store.Archive{ID: blobID(), User: protocol.NewUserID(), Kind: store.ArchiveBackup, Size: 1}, 1)
	wantErr(t, "an unknown account", err, store.ErrNotFound)
	wantErr(t, "bob deletes alice's backup", s.DeleteArchive(ctx, b2.ID, bob.ID), store.ErrNotFound)
	if err := s.DeleteArchive(ctx, b2.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Archive(ctx, b2.ID)
	wantErr(t, "a deleted archive", err, store.ErrNotFound)
	wantErr(t, "deleted twice", s.DeleteArchive(ctx, b2.ID, alice.ID), store.ErrNotFound)
}

package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// TestStoredWeakIdentity: an identity key stored before keys of small order
// were refused (here the identity point, written by a database edit) is
// served as no key at all: the account loads (and so do the conversations
// and lookups that name it), and an identity reset sets a valid key.
func TestStoredWeakIdentity(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sandi.db")
	s := openTestStore(t, path, nil)
	u := store.User{ID: protocol.NewUserID(), Username: "mallory", PasswordHash: "x", CreatedAt: 1}
	d := store.Device{ID: protocol.NewDeviceID(), User: u.ID, Name: "d", CreatedAt: 1}
	if err := s.CreateUser(ctx, u, d, []byte("token hash of mallory")); err != nil {
		t.Fatal(err)
	}
	good := testIdentity()
	if err := s.PutBundle(ctx, store.BundleUpload{User: u.ID, Device: d.ID, Identity: good, SignedPreKey: []byte("spk"), LastResort: []byte("lr"), Now: 2}); err != nil {
		t.Fatal(err)
	}
	weak := append([]byte{1}, make([]byte, 31)...)
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE users SET identity_key = ? WHERE id = ?`, weak, u.ID[:]); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = openTestStore(t, path, nil)
	got, err := s.UserByName(ctx, "mallory")
	if err != nil {
		t.Fatalf("an account with a stored small-order key does not load: %v", err)
	}
	if got.Identity != nil {
		t.Fatalf("the small-order key is served: %s", got.Identity)
	}
	next := testIdentity()
	if err := s.PutBundle(ctx, store.BundleUpload{User: u.ID, Device: d.ID, Identity: next, SignedPreKey: []byte("spk"), LastResort: []byte("lr"), Reset: true, Now: 3}); err != nil {
		t.Fatalf("bundle after the weak key: %v", err)
	}
	if got, err = s.User(ctx, u.ID); err != nil || got.Identity == nil || !got.Identity.Equal(next) {
		t.Fatalf("after the bundle: %v, %v", got.Identity, err)
	}
}

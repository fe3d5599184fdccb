package sqlstore

import (
	"context"
	"path/filepath"
	"testing"

	"sandi.dev/internal/testpg"
)

// TestBlobsOfDeletedMessages: a referenced blob none of whose messages
// remain (a message deleted from under it) is collected; one whose
// message remains is not. No API deletes messages yet: the test deletes
// the row.
func TestBlobsOfDeletedMessages(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			url := filepath.Join(t.TempDir(), "sandi.db")
			if db == "postgres" {
				url = testpg.URL(t)
			}
			s := openTestStore(t, url, nil)
			fill(t, s)
			ctx := context.Background()
			var id string
			if err := s.w.QueryRowContext(ctx, `SELECT blob_id FROM blob_refs`).Scan(&id); err != nil {
				t.Fatal(err)
			}
			if n, err := s.ExpireBlobs(ctx, 0, 100); err != nil || n != 0 {
				t.Fatalf("expire while the message remains: %d, %v", n, err)
			}
			if _, err := s.w.ExecContext(ctx, s.d.rebind(`DELETE FROM messages WHERE client_id = ?`), "b4"); err != nil {
				t.Fatal(err)
			}
			if n, err := s.ExpireBlobs(ctx, 0, 100); err != nil || n != 1 {
				t.Fatalf("expire after the message was deleted: %d, %v; want 1", n, err)
			}
			dead, err := s.DeletedBlobs(ctx, 100)
			if err != nil || len(dead) != 1 || dead[0].ID != id {
				t.Fatalf("tombstones = %+v, %v; want %s", dead, err, id)
			}
			if err := s.PurgeBlob(ctx, id); err != nil {
				t.Fatal(err)
			}
			var refs int
			s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM blob_refs`).Scan(&refs)
			if refs != 0 {
				t.Fatalf("%d references left after the purge", refs)
			}
		})
	}
}

package fsblob

import (
	"testing"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/blob/blobtest"
)

// TestConformance runs the blob.Store suite on the file system.
func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

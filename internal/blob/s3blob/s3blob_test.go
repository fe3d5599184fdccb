package s3blob_test

import (
	"testing"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/blob/blobtest"
	"sandi.dev/internal/blob/s3blob"
	"sandi.dev/internal/tests3"
)

func TestMain(m *testing.M) { tests3.Main(m) }

// open returns a Store on a fresh bucket of the test S3 server.
func open(t *testing.T) *s3blob.Store {
	s, err := s3blob.Open(t.Context(), tests3.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance runs the blob.Store suite on a real S3-compatible server.
func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return open(t) })
}

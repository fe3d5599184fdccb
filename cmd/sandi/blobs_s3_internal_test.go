package main

import (
	"errors"
	"strings"
	"testing"

	"sandi.dev/internal/blob/s3blob"
	"sandi.dev/internal/tests3"
)

// TestOpenS3Blobs: --blobs takes an s3:// URL to a store; a bad URL is a
// usage error that does not show the secret, a directory is left to the
// file-system store.
func TestOpenS3Blobs(t *testing.T) {
	for _, spec := range []string{"", "sandi-data/blobs", "/var/lib/sandi/blobs"} {
		if st, ok, err := openS3Blobs(t.Context(), spec); ok || st != nil || err != nil {
			t.Errorf("openS3Blobs(%q) = %v, %v, %v; want it left to the directory store", spec, st, ok, err)
		}
	}
	for _, spec := range []string{"S3://AK:Zqsecret@h/b12", "http://h/b12", "s3://AK:Zqsecret@h/B12", "s3://AK:Zqsecret@h:0/b12", "s3://AK:Zqsecret@h/b12?tls=no"} {
		_, ok, err := openS3Blobs(t.Context(), spec)
		var u usageError
		if !ok || !errors.As(err, &u) || strings.Contains(err.Error(), "Zqsecret") {
			t.Errorf("openS3Blobs(%q) = %v, %v; want a usage error without the secret", spec, ok, err)
		}
	}
	url := tests3.URL(t)
	if st, ok, err := openS3Blobs(t.Context(), url); !ok || err != nil || st == nil {
		t.Fatalf("openS3Blobs(test server) = %v, %v, %v", st, ok, err)
	}
	c, err := s3blob.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c.Bucket = "sandi-missing"
	if _, ok, err := openS3Blobs(t.Context(), c.URL()); !ok || err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("openS3Blobs(missing bucket) = %v, %v; want an error saying the bucket does not exist", ok, err)
	}
}

package tests3

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { Main(m) }

// TestURL checks that two calls give two distinct, empty, writable
// buckets.
func TestURL(t *testing.T) {
	a, b := URL(t), URL(t)
	if a == b {
		t.Fatalf("two calls gave the same bucket %s", a)
	}
	for _, u := range []string{a, b} {
		cl, c := Client(t, u)
		n := 0
		for obj := range cl.ListObjects(t.Context(), c.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if obj.Err != nil {
				t.Fatal(obj.Err)
			}
			n++
		}
		if n != 0 {
			t.Fatalf("a new bucket holds %d objects", n)
		}
		if _, err := cl.PutObject(t.Context(), c.Bucket, "x", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
}

// TestMissingBinary checks the failure names the command that installs
// the server.
func TestMissingBinary(t *testing.T) {
	t.Setenv(EnvBin, filepath.Join(t.TempDir(), "versitygw"))
	_, err := Bin()
	if err == nil || !strings.Contains(err.Error(), "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0") {
		t.Fatalf("Bin with a missing binary = %v, want an error naming the go install command", err)
	}
	t.Setenv(EnvBin, "")
	t.Setenv("PATH", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	if _, err := Bin(); err == nil || !strings.Contains(err.Error(), Install) {
		t.Fatalf("Bin with no binary anywhere = %v, want an error naming %s", err, Install)
	}
}

package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"sandi.dev/client"
	"sandi.dev/internal/tests3"
	"sandi.dev/protocol/attach"
)

// TestServeS3Blobs: `sandi serve` with SANDI_BLOBS naming a bucket of a
// real S3 server (credentials from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY) keeps attachments there: a file of two parts sent
// by one client is downloaded byte-identical by another, and the bucket
// then holds exactly one object, under the blob's id, which is the
// ciphertext (its SHA-256 is the digest the message carries, its size the
// encrypted size, and no line of the plaintext is in it), and no
// unfinished upload. The data directory holds no blob; the log names the
// store without its secret.
func TestServeS3Blobs(t *testing.T) {
	url := tests3.URL(t)
	s3c, cfg := tests3.Client(t, url)
	bare := cfg
	bare.AccessKey, bare.SecretKey = "", ""
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	base := "http://" + addr
	p := startSandi(t, childEnv("SANDI_BLOBS="+bare.URL(), "AWS_ACCESS_KEY_ID="+cfg.AccessKey, "AWS_SECRET_ACCESS_KEY="+cfg.SecretKey),
		"serve", "--addr", addr, "--data", dir)
	waitHealthy(t, p, base)
	if log := p.stderr.String(); strings.Contains(log, cfg.SecretKey) || !strings.Contains(log, cfg.Bucket) {
		t.Fatalf("the start-up log should name the bucket %s and not the secret key:\n%s", cfg.Bucket, log)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	user := func(name string) *client.Client {
		c, err := client.Open(client.Options{Server: base, Storage: client.NewMemStorage()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Register(ctx, name, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob := user("alice"), user("bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	for i := 0; plain.Len() < 9<<20; i++ {
		fmt.Fprintf(&plain, "sandi attachment plaintext, line %d\n", i)
	}
	att, err := alice.UploadAttachment(ctx, conv, bytes.NewReader(plain.Bytes()), int64(plain.Len()), client.AttachmentMeta{Name: "notes.txt", Type: "text/plain"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendMessage(ctx, conv, "the notes", []client.Attachment{att}); err != nil {
		t.Fatal(err)
	}
	res, err := bob.Sync(ctx)
	if err != nil || len(res.Messages) != 1 || len(res.Messages[0].Attachments) != 1 {
		t.Fatalf("bob's sync: %v, %+v", err, res.Messages)
	}
	var got bytes.Buffer
	if err := bob.DownloadAttachment(ctx, conv, res.Messages[0].Attachments[0], &got, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), plain.Bytes()) {
		t.Fatalf("bob downloaded %d bytes, not the %d alice sent", got.Len(), plain.Len())
	}

	var keys []string
	for obj := range s3c.ListObjects(ctx, cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	if len(keys) != 1 || keys[0] != att.Blob {
		t.Fatalf("the bucket holds %v, want the one blob %s", keys, att.Blob)
	}
	obj, err := s3c.GetObject(ctx, cfg.Bucket, att.Blob, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(stored); !bytes.Equal(sum[:], att.Digest) || int64(len(stored)) != attach.EncryptedSize(int64(plain.Len())) {
		t.Fatalf("the object is %d bytes of SHA-256 %x; want the ciphertext, %d bytes of %x", len(stored), sum[:8], attach.EncryptedSize(int64(plain.Len())), att.Digest[:8])
	}
	if bytes.Contains(stored, []byte("attachment plaintext")) {
		t.Fatal("the object holds plaintext")
	}
	for up := range s3c.ListIncompleteUploads(ctx, cfg.Bucket, "", true) {
		t.Errorf("an unfinished upload is left in the bucket: %+v", up)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "blobs")); err == nil && len(ents) > 0 {
		t.Fatalf("the data directory has blobs too: %v", ents)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM; stderr:\n%s", code, p.stderr)
	}
}

// TestServeS3BlobsErrors: a --blobs URL that does not parse stops the
// server with exit status 2, one whose bucket is missing with 1; neither
// shows the secret key.
func TestServeS3BlobsErrors(t *testing.T) {
	_, cfg := tests3.Client(t, tests3.URL(t))
	missing := cfg
	missing.Bucket = "sandi-no-such-bucket"
	for _, c := range []struct {
		blobs string
		code  int
		want  string
	}{
		{strings.Replace(cfg.URL(), "tls=false", "tls=maybe", 1), 2, `--blobs: tls="maybe": true or false`},
		{strings.Replace(cfg.URL(), "s3://", "http://", 1), 2, "--blobs: a directory or an s3:// URL"},
		{missing.URL(), 1, `bucket "sandi-no-such-bucket" does not exist`},
	} {
		p := startSandi(t, childEnv(), "serve", "--addr", freeAddr(t), "--data", t.TempDir(), "--blobs", c.blobs)
		if code := p.wait(t, 20*time.Second); code != c.code {
			t.Fatalf("--blobs %s: exit status %d, want %d; stderr:\n%s", c.blobs, code, c.code, p.stderr)
		}
		if log := p.stderr.String(); !strings.Contains(log, c.want) || strings.Contains(log, cfg.SecretKey) {
			t.Fatalf("--blobs %s: stderr should say %q and not show the secret key:\n%s", c.blobs, c.want, log)
		}
	}
}

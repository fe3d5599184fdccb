//go:build !js

package client_test

import (
	"bytes"
	"context"
	"testing"

	"sandi.dev/client"
)

// TestUploadSealed: a file encrypted by a Sealer (what a browser's worker
// runs) uploads and downloads to the same bytes; a sealer that hands back
// parts that do not fit the upload (a broken or hostile worker) is refused
// and completes nothing.
func TestUploadSealed(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	ctx := context.Background()
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	conv := pair(t, n, alice, bob)
	file := randomFile(9<<20+7, 3) // two parts of the server's 8 MiB
	seal := func(ctx context.Context, key []byte, partSize int64, buf []byte, emit func(part, fingerprint []byte) ([]byte, error)) ([]byte, error) {
		return client.SealFile(ctx, bytes.NewReader(file), int64(len(file)), key, partSize, buf, emit)
	}
	att, err := alice.UploadSealed(ctx, conv, int64(len(file)), client.AttachmentMeta{Name: "sealed.bin"}, seal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendMessage(ctx, conv, "", []client.Attachment{att}); err != nil {
		t.Fatal(err)
	}
	got := received(t, bob)
	var out bytes.Buffer
	if len(got) != 1 || bob.DownloadAttachment(ctx, conv, got[0], &out, nil) != nil || !bytes.Equal(out.Bytes(), file) {
		t.Fatalf("bob got %d attachments, %d bytes", len(got), out.Len())
	}

	// A byte moved from the first part to the last keeps the total right.
	var moved byte
	for name, bad := range map[string]func(part, fp []byte) ([]byte, []byte){
		"a short part first": func(part, fp []byte) ([]byte, []byte) { return part[:len(part)-1], fp },
		"an empty part":      func(part, fp []byte) ([]byte, []byte) { return part[:0], fp },
		"a longer last part": func(part, fp []byte) ([]byte, []byte) {
			if len(part) < 8<<20 {
				return append(part, 0), fp
			}
			return part, fp
		},
		"a byte moved to the last part": func(part, fp []byte) ([]byte, []byte) {
			if len(part) < 8<<20 {
				return append(part, moved), fp
			}
			moved = part[len(part)-1]
			return part[:len(part)-1], fp
		},
		"a short fingerprint": func(part, fp []byte) ([]byte, []byte) { return part, fp[:16] },
	} {
		t.Run(name, func(t *testing.T) {
			seal := func(ctx context.Context, key []byte, partSize int64, buf []byte, emit func(part, fingerprint []byte) ([]byte, error)) ([]byte, error) {
				return client.SealFile(ctx, bytes.NewReader(file), int64(len(file)), key, partSize, buf, func(part, fp []byte) ([]byte, error) {
					return emit(bad(part, fp))
				})
			}
			if _, err := alice.UploadSealed(ctx, conv, int64(len(file)), client.AttachmentMeta{Name: name}, seal, nil); err == nil {
				t.Fatal("the upload completed")
			}
		})
	}
}

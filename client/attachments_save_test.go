//go:build !js

package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sandi.dev/client"
	"sandi.dev/protocol"
	"sandi.dev/protocol/attach"
)

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestSaveNothingReleasedBeforeDigest: SaveAttachment decrypts as the
// ciphertext arrives, but the plaintext appears at its path only after
// the whole ciphertext's digest matched. A blob every chunk of which
// decrypts but whose digest is not the message's (a sender's message
// that names another ciphertext under the same key, as the server could
// serve), a last range with a byte flipped, and a blob cut short are each
// refused with a blob_digest alarm, and leave nothing in the directory:
// no file at the path, no hidden file. While the blob is served, the path
// does not exist, even for an honest blob.
func TestSaveNothingReleasedBeforeDigest(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	p := newBlobProxy(t, n)
	alice := register(t, n, "alice")
	bob := clientVia(t, &proxy{srv: p.srv})
	if err := bob.Register(ctx, "bob", "password of bob"); err != nil {
		t.Fatal(err)
	}
	conv := pair(t, n, alice, bob)
	file := randomFile(40*attach.ChunkSize+333, 11)
	a := upload(t, alice, conv, "f.bin", "", file)
	if _, err := alice.SendMessage(ctx, conv, "", []client.Attachment{a}); err != nil {
		t.Fatal(err)
	}
	att := received(t, bob)[0]
	otherDigest := att
	otherDigest.Digest = bytes.Clone(att.Digest)
	otherDigest.Digest[0] ^= 1

	dir := t.TempDir()
	path := filepath.Join(dir, "f.bin")
	served := 0
	observe := func(full []byte) []byte {
		served++
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the path exists while the blob is served: %v", err)
		}
		return full
	}
	alarms := 0
	for _, c := range []struct {
		name string
		att  client.Attachment
		f    func(full []byte) []byte
	}{
		{"every chunk decrypts, the digest differs", otherDigest, func(b []byte) []byte { return b }},
		{"the last chunk altered", att, func(b []byte) []byte { b[len(b)-3] ^= 1; return b }},
		{"cut short", att, func(b []byte) []byte { return b[:len(b)-attach.ChunkSize] }},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.set(func(_ string, full []byte) []byte { return c.f(observe(full)) })
			defer p.set(nil)
			err := bob.SaveAttachment(ctx, conv, c.att, path, false, nil)
			wantMisbehaved(t, err)
			if names := dirNames(t, dir); len(names) != 0 {
				t.Fatalf("left in the directory: %q", names)
			}
			al, aerr := bob.Alarms(conv)
			if aerr != nil || len(al) != alarms+1 || al[alarms].Kind != client.AlarmBlobDigest {
				t.Fatalf("alarms: %v %+v", aerr, al)
			}
			alarms++
		})
	}
	p.set(func(_ string, full []byte) []byte { return observe(full) })
	if err := bob.SaveAttachment(ctx, conv, att, path, false, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, file) {
		t.Fatalf("saved %d bytes (%v), want the file", len(got), err)
	}
	if names := dirNames(t, dir); len(names) != 1 || served != 4 {
		t.Fatalf("the directory holds %q after %d answers", names, served)
	}
	p.set(nil)
	// Saved again without replace: refused, the file unchanged.
	if err := bob.SaveAttachment(ctx, conv, att, path, false, nil); !errors.Is(err, os.ErrExist) {
		t.Fatalf("saved over a file: %v", err)
	}
	if err := bob.SaveAttachment(ctx, conv, att, path, true, nil); err != nil || len(dirNames(t, dir)) != 1 {
		t.Fatalf("replace: %v", err)
	}
}

// TestSaveResume: a save interrupted part-way keeps its hidden file and
// continues, when called again, from the last whole chunk it recorded,
// with one ranged GET for the rest. A second process that changes the
// hidden file or the record in between never makes it write a wrong
// file: a byte changed in the hidden file, the file truncated, the
// record's hash state or chunk count changed, or a record torn, and the
// save starts over from the first byte; the hidden file and the record
// rewritten together to match another plaintext (which takes the file
// key) pass the check, and the digest refuses the result.
func TestSaveResume(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	alice := register(t, n, "alice")
	dl := &failing{}
	state := t.TempDir()
	bob := registerWith(t, n, "bob", dl, state)
	conv := pair(t, n, alice, bob)
	file := randomFile(3<<20+777, 12)
	a := upload(t, alice, conv, "f.bin", "", file)
	if _, err := alice.SendMessage(ctx, conv, "", []client.Attachment{a}); err != nil {
		t.Fatal(err)
	}
	att := received(t, bob)[0]
	dir := t.TempDir()
	path := filepath.Join(dir, "f.bin")
	hidden := filepath.Join(dir, ".sandi-save-"+att.Blob)
	total := attach.EncryptedSize(att.Size)
	const chunk = attach.ChunkSize + attach.Overhead

	// interrupt saves until about 1 MiB has arrived, then cancels.
	interrupt := func(t *testing.T) {
		t.Helper()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		err := bob.SaveAttachment(ctx, conv, att, path, false, func(done, _ int64) {
			if done >= 1<<20 {
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) || !errors.Is(err, client.ErrSaveInterrupted) {
			t.Fatalf("an interrupted save: %v", err)
		}
		if names := dirNames(t, dir); len(names) != 1 || names[0] != filepath.Base(hidden) {
			t.Fatalf("after an interruption the directory holds %q", names)
		}
	}
	// saveFrom saves and checks the file, and that the one GET asked for
	// the rest of the blob from a chunk boundary; it returns where.
	saveFrom := func(t *testing.T) int64 {
		t.Helper()
		dl.requests("")
		if err := bob.SaveAttachment(ctx, conv, att, path, true, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, file) {
			t.Fatalf("saved %d bytes (%v), want the file", len(got), err)
		}
		if names := dirNames(t, dir); len(names) != 1 {
			t.Fatalf("after the save the directory holds %q", names)
		}
		os.Remove(path)
		if recs, _ := filepath.Glob(filepath.Join(state, "saves", "*")); len(recs) != 0 {
			t.Fatalf("records left: %q", recs)
		}
		gets := dl.requests("GET /api/blobs/")
		var from, to int64
		if len(gets) != 1 {
			t.Fatalf("GETs %q", gets)
		}
		if _, err := fmt.Sscanf(gets[0][strings.LastIndex(gets[0], "=")+1:], "%d-%d", &from, &to); err != nil || to != total-1 ||
			from != 0 && (from-attach.HeaderSize)%chunk != 0 {
			t.Fatalf("the save asked for %q", gets[0])
		}
		return from
	}
	// record returns the path of the one record and its fields.
	record := func(t *testing.T) (string, map[string]any) {
		t.Helper()
		recs, _ := filepath.Glob(filepath.Join(state, "saves", "*"))
		if len(recs) != 1 {
			t.Fatalf("records %q", recs)
		}
		b, err := os.ReadFile(recs[0])
		var m map[string]any
		if err == nil {
			err = json.Unmarshal(b, &m)
		}
		if err != nil {
			t.Fatal(err)
		}
		return recs[0], m
	}
	writeRecord := func(t *testing.T, p string, m map[string]any) {
		t.Helper()
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	interrupt(t)
	if fi, err := os.Stat(hidden); err != nil || fi.Size() < attach.ChunkSize {
		t.Fatalf("the hidden file after an interruption: %v", err)
	}
	if from := saveFrom(t); from < 1<<20-chunk {
		t.Fatalf("the resumed save started at byte %d", from)
	}

	for _, c := range []struct {
		name   string
		tamper func(t *testing.T)
	}{
		{"a byte of the hidden file changed", func(t *testing.T) {
			f, err := os.OpenFile(hidden, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			f.ReadAt(b, 1000)
			b[0] ^= 1
			f.WriteAt(b, 1000)
		}},
		{"the hidden file truncated", func(t *testing.T) {
			if err := os.Truncate(hidden, attach.ChunkSize/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"the recorded state changed", func(t *testing.T) {
			p, m := record(t)
			s, err := base64.RawURLEncoding.DecodeString(m["state"].(string))
			if err != nil {
				t.Fatal(err)
			}
			s[len(s)/2] ^= 1
			m["state"] = base64.RawURLEncoding.EncodeToString(s)
			writeRecord(t, p, m)
		}},
		{"the recorded chunk count changed", func(t *testing.T) {
			p, m := record(t)
			m["chunks"] = m["chunks"].(float64) - 1
			writeRecord(t, p, m)
		}},
		{"the record torn", func(t *testing.T) {
			p, _ := record(t)
			if err := os.WriteFile(p, []byte(`{"blob":`), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			interrupt(t)
			c.tamper(t)
			if from := saveFrom(t); from != 0 {
				t.Fatalf("resumed from byte %d", from)
			}
		})
	}

	// The hidden file and the record rewritten to match another
	// plaintext: the save goes on from there, and the digest refuses it.
	interrupt(t)
	p, m := record(t)
	k := int64(m["chunks"].(float64))
	forged := make([]byte, k*attach.ChunkSize)
	if err := os.WriteFile(hidden, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	w, err := attach.NewWriter(h, att.Key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(forged)
	st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m["state"] = base64.RawURLEncoding.EncodeToString(st)
	writeRecord(t, p, m)
	dl.requests("")
	err = bob.SaveAttachment(ctx, conv, att, path+".2", false, nil)
	wantMisbehaved(t, err)
	if gets := dl.requests("GET /api/blobs/"); len(gets) != 1 || !strings.HasSuffix(gets[0], fmt.Sprintf("bytes=%d-%d", attach.HeaderSize+k*chunk, total-1)) {
		t.Fatalf("the forged record was not resumed from: %q", gets)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("after a refused save the directory holds %q", names)
	}
	if from := saveFrom(t); from != 0 {
		t.Fatalf("after a refused save, saved from byte %d", from)
	}
}

// TestSaveSenderBroken: an attachment whose digest matches but that does
// not decrypt under the key its message gives is the sender's fault:
// ErrAttachmentCorrupt, no alarm, nothing left in the directory.
func TestSaveSenderBroken(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", blobConfig(t))
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	conv := pair(t, n, alice, bob)
	bad := upload(t, alice, conv, "bad.bin", "", randomFile(5*attach.ChunkSize, 13))
	bad.Key = bytes.Repeat([]byte{9}, 32)
	if _, err := alice.SendMessage(ctx, conv, "", []client.Attachment{bad}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	err := bob.SaveAttachment(ctx, conv, received(t, bob)[0], filepath.Join(dir, "bad.bin"), false, nil)
	if !errors.Is(err, client.ErrAttachmentCorrupt) || errors.Is(err, client.ErrServerMisbehaved) {
		t.Fatalf("a wrong key: %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("left in the directory: %q", names)
	}
	if al, _ := bob.Alarms(protocol.ConversationID(conv)); len(al) != 0 {
		t.Fatalf("a sender's wrong key raised an alarm: %+v", al)
	}
}

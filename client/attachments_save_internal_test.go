//go:build !js

package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandi.dev/protocol/attach"
)

// FuzzSaveChunks: the chunking and decryption of a save (saveFile), fed
// a ciphertext in writes of any sizes, agrees with attach.NewReader on
// every ciphertext of a length some file encrypts to: the same plaintext
// released before any failure, a failure exactly where the reader fails,
// and the SHA-256 of every byte, decrypted or not. Seeds are real
// ciphertexts (one, two and three chunks), which the engine mutates.
func FuzzSaveChunks(f *testing.F) {
	key := bytes.Repeat([]byte{5}, attach.KeySize)
	for _, n := range []int{0, 100, attach.ChunkSize, attach.ChunkSize + 7, 2*attach.ChunkSize + 1} {
		var buf bytes.Buffer
		w, err := attach.NewWriter(&buf, key)
		if err != nil {
			f.Fatal(err)
		}
		w.Write(bytes.Repeat([]byte{byte(n)}, n))
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes(), uint16(n), uint16(n/3+1), uint32(n))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, ct []byte, step1, step2 uint16, flip uint32) {
		if len(ct) > 0 && flip%3 == 0 {
			ct[int(flip/3)%len(ct)] ^= 1
		}
		size := attach.PlaintextSize(int64(len(ct)))
		if size < 0 {
			return
		}
		fl, err := os.Create(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		defer fl.Close()
		s, err := (&Client{now: time.Now}).newSaveFile("", fl, Attachment{Key: key, Size: size})
		if err != nil {
			t.Fatal(err)
		}
		steps := []int{int(step1) + 1, int(step2) + 1}
		for p, i := ct, 0; len(p) > 0; i++ {
			k := min(len(p), steps[i%2])
			if n, err := s.Write(p[:k]); err != nil || n != k {
				t.Fatalf("write: %d of %d, %v", n, k, err)
			}
			p = p[k:]
		}
		if err := s.w.close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(fl.Name())
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		r, rerr := attach.NewReader(bytes.NewReader(ct), key)
		if rerr == nil {
			want, rerr = io.ReadAll(r)
		}
		if sum := sha256.Sum256(ct); !bytes.Equal(s.h.Sum(nil), sum[:]) {
			t.Fatal("the digest is not the ciphertext's")
		}
		if (rerr == nil) != (s.broken == nil) || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes of ciphertext: reader %d bytes, %v; save %d bytes, %v", len(ct), len(want), rerr, len(got), s.broken)
		}
	})
}

// TestDropOldSaves: a save left unfinished for longer than spoolAge is
// forgotten, its hidden file removed, on the next save; a newer one is
// kept, and a record whose blob is not a blob id removes no file.
func TestDropOldSaves(t *testing.T) {
	now := time.Now()
	c := &Client{st: NewMemStorage(), now: func() time.Time { return now }}
	dir := t.TempDir()
	put := func(blob string, age time.Duration) string {
		rec, err := json.Marshal(saveRecord{Blob: blob, Dir: dir, Chunks: 1, State: []byte{1}, Created: now.Add(-age).UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.st.Put(saveKey(blob, dir), rec); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, saveHiddenPrefix+blob)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := put(strings.Repeat("a", 32), spoolAge+time.Hour)
	fresh := put(strings.Repeat("b", 32), spoolAge-time.Hour)
	foreign := put("NOT-A-BLOB", spoolAge+time.Hour)
	c.dropOldSaves()
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("an old save's hidden file: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a recent save's hidden file: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Fatalf("a record naming no blob removed a file: %v", err)
	}
	if keys, err := c.st.List("saves/"); err != nil || len(keys) != 1 || keys[0] != saveKey(strings.Repeat("b", 32), dir) {
		t.Fatalf("records left: %q %v", keys, err)
	}
}

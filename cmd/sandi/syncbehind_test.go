package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestSyncBehind: what goes through syncBehind reaches the file whole,
// and a sync that fails is reported by wait (here: a pipe, which cannot
// be synced).
func TestSyncBehind(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ws := newSyncBehind(f, 4<<10)
	want := bytes.Repeat([]byte("sandi "), 20000)
	for p := want; len(p) > 0; p = p[min(len(p), 1000):] {
		if _, err := ws.Write(p[:min(len(p), 1000)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.wait(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(f.Name()); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the file has %d bytes of %d (%v)", len(got), len(want), err)
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	go io.Copy(io.Discard, r)
	ws = newSyncBehind(w, 1)
	if _, err := ws.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := ws.wait(); err == nil {
		t.Fatal("a sync that failed was not reported")
	}
}

package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sandi.dev/protocol/attach"
)

// TestCLISaveResume: `sandi save` interrupted (SIGINT) while the blob
// arrives exits with a sentence saying that the same command continues,
// leaves no file at its destination, and the same command then fetches
// only the rest of the blob, from a chunk boundary, and saves the file
// byte for byte.
func TestCLISaveResume(t *testing.T) {
	addr, data := freeAddr(t), t.TempDir()
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", data, "--max-blob", "8MiB")
	waitHealthy(t, srv, base)

	// A proxy in front of the server that, while stall is set, serves the
	// first 2 MiB of a blob's answer and then holds the rest back until
	// the client goes away; it records the ranges asked for.
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	var (
		mu     sync.Mutex
		stall  bool
		ranges []string
	)
	reached := make(chan struct{}, 1)
	px := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st := stall
		if r.Header.Get("Range") != "" {
			ranges = append(ranges, r.Header.Get("Range"))
		}
		mu.Unlock()
		if !st || r.Method != "GET" || !strings.HasPrefix(r.URL.Path, "/api/blobs/") {
			rp.ServeHTTP(w, r)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), "GET", base+r.URL.Path, nil)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.CopyN(w, resp.Body, 2<<20)
		w.(http.Flusher).Flush()
		select {
		case reached <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	defer px.Close()

	// bob's device talks to the server through the proxy.
	homes := map[string]string{}
	servers := map[string]string{"alice": base, "bob": px.URL}
	for _, u := range []string{"alice", "bob"} {
		homes[u] = filepath.Join(t.TempDir(), u)
		cliOK(t, servers[u], homes[u], "password of "+u+"\n", "register", u, "--password-stdin")
	}
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(cliOK(t, base, homes["alice"], "", "--json", "new", "bob")), &created); err != nil {
		t.Fatal(err)
	}
	conv := created.ID
	file := make([]byte, 4<<20+123)
	rand.NewChaCha8([32]byte{2}).Read(file)
	src := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(src, file, 0o600); err != nil {
		t.Fatal(err)
	}
	cliOK(t, base, homes["alice"], "", "send", conv, "--file", src)
	var msg struct{ Attachments []struct{ ID string } }
	if err := json.Unmarshal([]byte(cliOK(t, px.URL, homes["bob"], "", "--json", "sync")), &msg); err != nil || len(msg.Attachments) != 1 {
		t.Fatalf("sync: %v %+v", err, msg)
	}
	id := msg.Attachments[0].ID

	dir := t.TempDir()
	dest := filepath.Join(dir, "big.bin")
	mu.Lock()
	stall = true
	mu.Unlock()
	save := exec.Command(sandiBinary(t), "--home", homes["bob"], "--server", px.URL, "save", conv, id, "--out", dest)
	save.Env = childEnv()
	var stderr bytes.Buffer
	save.Stderr = &stderr
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		save.Process.Kill()
		save.Wait()
		t.Fatalf("the save did not fetch the blob: %q %q", stderr.String(), ranges)
	}
	// Interrupted once some of the plaintext is in its hidden file.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		hidden, _ := filepath.Glob(filepath.Join(dir, ".sandi-save-*"))
		if len(hidden) == 1 {
			if fi, err := os.Stat(hidden[0]); err == nil && fi.Size() >= 1<<20 {
				break
			}
		}
		if time.Now().After(deadline) {
			save.Process.Kill()
			t.Fatalf("no plaintext in a hidden file: %v", hidden)
		}
	}
	save.Process.Signal(os.Interrupt)
	err = save.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "continues where it stopped") {
		t.Fatalf("an interrupted save: %v, %q", err, stderr.String())
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("an interrupted save left its destination: %v", err)
	}

	mu.Lock()
	stall, ranges = false, nil
	mu.Unlock()
	if _, errs, code := cliRun(t, px.URL, homes["bob"], "", "save", conv, id, "--out", dest); code != 0 {
		t.Fatalf("the save again: exit %d, %q", code, errs)
	}
	if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, file) {
		t.Fatalf("saved %d bytes (%v), want the file", len(got), err)
	}
	mu.Lock()
	defer mu.Unlock()
	var from, to int64
	if len(ranges) != 1 {
		t.Fatalf("the resumed save asked for %q", ranges)
	}
	if _, err := fmt.Sscanf(ranges[0], "bytes=%d-%d", &from, &to); err != nil || from < attach.HeaderSize+attach.ChunkSize+attach.Overhead ||
		(from-attach.HeaderSize)%(attach.ChunkSize+attach.Overhead) != 0 || to != attach.EncryptedSize(int64(len(file)))-1 {
		t.Fatalf("the resumed save asked for %q", ranges)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("left beside the file: %q", left)
	}
}

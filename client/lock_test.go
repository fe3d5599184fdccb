//go:build !js

package client_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// The tests below run the test binary again as a child process (a second
// sandi client), selected by these variables.
const (
	envChild  = "SANDI_LOCK_CHILD" // hold, send
	envDir    = "SANDI_LOCK_DIR"
	envServer = "SANDI_LOCK_SERVER"
	envConv   = "SANDI_LOCK_CONV"
	envCount  = "SANDI_LOCK_COUNT"
)

// TestLockChildProcess is the child's side; it does nothing in a normal run.
func TestLockChildProcess(t *testing.T) {
	mode := os.Getenv(envChild)
	if mode == "" {
		t.Skip("run by the two-process tests only")
	}
	dir := os.Getenv(envDir)
	switch mode {
	case "hold": // take the state and keep it until stdin closes
		st, err := client.NewDirStorage(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(3)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		if err := st.Close(); err != nil {
			os.Exit(4)
		}
	case "send": // open the state (waiting while another process holds it), send N messages
		var st *client.DirStorage
		deadline := time.Now().Add(time.Minute)
		for {
			var err error
			st, err = client.NewDirStorage(dir)
			if err == nil {
				break
			}
			if !errors.Is(err, client.ErrLocked) || time.Now().After(deadline) {
				fmt.Println("error:", err)
				os.Exit(3)
			}
			time.Sleep(20 * time.Millisecond)
		}
		c, err := client.Open(client.Options{Server: os.Getenv(envServer), Storage: st, HTTPClient: &http.Client{Timeout: 30 * time.Second}})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(3)
		}
		conv, err := protocol.ParseConversationID(os.Getenv(envConv))
		if err != nil {
			os.Exit(3)
		}
		n, _ := strconv.Atoi(os.Getenv(envCount))
		fmt.Println("sending")
		for i := range n {
			if _, err := c.Send(context.Background(), conv, fmt.Sprintf("message %d of pid %d", i, os.Getpid())); err != nil {
				fmt.Println("error:", err)
				os.Exit(3)
			}
		}
		if err := c.Close(); err != nil {
			os.Exit(4)
		}
	}
	os.Exit(0)
}

// child starts the test binary as a child client process.
func child(t *testing.T, mode string, env ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockChildProcess$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), envChild+"="+mode), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	return cmd, in, bufio.NewReader(out)
}

// TestStateLockTwoProcesses: while one process holds a state directory,
// another (here this one) is refused with an error that names the directory
// and the holder's pid; once the holder ends, the state opens again.
func TestStateLockTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	holder, in, out := child(t, "hold", envDir+"="+dir)
	line, err := out.ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	_, err = client.NewDirStorage(dir)
	var le *client.LockedError
	if !errors.As(err, &le) || !errors.Is(err, client.ErrLocked) {
		t.Fatalf("second process opened a held state: %v", err)
	}
	if le.PID != holder.Process.Pid || le.Dir != dir {
		t.Fatalf("locked error names pid %d dir %q, want %d %q", le.PID, le.Dir, holder.Process.Pid, dir)
	}
	msg := err.Error()
	if !strings.Contains(msg, dir) || !strings.Contains(msg, strconv.Itoa(holder.Process.Pid)) || !strings.Contains(msg, "close it first") {
		t.Fatalf("error %q does not tell what to do", msg)
	}
	in.Close()
	if err := holder.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	st, err := client.NewDirStorage(dir)
	if err != nil {
		t.Fatalf("state not released when its holder ended: %v", err)
	}
	// In one process too, the lock is held until Close.
	if _, err := client.NewDirStorage(dir); !errors.Is(err, client.ErrLocked) {
		t.Fatalf("a second open in the same process: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = client.NewDirStorage(dir)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	st.Close()
}

// TestNoCounterReuseAcrossProcesses: two client processes of one device
// (sandi chat and sandi send on one home directory) send at the same time.
// Each caches the device's sending chain while it runs, so without the lock
// both send the same counters: two ciphertexts under one key and nonce. With
// it the second waits for the first, and the server stores no two envelopes
// with the same (epoch, sender, counter); the reader decrypts them all.
func TestNoCounterReuseAcrossProcesses(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	ctx := context.Background()
	dir := t.TempDir()
	alice := newClient(t, n, dir)
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	bob := register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "first"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	const each = 15
	env := []string{envDir + "=" + dir, envServer + "=" + n.url(), envConv + "=" + conv.String(), envCount + "=" + strconv.Itoa(each)}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		cmd, _, out := child(t, "send", env...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rest, _ := io.ReadAll(out)
			if err := cmd.Wait(); err != nil {
				errs[i] = fmt.Errorf("sender %d: %v: %s", i, err, rest)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("sqlite", n.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT envelope FROM messages WHERE conversation_id = ?`, conv[:])
	if err != nil {
		t.Fatal(err)
	}
	type pos struct {
		epoch   uint64
		sender  protocol.DeviceRef
		counter uint32
	}
	seen := map[pos]bool{}
	total := 0
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		e, err := protocol.ParseEnvelope(b)
		if err != nil {
			t.Fatal(err)
		}
		p := pos{e.Epoch, e.Sender, e.Counter}
		if seen[p] {
			t.Fatalf("two envelopes with epoch %d, sender %v, counter %d: one key and nonce used twice", p.epoch, p.sender, p.counter)
		}
		seen[p] = true
		total++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if total != 1+2*each {
		t.Fatalf("server stored %d messages, want %d", total, 1+2*each)
	}
	if got := syncTexts(t, bob); len(got) != 1+2*each {
		t.Fatalf("bob read %d messages, want %d", len(got), 1+2*each)
	}
}

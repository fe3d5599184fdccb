// Package crash holds the crash test: `sandi serve` as a real process,
// killed with SIGKILL at random moments under a steady load of sends from
// several SDK clients and restarted, on SQLite and on PostgreSQL.
package crash

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/store"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/internal/testpg"
	"sandi.dev/internal/tests3"
	"sandi.dev/protocol"
)

func TestMain(m *testing.M) {
	os.Exit(testpg.Around(func() int { return tests3.Run(m) }))
}

// kills is how many times each run kills the server: 20 by default, more
// with SANDI_CRASH_KILLS (the long variant).
func kills(t *testing.T) int {
	if v := os.Getenv("SANDI_CRASH_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SANDI_CRASH_KILLS=%q: want a positive number", v)
		}
		return n
	}
	return 20
}

func buildSandi(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sandi")
	out, err := exec.Command("go", "build", "-o", bin, "sandi.dev/cmd/sandi").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// server is the sandi process under test, started again after each kill.
type server struct {
	t         *testing.T
	bin, addr string
	db, data  string
	blobs     string // --blobs, if not empty
	cmd       *exec.Cmd
	log       *os.File
}

func (s *server) start() {
	s.t.Helper()
	args := []string{"serve", "--addr", s.addr, "--data", s.data, "--log-level", "warn"}
	if s.db != "" {
		args = append(args, "--db", s.db)
	}
	if s.blobs != "" {
		args = append(args, "--blobs", s.blobs)
	}
	cmd := exec.Command(s.bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SANDI_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sandi not ready 30 s after a start: %v (log %s)", err, s.log.Name())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// launch starts s (bin, data, db and blobs set) on a free loopback port,
// its log in dir/server.log, and kills it at the end of the test if it is
// still running.
func launch(t *testing.T, dir string, s *server) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.t, s.addr = t, l.Addr().String()
	l.Close()
	if s.log, err = os.Create(filepath.Join(dir, "server.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.cmd != nil && s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
		s.log.Close()
	})
	s.start()
	return s
}

func (s *server) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	err := s.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		s.t.Fatalf("sandi: %v after SIGKILL", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		s.t.Fatalf("sandi ended with %v before the kill (log %s)", err, s.log.Name())
	}
}

// acked is what the server acknowledged: client message id → seq.
type acked struct {
	mu   sync.Mutex
	seqs map[string]uint64
}

func (a *acked) add(id string, seq uint64) {
	a.mu.Lock()
	a.seqs[id] = seq
	a.mu.Unlock()
}

func (a *acked) snapshot() map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]uint64, len(a.seqs))
	for k, v := range a.seqs {
		out[k] = v
	}
	return out
}

// checkStored reads the conversation from the database (a shared reader
// beside the running server) and checks that its seqs are 1…N without a
// gap, that no client id is stored twice, and that every acknowledged send
// is stored, once, under the seq it was acknowledged with.
func checkStored(t *testing.T, db string, conv protocol.ConversationID, want map[string]uint64) int {
	t.Helper()
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, db, sqlstore.Options{Shared: true, MaxConns: 1})
	if err != nil {
		t.Fatalf("open the database beside the server: %v", err)
	}
	defer s.Close()
	var all []store.Message
	for {
		page, err := s.Messages(ctx, conv, uint64(len(all)), 500)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 500 {
			break
		}
	}
	byID := map[string]uint64{}
	for i, m := range all {
		if m.Seq != uint64(i+1) {
			t.Fatalf("stored message %d has seq %d: a gap or a repeat", i+1, m.Seq)
		}
		if _, dup := byID[m.ClientID]; dup {
			t.Fatalf("client id %s stored twice", m.ClientID)
		}
		byID[m.ClientID] = m.Seq
	}
	for id, seq := range want {
		got, ok := byID[id]
		if !ok {
			t.Fatalf("acknowledged send %s (seq %d) is not stored", id, seq)
		}
		if got != seq {
			t.Fatalf("acknowledged send %s: acknowledged as seq %d, stored as %d", id, seq, got)
		}
	}
	return len(all)
}

// TestCrash kills `sandi serve` with SIGKILL at random moments while three
// clients send steadily into one conversation and a fourth listens on a
// WebSocket, restarts it, and checks after each restart that every
// acknowledged send is stored exactly once, gap-free, and that the
// listener has heard it within 5 s of the restart, reconnecting on its
// own; at the end every device's history holds every message once, with
// seqs 1…N.
func TestCrash(t *testing.T) {
	bin := buildSandi(t)
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) { crashRun(t, bin, name) })
	}
}

func crashRun(t *testing.T, bin, dbName string) {
	dir := t.TempDir()
	srv := &server{bin: bin, data: filepath.Join(dir, "data")}
	db := filepath.Join(srv.data, "sandi.db")
	if dbName == "postgres" {
		srv.db = testpg.URL(t)
		db = srv.db
	}
	launch(t, dir, srv)
	addr := srv.addr

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(name string) *client.Client {
		st, err := client.NewDirStorage(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Open(client.Options{Server: "http://" + addr, Storage: st, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Register(ctx, name, "password of "+name); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		return c
	}
	senders := []*client.Client{open("alice"), open("bob"), open("carol")}
	dave := open("dave")
	conv, err := senders[0].CreateConversation(ctx, "crash", "bob", "carol", "dave")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range append(senders[1:], dave) {
		if _, err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// The listener: counts what its WebSocket delivers.
	var heardMu sync.Mutex
	heard := map[uint64]int{}
	listenDone := make(chan error, 1)
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	go func() {
		listenDone <- dave.Listen(lctx, func(m client.Message) {
			heardMu.Lock()
			heard[m.Seq]++
			heardMu.Unlock()
		}, func(f *client.DecryptError) { t.Errorf("dave: %v", f) })
	}()

	// The load: each sender sends every few milliseconds, retrying each
	// message with its client id until the server acknowledges it.
	ack := &acked{seqs: map[string]uint64{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var loadErr error
	var loadMu sync.Mutex
	for i, c := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("m-%d-%06d", i, n)
				start := time.Now()
				for {
					m, err := c.SendWithID(ctx, conv, id, fmt.Sprintf("%s %d", c.Username(), n))
					if err == nil {
						ack.add(id, m.Seq)
						break
					}
					if ctx.Err() != nil {
						return
					}
					if time.Since(start) > 30*time.Second {
						loadMu.Lock()
						loadErr = fmt.Errorf("%s: send %s failed for 30 s: %w", c.Username(), id, err)
						loadMu.Unlock()
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				if n%50 == 49 {
					c.Sync(ctx) // keep up with rotations; errors are the server's restarts
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	total := kills(t)
	var slowest time.Duration
	for k := range total {
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		before := len(ack.snapshot())
		srv.kill()
		want := ack.snapshot() // acknowledged before the process died
		srv.start()
		restarted := time.Now()
		n := checkStored(t, db, conv, want)
		// The listener reconnects on its own and hears what was
		// acknowledged before the kill.
		for {
			heardMu.Lock()
			missing := 0
			for _, seq := range want {
				if heard[seq] == 0 {
					missing++
				}
			}
			heardMu.Unlock()
			if missing == 0 {
				break
			}
			// A listener whose reconnection delay kept doubling across
			// restarts waited up to 10 s here.
			if time.Since(restarted) > 5*time.Second {
				t.Fatalf("kill %d: the listener lacks %d acknowledged messages 5 s after the restart", k+1, missing)
			}
			time.Sleep(10 * time.Millisecond)
		}
		caughtUp := time.Since(restarted)
		slowest = max(slowest, caughtUp)
		t.Logf("kill %d: %d acknowledged before it, %d stored after the restart; the listener had them %v after it", k+1, len(want), n, caughtUp.Round(time.Millisecond))
		if k == total-1 && len(want) == before && before == 0 {
			t.Fatal("no send was acknowledged during the run")
		}
		loadMu.Lock()
		if loadErr != nil {
			t.Fatal(loadErr)
		}
		loadMu.Unlock()
	}
	t.Logf("the listener caught up at worst %v after a restart", slowest.Round(time.Millisecond))
	close(stop)
	wg.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	final := ack.snapshot()
	n := checkStored(t, db, conv, final)
	if n != len(final) {
		// Every send was retried until acknowledged, so nothing is stored
		// that was not acknowledged (the title is conversation state, not
		// a message).
		t.Fatalf("%d messages stored, %d acknowledged", n, len(final))
	}

	// The listener catches up on its own.
	deadline := time.Now().Add(30 * time.Second)
	for {
		heardMu.Lock()
		got := len(heard)
		heardMu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d messages stored; the listener caught up %v after the load stopped", n, time.Since(deadline.Add(-30*time.Second)).Round(time.Millisecond))
	lcancel()
	<-listenDone
	heardMu.Lock()
	for seq := uint64(1); seq <= uint64(n); seq++ {
		if heard[seq] != 1 {
			t.Errorf("dave's WebSocket delivered seq %d %d times, want once", seq, heard[seq])
			break
		}
	}
	heardMu.Unlock()

	// Every device's history: seqs 1…N, each once.
	for _, c := range append(senders, dave) {
		if _, err := c.Sync(ctx); err != nil {
			t.Fatalf("%s: final sync: %v", c.Username(), err)
		}
		h, err := c.History(conv)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, m := range h {
			seqs = append(seqs, m.Seq)
		}
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("%s: history seq %d at place %d: a gap or a repeat (%d messages, %d stored)", c.Username(), s, i+1, len(seqs), n)
			}
		}
		if len(seqs) != n {
			t.Fatalf("%s: history holds %d messages, the server %d", c.Username(), len(seqs), n)
		}
	}
}

// logLines returns the lines of the server's log that contain sub.
func (s *server) logLines(sub string) string {
	b, err := os.ReadFile(s.log.Name())
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

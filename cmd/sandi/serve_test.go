package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sandi.dev/internal/tests3"
)

// The built binary, shared by the tests of this package (cli_test.go too).
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// sandiBinary builds sandi once per test binary and returns its path.
func sandiBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		dir, err := os.MkdirTemp("", "sandi-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sandi")
		if out, err := exec.Command(goBin, "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := tests3.Run(m) // stops the S3 server if a test started one
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a running sandi process.
type proc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

// childEnv is this process's environment without SANDI_* variables, plus
// extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SANDI_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func startSandi(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(sandiBinary(t), args...), stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("sandi did not exit within %v; stderr:\n%s", within, p.stderr)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("sandi was killed by %v; stderr:\n%s", ws.Signal(), p.stderr)
		}
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// waitHealthy polls /healthz until it answers 200.
func waitHealthy(t *testing.T, p *proc, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("sandi exited before it was healthy (%v); stderr:\n%s", p.err, p.stderr)
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not ready after 30 s (last: %v); stderr:\n%s", err, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func postJSON(t *testing.T, url string, body any) (int, map[string]any) {
	t.Helper()
	return postJSONHeader(t, url, body, nil)
}

// postJSONHeader is postJSON with extra request headers.
func postJSONHeader(t *testing.T, url string, body any, h http.Header) (int, map[string]any) {
	t.Helper()
	data, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("POST %s: %d, body %q", url, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// `sandi serve` from flags or from the environment: it serves, keeps its
// data in the data directory across a restart, and shuts down cleanly on
// SIGTERM, ending an open WebSocket with a going-away close.
func TestServe(t *testing.T) {
	for _, how := range []string{"flags", "env"} {
		t.Run(how, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data") // created by sandi
			addr := freeAddr(t)
			base := "http://" + addr
			run := func() *proc {
				if how == "flags" {
					return startSandi(t, childEnv(), "serve", "--addr", addr, "--data", dir)
				}
				return startSandi(t, childEnv("SANDI_ADDR="+addr, "SANDI_DATA="+dir), "serve")
			}
			creds := map[string]string{"username": "alice", "password": "correct horse battery"}

			p := run()
			waitHealthy(t, p, base)
			if !strings.Contains(p.stderr.String(), `"addr":"`+base+`"`) {
				t.Fatalf("the log does not name the address %s:\n%s", base, p.stderr)
			}
			status, reg := postJSON(t, base+"/api/auth/register", creds)
			if status != http.StatusCreated || reg["token"] == nil {
				t.Fatalf("register: %d %v", status, reg)
			}
			uploadBundle(t, base, reg)
			// An open WebSocket does not hold the shutdown up.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/api/ws", &websocket.DialOptions{
				HTTPHeader: http.Header{"Authorization": {"Bearer " + reg["token"].(string)}}})
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()

			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			_, _, err = ws.Read(rctx)
			rcancel()
			if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
				t.Fatalf("open WebSocket at SIGTERM: %v (close status %v), want going away", err, got)
			}
			if code := p.wait(t, 5*time.Second); code != 0 {
				t.Fatalf("exit status %d after SIGTERM; stderr:\n%s", code, p.stderr)
			}
			if !strings.Contains(p.stderr.String(), "shutting down") {
				t.Fatalf("no shutdown in the log:\n%s", p.stderr)
			}
			if st, err := os.Stat(filepath.Join(dir, "sandi.db")); err != nil || st.Size() == 0 {
				t.Fatalf("database file in the data directory: %v", err)
			}

			// Restart on the same data: the account is there.
			p = run()
			waitHealthy(t, p, base)
			status, login := postJSON(t, base+"/api/auth/login", creds)
			if status != http.StatusOK || login["userId"] != reg["userId"] {
				t.Fatalf("login after restart: %d %v (registered %v)", status, login, reg["userId"])
			}
			if status, _ := postJSON(t, base+"/api/auth/register", creds); status != http.StatusConflict {
				t.Fatalf("register of the same name after restart: %d", status)
			}
			wrong := map[string]string{"username": "alice", "password": "wrong password"}
			if status, _ := postJSON(t, base+"/api/auth/login", wrong); status != http.StatusUnauthorized {
				t.Fatalf("login with a wrong password: %d", status)
			}
			if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 5*time.Second); code != 0 {
				t.Fatalf("exit status %d after SIGINT; stderr:\n%s", code, p.stderr)
			}
		})
	}
}

// Command-line mistakes exit with status 2 and say what is wrong; a
// server that cannot listen exits with status 1.
func TestCommandLineErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--bogus"}, "sandi: flag provided but not defined: -bogus"},
		{nil, "sandi: no command given"},
		{[]string{"frobnicate"}, `sandi: unknown command "frobnicate"`},
		{[]string{"serve", "extra"}, "sandi: serve takes no arguments"},
		{[]string{"serve", "--log-level", "loud", "--data", t.TempDir()}, "sandi: --log-level"},
		{[]string{"serve", "--trusted-proxies", "10.0.0.0/33", "--data", t.TempDir()}, `sandi: --trusted-proxies: "10.0.0.0/33" is neither an address nor a CIDR prefix`},
		{[]string{"serve", "--db", "sandi-data", "--data", t.TempDir()}, `sandi: --db: "sandi-data" is neither a postgres:// URL, a PostgreSQL key=value string, nor a SQLite file ending in .db or .sqlite`},
		{[]string{"serve", "--ipv6-prefix", "0", "--data", t.TempDir()}, "sandi: --ipv6-prefix: a prefix length from 1 to 128"},
		{[]string{"serve", "--max-conns-per-addr", "-3", "--data", t.TempDir()}, "sandi: --max-conns-per-addr"},
		{[]string{"serve", "--idle-timeout", "0s", "--data", t.TempDir()}, "sandi: --idle-timeout"},
	} {
		t.Run(strings.Join(append([]string{"sandi"}, c.args...), " "), func(t *testing.T) {
			p := startSandi(t, childEnv(), c.args...)
			if code := p.wait(t, 10*time.Second); code != 2 {
				t.Fatalf("exit status %d, want 2; stderr:\n%s", code, p.stderr)
			}
			if !strings.Contains(p.stderr.String(), c.want) {
				t.Fatalf("stderr does not say %q:\n%s", c.want, p.stderr)
			}
		})
	}
	t.Run("address in use", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		p := startSandi(t, childEnv(), "serve", "--addr", l.Addr().String(), "--data", t.TempDir())
		if code := p.wait(t, 20*time.Second); code != 1 {
			t.Fatalf("exit status %d, want 1; stderr:\n%s", code, p.stderr)
		}
		if !strings.Contains(p.stderr.String(), "address already in use") {
			t.Fatalf("stderr:\n%s", p.stderr)
		}
	})
}

// Behind the reverse proxies named by --trusted-proxies (or
// SANDI_TRUSTED_PROXIES), each client has its own registration limit (10
// a minute), keyed on the address the proxy forwards.
func TestServeTrustedProxies(t *testing.T) {
	for _, how := range []string{"flags", "env"} {
		t.Run(how, func(t *testing.T) {
			addr := freeAddr(t)
			base := "http://" + addr
			var p *proc
			if how == "flags" {
				p = startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir(), "--trusted-proxies", "192.0.2.0/24, 127.0.0.1")
			} else {
				p = startSandi(t, childEnv("SANDI_TRUSTED_PROXIES=127.0.0.1"), "serve", "--addr", addr, "--data", t.TempDir())
			}
			waitHealthy(t, p, base)
			n := 0
			register := func(client string) int {
				n++
				status, _ := postJSONHeader(t, base+"/api/auth/register",
					map[string]string{"username": fmt.Sprintf("user%d", n), "password": "correct horse battery"},
					http.Header{"X-Forwarded-For": {client}})
				return status
			}
			for i := range 10 {
				if status := register("198.51.100.1"); status != http.StatusCreated {
					t.Fatalf("registration %d of the first client: %d", i+1, status)
				}
			}
			if status := register("198.51.100.1"); status != http.StatusTooManyRequests {
				t.Fatalf("11th registration of the first client: %d, want 429", status)
			}
			if status := register("198.51.100.2"); status != http.StatusCreated {
				t.Fatalf("a second client behind the same proxy: %d, want 201", status)
			}
		})
	}
}

// A --db that is neither PostgreSQL nor a SQLite file name is refused
// (exit status 2) and creates nothing; a PostgreSQL key=value string is
// taken for PostgreSQL, not for the name of a SQLite file.
func TestServeDatabaseArgument(t *testing.T) {
	run := func(t *testing.T, db string) (*proc, string) {
		dir := t.TempDir()
		p := &proc{cmd: exec.Command(sandiBinary(t), "serve", "--addr", freeAddr(t), "--db", db, "--data", filepath.Join(dir, "data")),
			stderr: &lockedBuffer{}, done: make(chan struct{})}
		p.cmd.Dir, p.cmd.Env, p.cmd.Stderr = dir, childEnv(), p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.err = p.cmd.Wait(); close(p.done) }()
		t.Cleanup(func() {
			select {
			case <-p.done:
			default:
				p.cmd.Process.Kill()
				<-p.done
			}
		})
		return p, dir
	}
	empty := func(t *testing.T, dir string) {
		t.Helper()
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("files created: %v", ents)
		}
	}
	t.Run("not a database", func(t *testing.T) {
		p, dir := run(t, "sandi-data")
		if code := p.wait(t, 10*time.Second); code != 2 {
			t.Fatalf("exit status %d, want 2; stderr:\n%s", code, p.stderr)
		}
		empty(t, dir)
	})
	t.Run("key=value", func(t *testing.T) {
		closed := freeAddr(t)
		_, port, _ := net.SplitHostPort(closed)
		p, dir := run(t, "host=127.0.0.1 port="+port+" user=sandi dbname=sandi connect_timeout=2")
		if code := p.wait(t, 20*time.Second); code != 1 {
			t.Fatalf("exit status %d, want 1; stderr:\n%s", code, p.stderr)
		}
		if !strings.Contains(p.stderr.String(), "open database") || !strings.Contains(p.stderr.String(), "127.0.0.1") {
			t.Fatalf("stderr does not say it could not reach PostgreSQL at 127.0.0.1:\n%s", p.stderr)
		}
		empty(t, dir)
	})
}

// /metrics is not served on the API address unless a token guards it;
// with --metrics-token it answers the token only (the scheme in any
// case); with --metrics-addr it is served there and not on the API.
func TestServeMetricsAccess(t *testing.T) {
	get := func(t *testing.T, url, auth string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	t.Run("default", func(t *testing.T) {
		addr := freeAddr(t)
		p := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
		waitHealthy(t, p, "http://"+addr)
		if s := get(t, "http://"+addr+"/metrics", ""); s != http.StatusNotFound {
			t.Fatalf("/metrics without a token or address: %d, want 404", s)
		}
		log := p.stderr.String()
		if !strings.Contains(log, `"msg":"file descriptor limit"`) {
			t.Fatalf("no file descriptor limit in the log:\n%s", log)
		}
	})
	t.Run("token", func(t *testing.T) {
		addr := freeAddr(t)
		p := startSandi(t, childEnv("SANDI_METRICS_TOKEN=s3cret-metrics"), "serve", "--addr", addr, "--data", t.TempDir())
		waitHealthy(t, p, "http://"+addr)
		for auth, want := range map[string]int{"": 401, "Bearer wrong": 401, "Bearer s3cret-metrics": 200, "bearer s3cret-metrics": 200, "BEARER  s3cret-metrics": 200, "Basic s3cret-metrics": 401} {
			if s := get(t, "http://"+addr+"/metrics", auth); s != want {
				t.Errorf("/metrics with %q: %d, want %d", auth, s, want)
			}
		}
	})
	t.Run("address", func(t *testing.T) {
		addr, maddr := freeAddr(t), freeAddr(t)
		p := startSandi(t, childEnv(), "serve", "--addr", addr, "--metrics-addr", maddr, "--data", t.TempDir())
		waitHealthy(t, p, "http://"+addr)
		if s := get(t, "http://"+addr+"/metrics", ""); s != http.StatusNotFound {
			t.Fatalf("/metrics on the API address: %d, want 404", s)
		}
		if s := get(t, "http://"+maddr+"/metrics", ""); s != http.StatusOK {
			t.Fatalf("/metrics on --metrics-addr: %d, want 200", s)
		}
	})
}

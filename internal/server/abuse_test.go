package server_test

// Abuse tests: what an attacker without an account (or with one) can do to
// the server's resources, against a real server on 127.0.0.1 with bounded
// counts and times.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
)

// logBuffer collects a server's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveReal starts a server on SQLite the way `sandi serve` does: its
// HTTPServer (timeouts) on its Listener (per-address cap) on 127.0.0.1.
func serveReal(t *testing.T, cfg server.Config) *env {
	t.Helper()
	e, _ := serveRealLog(t, cfg)
	return e
}

// serveRealLog is serveReal with the server's log kept.
func serveRealLog(t *testing.T, cfg server.Config) (*env, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	st, err := sqlstore.Open(context.Background(), t.TempDir()+"/sandi.db", sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ck := &clock{now: time.Unix(1_780_000_000, 0)}
	cfg.Now = ck.Now
	if cfg.Argon2Time == 0 {
		cfg.Argon2Time, cfg.Argon2MemKiB, cfg.Argon2Threads = 1, 64, 1
	}
	if cfg.RegisterPerMinute == 0 {
		cfg.RegisterPerMinute, cfg.LoginPerMinute, cfg.ClaimPerMinute = -1, -1, -1
	}
	srv := server.New(st, slog.New(slog.NewTextHandler(logs, nil)), cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	go hs.Serve(srv.Listener(ln))
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		st.Close()
	})
	return &env{t: t, url: "http://" + ln.Addr().String(), st: st, srv: srv, clock: ck}, logs
}

// dialFrom opens a TCP connection to e from the local address ip.
func (e *env) dialFrom(ip string) net.Conn {
	e.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", e.url[len("http://"):])
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// healthz sends GET /healthz on c and reads the answer.
func healthz(c net.Conn, br *bufio.Reader) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: sandi\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}

// closedWithin reports whether the peer closes c (a read returns EOF or a
// reset) within d.
func closedWithin(c net.Conn, br *bufio.Reader, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := br.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// Logins run at most the configured number of Argon2id hashes at once;
// those that find no slot within the wait get 503 overloaded with
// Retry-After; every attempt, for a known or an unknown username, costs
// exactly one hash.
func TestPasswordHashingBounded(t *testing.T) {
	// 4 MiB a hash and a budget of 4 MiB: one slot, whatever GOMAXPROCS.
	e, logs := serveRealLog(t, server.Config{Argon2Time: 8, Argon2MemKiB: 4 << 10, Argon2Threads: 1,
		HashMemoryMiB: 4, HashWait: 20 * time.Millisecond})
	const hashes = "sandi_password_hashes_total"
	if v := e.metricOr0("sandi_password_hash_slots"); v != 1 {
		t.Fatalf("hash slots %v, want 1 (budget / memory per hash)", v)
	}
	e.register("alice")
	if v := e.metricOr0(hashes); v != 1 {
		t.Fatalf("%v hashes after one registration, want 1", v)
	}

	const n = 16
	answers := make([]rawResponse, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			pw := "correct horse alice"
			if i%2 == 1 {
				pw = "wrong password"
			}
			answers[i] = e.raw(nil, "", "POST", "/api/auth/login", creds("alice", pw))
		}()
	}
	close(start)
	wg.Wait()
	served, busy := 0, 0
	for i, r := range answers {
		switch r.status {
		case http.StatusOK, http.StatusUnauthorized:
			served++
			if (r.status == http.StatusOK) != (i%2 == 0) {
				t.Errorf("login %d: status %d", i, r.status)
			}
		case http.StatusServiceUnavailable:
			busy++
			r.wantProblem(t, http.StatusServiceUnavailable, server.CodeOverloaded)
			if h := r.header.Get("Retry-After"); h != "1" {
				t.Errorf("503 with Retry-After %q", h)
			}
		default:
			t.Fatalf("login %d: %d %s", i, r.status, r.body)
		}
	}
	if busy == 0 || served == 0 {
		t.Fatalf("%d served, %d refused: want both (one slot, %d at once)", served, busy, n)
	}
	if v := e.metricOr0("sandi_password_hashes_peak"); v != 1 {
		t.Fatalf("%v hashes ran at once, bound 1", v)
	}
	if v := e.metricOr0("sandi_password_hashes_refused_total"); v != float64(busy) {
		t.Fatalf("refused counter %v, %d answered 503", v, busy)
	}
	if n := strings.Count(logs.String(), "password hashing at capacity"); n != 1 {
		t.Fatalf("%d log lines about hashing at capacity, want 1 (at most one in 10 s):\n%s", n, logs)
	}
	if v := e.metricOr0(hashes); v != float64(1+served) {
		t.Fatalf("%v hashes for 1 registration and %d logins served", v, served)
	}
	if v := e.metricOr0("sandi_password_hashes_running"); v != 0 {
		t.Fatalf("%v hashes still running", v)
	}

	// One hash per attempt, whether or not the username exists.
	for _, name := range []string{"alice", "nobody"} {
		before := e.metricOr0(hashes)
		r := e.raw(nil, "", "POST", "/api/auth/login", creds(name, "wrong password"))
		r.wantProblem(t, http.StatusUnauthorized, server.CodeBadCredentials)
		if d := e.metricOr0(hashes) - before; d != 1 {
			t.Fatalf("login as %s with a wrong password: %v hashes, want 1", name, d)
		}
	}
}

// An idle keep-alive connection is closed after the idle timeout.
func TestIdleConnectionClosed(t *testing.T) {
	e := serveReal(t, server.Config{IdleTimeout: 300 * time.Millisecond})
	c := e.dialFrom("127.0.0.1")
	br := bufio.NewReader(c)
	if err := healthz(c, br); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(c, br, 3*time.Second) {
		t.Fatal("idle keep-alive connection still open 3 s after a 300 ms idle timeout")
	}
}

// A request whose body comes a byte at a time is cut off at the read
// timeout, long before the body is complete.
func TestTrickledBodyCutOff(t *testing.T) {
	e := serveReal(t, server.Config{ReadTimeout: 500 * time.Millisecond})
	c := e.dialFrom("127.0.0.1")
	const size = 40 // at a byte per 100 ms: 4 s
	fmt.Fprintf(c, "POST /api/auth/login HTTP/1.1\r\nHost: sandi\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
	closed := make(chan time.Time, 1)
	go func() {
		io.Copy(io.Discard, c) // until the server closes
		closed <- time.Now()
	}()
	start := time.Now()
	sent := 0
	for ; sent < size; sent++ {
		select {
		case at := <-closed:
			if d := at.Sub(start); d > 2*time.Second {
				t.Fatalf("cut off after %v", d)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := c.Write([]byte{' '}); err != nil {
			return // the server has closed the connection
		}
	}
	t.Fatalf("the server read a %d-byte body sent over %v", size, time.Since(start))
}

// At the per-address cap a new connection is closed at once, while the
// connections already open keep being answered and other addresses (and
// trusted proxies) are not affected; a slot freed is usable again.
func TestConnectionsPerAddressCap(t *testing.T) {
	const limit = 3
	e, logs := serveRealLog(t, server.Config{MaxConnsPerAddr: limit, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}})
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	open := func(ip string) conn {
		c := e.dialFrom(ip)
		return conn{c, bufio.NewReader(c)}
	}
	var first []conn
	for range limit {
		c := open("127.0.0.7")
		if err := healthz(c.c, c.br); err != nil {
			t.Fatal(err)
		}
		first = append(first, c)
	}
	over := open("127.0.0.7")
	if !closedWithin(over.c, over.br, time.Second) {
		t.Fatalf("connection %d from one address not closed", limit+1)
	}
	if err := healthz(over.c, over.br); err == nil {
		t.Fatalf("connection %d from one address answered", limit+1)
	}
	for i, c := range first {
		if err := healthz(c.c, c.br); err != nil {
			t.Fatalf("established connection %d: %v", i, err)
		}
	}
	other := open("127.0.0.8")
	if err := healthz(other.c, other.br); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// A trusted proxy carries many clients: it is not capped.
	for i := range limit + 2 {
		c := open("127.0.0.9")
		if err := healthz(c.c, c.br); err != nil {
			t.Fatalf("connection %d from the trusted proxy: %v", i+1, err)
		}
	}
	if v := e.metricOr0("sandi_connections_refused_total"); v != 1 {
		t.Fatalf("connections refused %v, want 1", v)
	}
	if !strings.Contains(logs.String(), "connections refused: client address at its cap") || !strings.Contains(logs.String(), "addr=127.0.0.7") {
		t.Fatalf("no log line for the refused connection:\n%s", logs)
	}
	first[0].c.Close()
	eventually(t, 3*time.Second, "a freed slot is usable", func() bool {
		c := open("127.0.0.7")
		defer c.c.Close()
		return healthz(c.c, c.br) == nil
	})
}

// A WebSocket whose peer stops answering pings is closed; one that answers
// stays open, also past the HTTP server's read, write and idle timeouts,
// which do not apply to it.
func TestWebSocketPingTimeout(t *testing.T) {
	e := serveReal(t, server.Config{WebSocketPing: 100 * time.Millisecond, WebSocketPongWait: 200 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	alice := e.register("alice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	live, err := alice.dialWS(ctx, nil, alice.cursor)
	if err != nil {
		t.Fatal(err)
	}
	defer live.CloseNow()
	go func() {
		for { // reading answers the pings
			if _, _, err := live.Read(ctx); err != nil {
				return
			}
		}
	}()
	mute, err := alice.dialWS(ctx, nil, alice.cursor)
	if err != nil {
		t.Fatal(err)
	}
	defer mute.CloseNow() // never read: its pings go unanswered
	eventually(t, 2*time.Second, "both sockets counted", func() bool { return e.metricOr0("sandi_websockets_open") == 2 })
	eventually(t, 3*time.Second, "the mute socket closed", func() bool { return e.metricOr0("sandi_websockets_open") == 1 })
	time.Sleep(time.Second) // ten ping intervals, three times each HTTP timeout
	if v := e.metricOr0("sandi_websockets_open"); v != 1 {
		t.Fatalf("%v sockets open, want the one that answers pings", v)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	defer pcancel()
	if err := live.Ping(pctx); err != nil {
		t.Fatalf("the live socket after a second: %v", err)
	}
}

// WebSockets are capped per device and per account; the refused dial
// gets 429, and a closed socket frees its place.
func TestWebSocketCaps(t *testing.T) {
	e := serveReal(t, server.Config{MaxWebSocketsPerDevice: 2, MaxWebSocketsPerAccount: 3})
	alice, bob := e.register("alice"), e.register("bob")
	var other authAnswer
	if err := e.do("", "POST", "/api/auth/login", map[string]string{"username": "alice", "password": "correct horse alice"}, &other); err != nil {
		t.Fatal(err)
	}
	alice2 := &device{e: e, name: "alice2", user: other.UserID, dev: other.DeviceID, token: other.Token}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(d *device) (*websocket.Conn, error) {
		c, err := d.dialWS(ctx, nil, 0)
		if c != nil {
			t.Cleanup(func() { c.CloseNow() })
		}
		return c, err
	}
	refused := func(d *device, why string) {
		t.Helper()
		c, err := dial(d)
		if err == nil {
			c.CloseNow()
			t.Fatalf("%s: socket accepted", why)
		}
	}
	a1, err := dial(alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(alice); err != nil {
		t.Fatal(err)
	}
	refused(alice, "third socket of one device")
	if _, err := dial(alice2); err != nil {
		t.Fatal(err)
	}
	refused(alice2, "fourth socket of one account")
	if _, err := dial(bob); err != nil {
		t.Fatalf("another account: %v", err)
	}
	if v := e.metricOr0("sandi_websockets_refused_total"); v != 2 {
		t.Fatalf("sockets refused %v, want 2", v)
	}
	a1.Close(websocket.StatusNormalClosure, "")
	eventually(t, 3*time.Second, "a closed socket frees its place", func() bool {
		c, err := dial(alice)
		if err == nil {
			c.CloseNow()
		}
		return err == nil
	})
}

// Behind a trusted proxy, IPv6 clients are limited per /64: addresses of
// one /64 share a bucket, another /64 has its own.
func TestRateLimitIPv6Prefix(t *testing.T) {
	cfg := server.Config{RegisterPerMinute: 2, LoginPerMinute: -1, ClaimPerMinute: -1,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	e := serveReal(t, cfg)
	n := 0
	register := func(xff string) rawResponse {
		n++
		name := fmt.Sprintf("user%d", n)
		return e.raw(forwardingClient(t, "127.0.0.2", xff), "", "POST", "/api/auth/register", creds(name, "password of "+name))
	}
	for i := 1; i <= 2; i++ {
		if r := register(fmt.Sprintf("2001:db8:1:2::%x", i)); r.status != http.StatusCreated {
			t.Fatalf("register: %d %s", r.status, r.body)
		}
	}
	for i := 3; i <= 20; i++ {
		rateLimited(t, register(fmt.Sprintf("2001:db8:1:2:%x::%x", i, i)))
	}
	if r := register("2001:db8:1:3::1"); r.status != http.StatusCreated {
		t.Fatalf("another /64: %d %s", r.status, r.body)
	}
	if v := e.metricOr0("sandi_ratelimit_buckets", "limit", "register"); v != 2 {
		t.Fatalf("%v register buckets, want 2 (one per /64)", v)
	}
}

// Problem texts about a malformed body speak of JSON, never of the
// server's Go types, fields or packages.
func TestProblemTextsClientSafe(t *testing.T) {
	e := serveReal(t, server.Config{})
	alice := e.register("alice")
	for _, c := range []struct {
		token, path, body, want string
	}{
		{"", "/api/auth/login", `{"username": 5, "password": "correct horse"}`, `field "username" is not a JSON string`},
		{"", "/api/auth/login", `{"username": "alice", "password": ["x"]}`, `field "password" is not a JSON string`},
		{"", "/api/auth/register", `{"username": "bob", "password": "correct horse", "deviceName": {}}`, `field "deviceName" is not a JSON string`},
		{"", "/api/auth/login", `[1, 2]`, "the body is not a JSON object"},
		{"", "/api/auth/login", `{"username": "alice",`, "the body ends in the middle of a value"},
		{"", "/api/auth/login", `{"username" "alice"}`, "malformed JSON at byte"},
		{"", "/api/auth/login", ``, "empty body"},
		{"", "/api/auth/login", `{"username": "alice", "admin": true}`, `unknown field "admin"`},
		{alice.token, "/api/conversations", `{"genesis": 7}`, `field "genesis" is not a JSON string`},
	} {
		r := e.raw(nil, c.token, "POST", c.path, []byte(c.body))
		a := r.wantProblem(t, http.StatusBadRequest, server.CodeBadRequest)
		for _, leak := range []string{"Go ", "struct", "server.", "protocol.", "json:", "http:", "main.", "int64", "B64"} {
			if strings.Contains(a.Detail, leak) {
				t.Errorf("%s %s: detail %q names %q", c.path, c.body, a.Detail, leak)
			}
		}
		if !strings.Contains(a.Detail, c.want) {
			t.Errorf("%s %s: detail %q, want %q in it", c.path, c.body, a.Detail, c.want)
		}
	}
}

// The Authorization scheme is matched in any case (RFC 9110 §11.1); any
// other scheme is no token.
func TestBearerSchemeAnyCase(t *testing.T) {
	e := serveReal(t, server.Config{})
	alice := e.register("alice")
	for auth, want := range map[string]int{
		"Bearer " + alice.token:  http.StatusOK,
		"bearer " + alice.token:  http.StatusOK,
		"BEARER  " + alice.token: http.StatusOK,
		"Basic " + alice.token:   http.StatusUnauthorized,
		"Bearer" + alice.token:   http.StatusUnauthorized,
		"Bearer x" + alice.token: http.StatusUnauthorized,
		" bearer " + alice.token: http.StatusOK,
	} {
		req, _ := http.NewRequest("GET", e.url+"/api/me", nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Authorization %q: %d, want %d", auth[:min(len(auth), 10)], resp.StatusCode, want)
		}
	}
}

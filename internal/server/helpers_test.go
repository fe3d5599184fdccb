package server_test

// Helpers shared by live_test.go, keys_test.go and ops_test.go: raw HTTP
// requests that keep the status and headers, a server that can be stopped
// and reopened over the same database, Prometheus scraping, WebSocket
// dialing, one-time pre-key generation and event decryption.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/internal/testpg"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// forEachDBURL runs f with the URL of a fresh database on SQLite (a file in
// a temp dir) and on PostgreSQL, for tests that open the same database
// more than once (restarts).
func forEachDBURL(t *testing.T, f func(t *testing.T, dbURL string)) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			var url string
			if db == "sqlite" {
				url = t.TempDir() + "/sandi.db"
			} else {
				url = testpg.URL(t)
			}
			f(t, url)
		})
	}
}

// openEnv starts a server on the database at dbURL (fast password
// hashing, no rate limits unless cfg sets them, a clock the test moves)
// and returns it with a stop function: stop closes the HTTP server, the
// Server and the store (as a process shutdown does), after which the same
// dbURL can be opened again. stop is also registered as a cleanup and may
// be called more than once.
func openEnv(t *testing.T, dbURL string, cfg server.Config) (*env, func()) {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), dbURL, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ck := &clock{now: time.Unix(1_780_000_000, 0)}
	cfg.Now = ck.Now
	if cfg.Blobs == nil {
		bs, err := fsblob.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Blobs = bs
	}
	if cfg.Argon2Time == 0 {
		cfg.Argon2Time, cfg.Argon2MemKiB, cfg.Argon2Threads = 1, 64, 1 // fast hashing in tests
	}
	if cfg.RegisterPerMinute == 0 {
		cfg.RegisterPerMinute, cfg.LoginPerMinute, cfg.ClaimPerMinute = -1, -1, -1
	}
	if cfg.SettingsPerMinute == 0 {
		cfg.SettingsPerMinute = -1
	}
	var logw io.Writer = io.Discard
	if os.Getenv("SANDI_TEST_LOG") != "" {
		logw = os.Stderr
	}
	srv := server.New(st, slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug})), cfg)
	hs := httptest.NewServer(srv.Handler())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			hs.CloseClientConnections()
			hs.Close()
			srv.Close()
			if err := st.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &env{t: t, url: hs.URL, st: st, srv: srv, clock: ck}, stop
}

// rawResponse is an answer with its status and headers kept.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// problem decodes the answer as a problem document.
func (r rawResponse) problem(t *testing.T) apiError {
	t.Helper()
	var a apiError
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("status %d: body is not a problem document: %q", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d: problem with content type %q", r.status, ct)
	}
	return a
}

// wantProblem checks that r is a problem with status and code.
func (r rawResponse) wantProblem(t *testing.T, status int, code string) apiError {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d (%q), want %d %s", r.status, r.body, status, code)
	}
	a := r.problem(t)
	if a.Code != code || a.Status != status {
		t.Fatalf("problem %d %s (%s), want %d %s", a.Status, a.Code, a.Detail, status, code)
	}
	return a
}

// raw sends a request with client (nil: http.DefaultClient). body is sent
// as is when it is a []byte, else JSON-encoded when not nil.
func (e *env) raw(client *http.Client, token, method, path string, body any) rawResponse {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: data}
}

// clientFrom returns an HTTP client whose connections come from the local
// address ip (any 127.0.0.0/8 address reaches the loopback server on
// Linux), so the server sees a distinct client address.
func clientFrom(t *testing.T, ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// series is one sample line of a Prometheus text exposition.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrape reads /metrics and parses its samples.
func (e *env) scrape() []series {
	e.t.Helper()
	r := e.raw(nil, "", "GET", "/metrics", nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("/metrics: status %d", r.status)
	}
	var out []series
	for _, line := range strings.Split(string(r.body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			e.t.Fatalf("/metrics: bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			e.t.Fatalf("/metrics: bad value in %q", line)
		}
		key := line[:sp]
		s := series{name: key, labels: map[string]string{}, value: v}
		if i := strings.IndexByte(key, '{'); i >= 0 {
			s.name = key[:i]
			for _, m := range labelRE.FindAllStringSubmatch(key[i:], -1) {
				s.labels[m[1]] = m[2]
			}
		}
		out = append(out, s)
	}
	return out
}

// metric returns the value of the sample of name with exactly labels
// (given as key, value pairs), and whether it exists.
func (e *env) metric(name string, labels ...string) (float64, bool) {
	e.t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, s := range e.scrape() {
		if s.name != name || len(s.labels) != len(want) {
			continue
		}
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

// metricOr0 is metric with an absent sample read as 0 (a labelled counter
// appears on its first increment).
func (e *env) metricOr0(name string, labels ...string) float64 {
	e.t.Helper()
	v, _ := e.metric(name, labels...)
	return v
}

// eventAnswer is one event of a sync page or WebSocket frame, with every
// field the API sends.
type eventAnswer struct {
	ID           int64                    `json:"id"`
	Kind         string                   `json:"kind"`
	Conversation *protocol.ConversationID `json:"conversation"`
	User         *protocol.UserID         `json:"user"`
	Seq          uint64                   `json:"seq"`
	Epoch        uint64                   `json:"epoch"`
	Reason       string                   `json:"reason"`
	Message      *struct {
		Conversation protocol.ConversationID `json:"conversation"`
		Seq          uint64                  `json:"seq"`
		Sender       protocol.DeviceID       `json:"sender"`
		SenderUser   protocol.UserID         `json:"senderUser"`
		ClientID     string                  `json:"clientId"`
		Epoch        uint64                  `json:"epoch"`
		Envelope     string                  `json:"envelope"`
	} `json:"message"`
	CreatedAt int64 `json:"createdAt"`
}

type pageAnswer struct {
	Events []eventAnswer `json:"events"`
	Cursor int64         `json:"cursor"`
	More   bool          `json:"more"`
	Head   int64         `json:"head"`
}

// events reads d's stream from its cursor to the end (pages of limit) and
// advances the cursor.
func (d *device) events(limit int) []eventAnswer {
	d.e.t.Helper()
	var out []eventAnswer
	for {
		var p pageAnswer
		d.must("GET", fmt.Sprintf("/api/sync?since=%d&limit=%d", d.cursor, limit), nil, &p)
		out = append(out, p.Events...)
		d.cursor = p.Cursor
		if !p.More {
			return out
		}
	}
}

func kindsOf(evs []eventAnswer) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Kind
	}
	return out
}

func countKind(evs []eventAnswer, kind string) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// decrypt opens the message of a message event with d's keys: the epoch
// from the server (verified against the chain), the sender's identity key
// from the verified chain. It does not call t.Fatal.
func (d *device) decrypt(ev eventAnswer) (string, error) {
	if ev.Message == nil || ev.Conversation == nil {
		return "", fmt.Errorf("event %d (%s) carries no message", ev.ID, ev.Kind)
	}
	raw, err := b64dec(ev.Message.Envelope)
	if err != nil {
		return "", err
	}
	env, err := protocol.ParseEnvelope(raw)
	if err != nil {
		return "", err
	}
	if env.Conversation != *ev.Conversation || env.Epoch != ev.Message.Epoch || env.Sender.Device != ev.Message.Sender {
		return "", fmt.Errorf("event %d: envelope does not match its message metadata", ev.ID)
	}
	ep, err := d.epoch(*ev.Conversation, env.Epoch)
	if err != nil {
		return "", fmt.Errorf("%s: epoch %d: %w", d.name, env.Epoch, err)
	}
	chain := d.chains[*ev.Conversation]
	if chain == nil {
		if chain, err = d.fetchChain(*ev.Conversation); err != nil {
			return "", err
		}
	}
	m, ok := chain.Member(env.Sender.User)
	if !ok {
		if chain, err = d.fetchChain(*ev.Conversation); err != nil {
			return "", err
		}
		if m, ok = chain.Member(env.Sender.User); !ok {
			return "", fmt.Errorf("%s: sender %s is not a member", d.name, env.Sender.User)
		}
	}
	pt, err := ep.Decrypt(env, m.Identity)
	if err != nil {
		return "", fmt.Errorf("%s: decrypt seq %d: %w", d.name, ev.Message.Seq, err)
	}
	return string(pt), nil
}

// oneTimeKeys makes n one-time pre-keys of kind for d, signed by signer,
// keeps their private halves and returns their encodings.
func (d *device) oneTimeKeys(n int, signer *secret.IdentityPrivateKey, kind protocol.PreKeyKind) []string {
	out := make([]string, n)
	for i := range out {
		priv, pk := secret.NewPreKey(signer, d.user, d.dev, kind, d.nextKey, d.e.clock.now.Unix())
		d.prekeys[d.nextKey] = priv
		d.nextKey++
		out[i] = b64(pk.Marshal())
	}
	return out
}

// keyCount is the device's one-time pre-key count from the API.
func (d *device) keyCount() int {
	d.e.t.Helper()
	var c struct {
		Count *int `json:"count"`
	}
	d.must("GET", "/api/keys/count", nil, &c)
	if c.Count == nil {
		d.e.t.Fatalf("%s: /api/keys/count without a count", d.name)
	}
	return *c.Count
}

// wsURL is the WebSocket URL of the env's stream from since.
func (e *env) wsURL(since int64) string {
	return "ws" + strings.TrimPrefix(e.url, "http") + "/api/ws?since=" + strconv.FormatInt(since, 10)
}

// dialWS opens d's WebSocket from since with the Authorization header.
func (d *device) dialWS(ctx context.Context, client *http.Client, since int64) (*websocket.Conn, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+d.token)
	c, _, err := websocket.Dial(ctx, d.e.wsURL(since), &websocket.DialOptions{HTTPClient: client, HTTPHeader: h})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(16 << 20)
	return c, nil
}

// readFrame reads one frame as a sync page.
func readFrame(ctx context.Context, c *websocket.Conn) (pageAnswer, error) {
	var p pageAnswer
	typ, data, err := c.Read(ctx)
	if err != nil {
		return p, err
	}
	if typ != websocket.MessageText {
		return p, fmt.Errorf("frame of type %v", typ)
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("frame is not a sync page: %w: %q", err, data)
	}
	return p, nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func b64dec(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}

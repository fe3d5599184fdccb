package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/blob/s3blob"
	"sandi.dev/internal/server"
	"sandi.dev/internal/tests3"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// /healthz answers while the process runs; /readyz only while the
// database answers.
func TestHealthAndReadiness(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		if r := e.raw(nil, "", "GET", "/healthz", nil); r.status != http.StatusOK {
			t.Fatalf("/healthz: %d %s", r.status, r.body)
		}
		if r := e.raw(nil, "", "GET", "/readyz", nil); r.status != http.StatusOK {
			t.Fatalf("/readyz: %d %s", r.status, r.body)
		}
		if err := e.st.Close(); err != nil {
			t.Fatal(err)
		}
		e.raw(nil, "", "GET", "/readyz", nil).wantProblem(t, http.StatusServiceUnavailable, server.CodeUnavailable)
		if r := e.raw(nil, "", "GET", "/healthz", nil); r.status != http.StatusOK {
			t.Fatalf("/healthz with the database down: %d", r.status)
		}
	})
}

// /metrics counts requests by route and status, stored messages, refused
// sends by reason, open WebSockets and claims that leave a device low.
func TestMetrics(t *testing.T) {
	forEachDB(t, server.Config{RotateAfterMessages: 2}, func(t *testing.T, e *env) {
		const reqs = "sandi_http_requests_total"
		alice, bob := e.register("alice"), e.register("bob")
		if v := e.metricOr0(reqs, "route", "POST /api/auth/register", "status", "201"); v != 2 {
			t.Fatalf("register 201 count %v, want 2", v)
		}
		for range 3 {
			alice.must("GET", "/api/me", nil, nil)
		}
		wantCode(t, e.do("", "GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		if v := e.metricOr0(reqs, "route", "GET /api/me", "status", "200"); v != 3 {
			t.Fatalf("GET /api/me 200 count %v, want 3", v)
		}
		if v := e.metricOr0(reqs, "route", "GET /api/me", "status", "401"); v != 1 {
			t.Fatalf("GET /api/me 401 count %v, want 1", v)
		}
		if v := e.metricOr0("sandi_http_request_duration_seconds_count", "route", "GET /api/me"); v != 4 {
			t.Fatalf("latency histogram count %v, want 4", v)
		}

		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		const stored = "sandi_messages_stored_total"
		if v, ok := e.metric(stored); !ok || v != 0 {
			t.Fatalf("%s = %v (present %v) before any send", stored, v, ok)
		}
		ep, err := alice.epoch(conv, 1)
		if err != nil {
			t.Fatal(err)
		}
		env1, err := ep.Encrypt(alice.id, []byte("one"))
		if err != nil {
			t.Fatal(err)
		}
		path := "/api/conversations/" + conv.String() + "/messages"
		body := map[string]string{"clientId": "metrics-0001", "envelope": b64(env1.Marshal())}
		alice.must("POST", path, body, nil)
		if v := e.metricOr0(stored); v != 1 {
			t.Fatalf("%s = %v after a send", stored, v)
		}
		alice.must("POST", path, body, nil) // a retry stores nothing
		if v := e.metricOr0(stored); v != 1 {
			t.Fatalf("%s = %v after a retry", stored, v)
		}
		if v := e.metricOr0(reqs, "route", "POST /api/conversations/{id}/messages", "status", "201"); v != 1 {
			t.Fatalf("send 201 count %v", v)
		}
		if v := e.metricOr0(reqs, "route", "POST /api/conversations/{id}/messages", "status", "200"); v != 1 {
			t.Fatalf("send 200 (duplicate) count %v", v)
		}
		if _, err := alice.send(conv, 1, "two"); err != nil {
			t.Fatal(err)
		}
		// RotateAfterMessages is 2: the third send needs epoch 2.
		const refused = "sandi_sends_refused_total"
		if v := e.metricOr0(refused, "reason", server.CodeRotationRequired); v != 0 {
			t.Fatalf("%s = %v before a refusal", refused, v)
		}
		_, err = alice.send(conv, 1, "three")
		wantCode(t, err, 409, server.CodeRotationRequired)
		if v := e.metricOr0(refused, "reason", server.CodeRotationRequired); v != 1 {
			t.Fatalf("%s{reason=rotation_required} = %v after a refused send", refused, v)
		}
		if v := e.metricOr0(stored); v != 2 {
			t.Fatalf("%s = %v, want 2", stored, v)
		}

		// Open WebSockets.
		const open = "sandi_websockets_open"
		gauge := func() float64 { return e.metricOr0(open) }
		if v, ok := e.metric(open); !ok || v != 0 {
			t.Fatalf("%s = %v (present %v) with none open", open, v, ok)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c1, err := bob.dialWS(ctx, nil, bob.cursor)
		if err != nil {
			t.Fatal(err)
		}
		defer c1.CloseNow()
		eventually(t, 5*time.Second, "one WebSocket open", func() bool { return gauge() == 1 })
		c2, err := alice.dialWS(ctx, nil, alice.cursor)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.CloseNow()
		eventually(t, 5*time.Second, "two WebSockets open", func() bool { return gauge() == 2 })
		c1.CloseNow()
		eventually(t, 5*time.Second, "one WebSocket left open", func() bool { return gauge() == 1 })
		c2.CloseNow()
		eventually(t, 5*time.Second, "no WebSocket open", func() bool { return gauge() == 0 })

		// Claims that leave a device below 20 one-time keys count; a claim
		// that leaves it 20 or more does not.
		const low = "sandi_prekeys_low_total"
		before := e.metricOr0(low)
		if before < 2 { // creating the conversation claimed both 5-key devices
			t.Fatalf("%s = %v after claims of 5-key devices", low, before)
		}
		if _, err := alice.claim(bob.user); err != nil {
			t.Fatal(err)
		}
		if v := e.metricOr0(low); v != before+1 {
			t.Fatalf("%s = %v after a claim leaving bob low, want %v", low, v, before+1)
		}
		bob.must("POST", oneTimePath, map[string]any{"preKeys": bob.oneTimeKeys(30, bob.id, protocol.OneTimePreKey)}, nil)
		if _, err := alice.claim(bob.user); err != nil {
			t.Fatal(err)
		}
		if v := e.metricOr0(low); v != before+1 {
			t.Fatalf("%s = %v after a claim leaving bob %d keys", low, v, bob.keyCount())
		}
	})
}

// Bodies over their cap get 413, unknown fields and trailing data 400,
// and a refused request changes nothing.
func TestRequestLimitsChangeNothing(t *testing.T) {
	forEachDB(t, server.Config{MaxBodyBytes: 64 << 10}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		ep, err := alice.epoch(conv, 1)
		if err != nil {
			t.Fatal(err)
		}
		msgs := "/api/conversations/" + conv.String() + "/messages"
		envelope := func(text string) string {
			env, err := ep.Encrypt(alice.id, []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			return b64(env.Marshal())
		}

		// Register: a body over 8 KiB, an unknown field, trailing data,
		// malformed JSON. None creates the account.
		big := strings.Repeat("x", 9<<10)
		e.raw(nil, "", "POST", "/api/auth/register", creds("zed", big)).wantProblem(t, 413, server.CodeTooLarge)
		e.raw(nil, "", "POST", "/api/auth/register", map[string]any{"username": "zed", "password": "password of zed", "admin": true}).
			wantProblem(t, 400, server.CodeBadRequest)
		e.raw(nil, "", "POST", "/api/auth/register", []byte(`{"username":"zed","password":"password of zed"} {}`)).
			wantProblem(t, 400, server.CodeBadRequest)
		e.raw(nil, "", "POST", "/api/auth/register", []byte(`{"username":"zed","password":`)).
			wantProblem(t, 400, server.CodeBadRequest)
		wantCode(t, alice.do("GET", "/api/users?username=zed", nil, nil), 404, server.CodeNotFound)
		if r := e.raw(nil, "", "POST", "/api/auth/register", creds("zed", "password of zed")); r.status != http.StatusCreated {
			t.Fatalf("register zed after the refusals: %d %s", r.status, r.body)
		}

		// Bundle over MaxBodyBytes; one-time keys with an unknown field.
		e.raw(nil, alice.token, "POST", "/api/keys/prekey-bundle", []byte(`{"bundle":"`+strings.Repeat("A", 70<<10)+`"}`)).
			wantProblem(t, 413, server.CodeTooLarge)
		keys := alice.oneTimeKeys(2, alice.id, protocol.OneTimePreKey)
		e.raw(nil, alice.token, "POST", oneTimePath, map[string]any{"preKeys": keys, "replace": true}).
			wantProblem(t, 400, server.CodeBadRequest)
		if n := alice.keyCount(); n != 4 { // 5 uploaded, 1 claimed by alice's own create
			t.Fatalf("alice's count after refusals: %d", n)
		}

		// Sends: over the envelope cap, unknown field, trailing data, a
		// body over the send cap. No seq is used up.
		e.raw(nil, alice.token, "POST", msgs, map[string]string{"clientId": "limits-0001", "envelope": b64(make([]byte, protocol.MaxEnvelopeSize+1))}).
			wantProblem(t, 413, server.CodeTooLarge)
		e.raw(nil, alice.token, "POST", msgs, []byte(`{"clientId":"limits-0001","envelope":"`+strings.Repeat("A", 200<<10)+`"}`)).
			wantProblem(t, 413, server.CodeTooLarge)
		e.raw(nil, alice.token, "POST", msgs, map[string]any{"clientId": "limits-0001", "envelope": envelope("x"), "priority": 1}).
			wantProblem(t, 400, server.CodeBadRequest)
		e.raw(nil, alice.token, "POST", msgs, []byte(`{"clientId":"limits-0001","envelope":"`+envelope("y")+`"}{"x":1}`)).
			wantProblem(t, 400, server.CodeBadRequest)
		// Padded base64 is not the API's encoding.
		e.raw(nil, alice.token, "POST", msgs, map[string]string{"clientId": "limits-0001", "envelope": envelope("z") + "=="}).
			wantProblem(t, 400, server.CodeBadRequest)
		var list struct {
			Messages []struct{ Seq uint64 } `json:"messages"`
		}
		alice.must("GET", msgs, nil, &list)
		if len(list.Messages) != 0 {
			t.Fatalf("refused sends stored %d messages", len(list.Messages))
		}
		// The client id of the refused sends is still free, and the first
		// stored message gets seq 1.
		var sa sendAnswer
		alice.must("POST", msgs, map[string]string{"clientId": "limits-0001", "envelope": envelope("kept")}, &sa)
		if sa.Seq != 1 || sa.Duplicate {
			t.Fatalf("first stored send: %+v", sa)
		}

		// A valid conversation with an unknown field: nothing created.
		rec := &protocol.Record{Op: protocol.OpCreate, Conversation: protocol.NewConversationID(), Time: e.clock.now.UnixMilli(), Author: bob.user,
			Members: []protocol.Member{bob.member(protocol.RoleAdmin), alice.member(protocol.RoleMember)}}
		secret.SignRecord(bob.id, rec)
		chain, err := protocol.Genesis(rec)
		if err != nil {
			t.Fatal(err)
		}
		dist, err := bob.distribution(chain, 1, []protocol.UserID{bob.user, alice.user})
		if err != nil {
			t.Fatal(err)
		}
		create := map[string]any{"genesis": b64(rec.Marshal()), "session": b64(dist.Marshal())}
		var convs struct {
			Conversations []struct{ ID protocol.ConversationID } `json:"conversations"`
		}
		create["title"] = "x"
		e.raw(nil, bob.token, "POST", "/api/conversations", create).wantProblem(t, 400, server.CodeBadRequest)
		for _, d := range []*device{alice, bob} {
			d.must("GET", "/api/conversations", nil, &convs)
			if len(convs.Conversations) != 1 {
				t.Fatalf("%s lists %d conversations after a refused create", d.name, len(convs.Conversations))
			}
		}
		wantCode(t, bob.do("GET", "/api/conversations/"+chain.Conversation.String(), nil, nil), 404, server.CodeNotFound)
		delete(create, "title")
		if r := e.raw(nil, bob.token, "POST", "/api/conversations", create); r.status != http.StatusCreated {
			t.Fatalf("the same create without the unknown field: %d %s", r.status, r.body)
		}

		got, _, err := bob.syncAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].text != "kept" || got[0].seq != 1 {
			t.Fatalf("bob read %+v", got)
		}
	})
}

// An idempotent send survives a restart: the retry of a message stored
// before the server stopped gets the first result, a different message
// under that client id is a conflict.
func TestIdempotencyAcrossRestart(t *testing.T) {
	forEachDBURL(t, func(t *testing.T, dbURL string) {
		e1, stop := openEnv(t, dbURL, server.Config{})
		alice, bob := e1.register("alice"), e1.register("bob")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		ep, err := alice.epoch(conv, 1)
		if err != nil {
			t.Fatal(err)
		}
		first, err := ep.Encrypt(alice.id, []byte("before the restart"))
		if err != nil {
			t.Fatal(err)
		}
		other, err := ep.Encrypt(alice.id, []byte("another message"))
		if err != nil {
			t.Fatal(err)
		}
		path := "/api/conversations/" + conv.String() + "/messages"
		body := map[string]string{"clientId": "restart-0001", "envelope": b64(first.Marshal())}
		r := e1.raw(nil, alice.token, "POST", path, body)
		type answer struct {
			Seq       uint64 `json:"seq"`
			CreatedAt int64  `json:"createdAt"`
			Duplicate bool   `json:"duplicate"`
		}
		var a1, a2 answer
		if r.status != http.StatusCreated || jsonUnmarshalT(t, r.body, &a1) || a1.Seq != 1 {
			t.Fatalf("first send: %d %s", r.status, r.body)
		}

		stop()
		if _, err := http.Get(e1.url + "/healthz"); err == nil {
			t.Fatal("the first server still answers after stop")
		}
		e2, _ := openEnv(t, dbURL, server.Config{})
		e2.clock.now = e2.clock.now.Add(time.Hour) // a retry's createdAt must be the first one's
		alice.e, bob.e = e2, e2

		r = e2.raw(nil, alice.token, "POST", path, body)
		if r.status != http.StatusOK || jsonUnmarshalT(t, r.body, &a2) || !a2.Duplicate || a2.Seq != a1.Seq || a2.CreatedAt != a1.CreatedAt {
			t.Fatalf("retry after restart: %d %s, first answer %+v", r.status, r.body, a1)
		}
		e2.raw(nil, alice.token, "POST", path, map[string]string{"clientId": "restart-0001", "envelope": b64(other.Marshal())}).
			wantProblem(t, 409, server.CodeIdempotency)
		var sa sendAnswer
		alice.must("POST", path, map[string]string{"clientId": "restart-0002", "envelope": b64(other.Marshal())}, &sa)
		if sa.Seq != 2 || sa.Duplicate {
			t.Fatalf("next send after restart: %+v", sa)
		}
		got, _, err := bob.syncAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].text != "before the restart" || got[1].text != "another message" {
			t.Fatalf("bob read %+v", got)
		}
	})
}

// jsonUnmarshalT decodes data into v and reports (true) a failure.
func jsonUnmarshalT(t *testing.T, data []byte, v any) bool {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Errorf("decode %q: %v", data, err)
		return true
	}
	return false
}

// TestReadinessBlobStore: a node whose S3 blob store stops answering
// stays ready, as one without NATS does, since text messages still flow,
// but says it is degraded; attachments are refused with 503 unavailable
// and Retry-After meanwhile, never 500.
func TestReadinessBlobStore(t *testing.T) {
	url, stop := tests3.StoppableServer(t, t.TempDir())
	bs, err := s3blob.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), server.Config{Blobs: bs})
	alice := e.register("alice")
	conv, err := alice.create(nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.raw(nil, "", "GET", "/readyz", nil); r.status != http.StatusOK || string(r.body) != "ready\n" {
		t.Fatalf("/readyz with the blob store up: %d %q", r.status, r.body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.clock.now = e.clock.now.Add(server.BlobPingTTL) // past the last check
	r := e.raw(nil, "", "GET", "/readyz", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "degraded: blob store unreachable") {
		t.Fatalf("/readyz with the blob store down: %d %q, want 200 and degraded", r.status, r.body)
	}
	r = e.raw(nil, alice.token, "POST", "/api/conversations/"+conv.String()+"/blobs", map[string]int64{"size": 100})
	r.wantProblem(t, http.StatusServiceUnavailable, server.CodeUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("unavailable without Retry-After")
	}
	if _, err := alice.send(conv, 1, "still delivered"); err != nil {
		t.Fatalf("a text message with the blob store down: %v", err)
	}
}

// countingPinger is a real blob store whose Ping calls are counted.
type countingPinger struct {
	*fsblob.Store
	pings atomic.Int64
}

func (c *countingPinger) Ping(ctx context.Context) error {
	c.pings.Add(1)
	return c.Store.Ping(ctx)
}

// TestReadinessProbeFlood: /readyz answers anyone, so a flood of probes
// (here 200, 20 at once) must not become a flood of checks of the blob
// store (an S3 HEAD request each): the check is shared for
// server.BlobPingTTL, and made again once that has passed.
func TestReadinessProbeFlood(t *testing.T) {
	fs, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bs := &countingPinger{Store: fs}
	e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), server.Config{Blobs: bs})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if r := e.raw(nil, "", "GET", "/readyz", nil); r.status != http.StatusOK || string(r.body) != "ready\n" {
					t.Errorf("/readyz: %d %q", r.status, r.body)
				}
			}
		}()
	}
	wg.Wait()
	if n := bs.pings.Load(); n != 1 {
		t.Fatalf("200 probes pinged the blob store %d times, want once", n)
	}
	e.clock.now = e.clock.now.Add(server.BlobPingTTL)
	e.raw(nil, "", "GET", "/readyz", nil)
	if n := bs.pings.Load(); n != 2 {
		t.Fatalf("a probe after BlobPingTTL: %d pings in all, want 2", n)
	}
}

package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

const oneTimePath = "/api/keys/one-time"

// claimOne claims the bundles of users and verifies each; it does not call
// t.Fatal (it runs in goroutines).
func (d *device) claimOne(users ...protocol.UserID) (claimAnswer, []*protocol.Bundle, error) {
	var ca claimAnswer
	if err := d.do("POST", "/api/keys/claim", map[string]any{"users": users}, &ca); err != nil {
		return ca, nil, err
	}
	var out []*protocol.Bundle
	for _, cb := range ca.Bundles {
		raw, err := b64dec(cb.Bundle)
		if err != nil {
			return ca, nil, err
		}
		b, err := protocol.ParseBundle(raw)
		if err != nil {
			return ca, nil, err
		}
		if err := b.Verify(); err != nil {
			return ca, nil, err
		}
		if b.User != cb.User || b.Device != cb.Device || cb.OneTime != (len(b.OneTime) == 1) || len(b.OneTime) > 1 {
			return ca, nil, fmt.Errorf("claim answer %+v does not match its bundle", cb)
		}
		out = append(out, b)
	}
	return ca, out, nil
}

// POST /api/keys/one-time stores 1 to 100 verified one-time keys of the
// caller's device, or nothing.
func TestOneTimeKeyUpload(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		if n := alice.keyCount(); n != 5 { // the bundle's own
			t.Fatalf("count after the bundle: %d", n)
		}
		upload := func(keys []string) error {
			return alice.do("POST", oneTimePath, map[string]any{"preKeys": keys}, nil)
		}
		keys := alice.oneTimeKeys(101, alice.id, protocol.OneTimePreKey)
		wantCode(t, upload(keys), 400, server.CodeBadRequest)
		wantCode(t, upload([]string{}), 400, server.CodeBadRequest)
		if n := alice.keyCount(); n != 5 {
			t.Fatalf("count after refused uploads: %d", n)
		}
		// 100 is the most one upload takes; nothing of the refused 101 was
		// stored (else these ids would conflict).
		var ans struct{ Count int }
		alice.must("POST", oneTimePath, map[string]any{"preKeys": keys[:100]}, &ans)
		if ans.Count != 105 || alice.keyCount() != 105 {
			t.Fatalf("count after 100: answer %d, count %d", ans.Count, alice.keyCount())
		}

		// A batch with one key signed by another identity is refused whole.
		good := alice.oneTimeKeys(3, alice.id, protocol.OneTimePreKey)
		for _, signer := range []*secret.IdentityPrivateKey{secret.NewIdentity(), bob.id} {
			bad := alice.oneTimeKeys(1, signer, protocol.OneTimePreKey)
			wantCode(t, upload(append(slices.Clone(good), bad...)), 400, server.CodeBadSignature)
		}
		// Signed by alice's key, but for bob's device.
		_, forBob := secret.NewPreKey(alice.id, alice.user, bob.dev, protocol.OneTimePreKey, 9999, e.clock.now.Unix())
		wantCode(t, upload(append(slices.Clone(good), b64(forBob.Marshal()))), 400, server.CodeBadSignature)
		// Other kinds of pre-key are not one-time keys.
		for _, kind := range []protocol.PreKeyKind{protocol.SignedPreKey, protocol.LastResortPreKey} {
			wantCode(t, upload(alice.oneTimeKeys(1, alice.id, kind)), 400, server.CodeBadRequest)
		}
		// An id in use, or twice in one batch.
		wantCode(t, upload(append(slices.Clone(good), keys[0])), 409, server.CodeConflict)
		wantCode(t, upload([]string{good[0], good[0]}), 400, server.CodeBadRequest)
		// Not a pre-key at all.
		wantCode(t, upload([]string{b64([]byte("not a key"))}), 400, server.CodeBadRequest)
		if n := alice.keyCount(); n != 105 {
			t.Fatalf("refused uploads changed the count: %d", n)
		}
		alice.must("POST", oneTimePath, map[string]any{"preKeys": good}, &ans)
		if ans.Count != 108 {
			t.Fatalf("count %d, want 108", ans.Count)
		}
		// Counts are per device.
		if n := bob.keyCount(); n != 5 {
			t.Fatalf("bob's count %d", n)
		}
		alice2 := e.login("alice", alice.id)
		if n := alice2.keyCount(); n != 5 {
			t.Fatalf("alice's second device count %d", n)
		}
		// A device without keys (of an account without an identity key)
		// cannot upload one-time keys, nor count them.
		var fresh authAnswer
		if err := e.do("", "POST", "/api/auth/register", creds("nokeys", "password of nokeys"), &fresh); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.do(fresh.Token, "POST", oneTimePath, map[string]any{"preKeys": good}, nil), 403, server.CodeKeysRequired)
		wantCode(t, e.do(fresh.Token, "GET", "/api/keys/count", nil, &ans), 403, server.CodeKeysRequired)
		if n, err := e.st.CountOneTimeKeys(context.Background(), fresh.DeviceID); err != nil || n != 0 {
			t.Fatalf("nokeys count %d %v", n, err)
		}
		wantCode(t, e.do("", "GET", "/api/keys/count", nil, nil), 401, server.CodeUnauthenticated)
	})
}

// Claiming through the API: K one-time keys give K distinct one-time
// bundles, then bundles without one (signed pre-key only).
func TestClaimExhaustion(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		uploaded := map[uint32]bool{}
		for _, k := range bob.bundle.OneTime {
			uploaded[k.ID] = true
		}
		const k = 5
		if len(uploaded) != k {
			t.Fatalf("bob's bundle has %d one-time keys", len(uploaded))
		}
		seen := map[uint32]bool{}
		for i := range k + 3 {
			ca, bs, err := alice.claimOne(bob.user)
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) != 1 || bs[0].Device != bob.dev || bs[0].Identity != bob.id.Public() {
				t.Fatalf("claim %d: %+v", i, ca)
			}
			b := bs[0]
			if b.Signed.ID != bob.bundle.Signed.ID || b.LastResort.ID != bob.bundle.LastResort.ID {
				t.Fatalf("claim %d: signed %d last resort %d", i, b.Signed.ID, b.LastResort.ID)
			}
			if i < k {
				if !ca.Bundles[0].OneTime || len(b.OneTime) != 1 {
					t.Fatalf("claim %d of %d keys came without a one-time key", i+1, k)
				}
				id := b.OneTime[0].ID
				if !uploaded[id] || seen[id] {
					t.Fatalf("claim %d: one-time key %d (uploaded %v, seen %v)", i, id, uploaded[id], seen[id])
				}
				seen[id] = true
				if got := bob.keyCount(); got != k-i-1 {
					t.Fatalf("after %d claims bob has %d keys", i+1, got)
				}
			} else if ca.Bundles[0].OneTime || len(b.OneTime) != 0 {
				t.Fatalf("claim %d after exhaustion still has a one-time key", i+1)
			}
		}
		// Claiming a user with two devices takes one key of each.
		bob2 := e.login("bob", bob.id)
		var more struct{ Count int }
		bob.must("POST", oneTimePath, map[string]any{"preKeys": bob.oneTimeKeys(2, bob.id, protocol.OneTimePreKey)}, &more)
		ca, bs, err := alice.claimOne(bob.user)
		if err != nil {
			t.Fatal(err)
		}
		devs := map[protocol.DeviceID]bool{}
		for i, b := range bs {
			devs[b.Device] = true
			if !ca.Bundles[i].OneTime {
				t.Fatalf("device %s had keys left but got none", b.Device)
			}
		}
		if len(bs) != 2 || !devs[bob.dev] || !devs[bob2.dev] || bob.keyCount() != 1 || bob2.keyCount() != 4 {
			t.Fatalf("claim of two devices: %d bundles, counts %d %d", len(bs), bob.keyCount(), bob2.keyCount())
		}
		// A claim naming an unknown user claims nothing for the others.
		wantCode(t, alice.do("POST", "/api/keys/claim", map[string]any{"users": []protocol.UserID{bob.user, protocol.NewUserID()}}, nil), 404, server.CodeNotFound)
		if bob.keyCount() != 1 || bob2.keyCount() != 4 {
			// keys.go used to claim the keys of the users named before
			// an unknown one, then answer 404.
			t.Fatalf("a refused claim consumed keys: counts %d %d", bob.keyCount(), bob2.keyCount())
		}
	})
}

// Concurrent claims through HTTP never hand a one-time key out twice, and
// the device is told once when it runs low.
func TestConcurrentClaims(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		target := e.register("target")
		var claimers []*device
		for i := range 4 {
			claimers = append(claimers, e.register(fmt.Sprint("claimer", i)))
		}
		uploaded := map[uint32]bool{}
		for _, k := range target.bundle.OneTime {
			uploaded[k.ID] = true
		}
		more := target.oneTimeKeys(95, target.id, protocol.OneTimePreKey)
		for _, s := range more {
			raw, _ := b64dec(s)
			k, err := protocol.ParsePreKey(raw)
			if err != nil {
				t.Fatal(err)
			}
			uploaded[k.ID] = true
		}
		target.must("POST", oneTimePath, map[string]any{"preKeys": more}, nil)
		if n := target.keyCount(); n != 100 || len(uploaded) != 100 {
			t.Fatalf("target has %d keys (%d ids)", n, len(uploaded))
		}
		// No claim yet: no prekeys_low event.
		if evs := target.events(500); countKind(evs, "prekeys_low") != 0 {
			t.Fatalf("prekeys_low before any claim: %v", kindsOf(evs))
		}

		const n = 200
		type result struct {
			oneTime bool
			id      uint32
			err     error
		}
		results := make([]result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				ca, bs, err := claimers[i%len(claimers)].claimOne(target.user)
				if err == nil && len(bs) != 1 {
					err = fmt.Errorf("%d bundles", len(bs))
				}
				if err != nil {
					results[i].err = err
					return
				}
				results[i].oneTime = ca.Bundles[0].OneTime
				if results[i].oneTime {
					results[i].id = bs[0].OneTime[0].ID
				}
			})
		}
		wg.Wait()
		got := map[uint32]int{}
		without := 0
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("claim %d: %v", i, r.err)
			}
			if !r.oneTime {
				without++
				continue
			}
			got[r.id]++
			if got[r.id] > 1 {
				t.Fatalf("one-time key %d handed out %d times", r.id, got[r.id])
			}
			if !uploaded[r.id] {
				t.Fatalf("one-time key %d was never uploaded", r.id)
			}
		}
		if len(got) != 100 || without != 100 {
			t.Fatalf("%d distinct one-time keys and %d bundles without, want 100 and 100", len(got), without)
		}
		if c := target.keyCount(); c != 0 {
			t.Fatalf("%d keys left", c)
		}
		// Told once, although every claim below 20 left it low.
		evs := target.events(500)
		if c := countKind(evs, "prekeys_low"); c != 1 {
			t.Fatalf("%d prekeys_low events, want 1: %v", c, kindsOf(evs))
		}
		// Like every event, it carries the time it was made (docs/api.md:
		// times are Unix milliseconds).
		low := evs[slices.IndexFunc(evs, func(ev eventAnswer) bool { return ev.Kind == "prekeys_low" })]
		if low.CreatedAt != e.clock.now.UnixMilli() {
			t.Errorf("prekeys_low event createdAt %d, want %d", low.CreatedAt, e.clock.now.UnixMilli())
		}

		// After an upload the device is told again, only once it falls
		// below 20 (LowPreKeys).
		target.must("POST", oneTimePath, map[string]any{"preKeys": target.oneTimeKeys(30, target.id, protocol.OneTimePreKey)}, nil)
		for range 10 {
			if _, _, err := claimers[0].claimOne(target.user); err != nil {
				t.Fatal(err)
			}
		}
		if c := target.keyCount(); c != 20 {
			t.Fatalf("count %d, want 20", c)
		}
		if evs := target.events(500); countKind(evs, "prekeys_low") != 0 {
			t.Fatalf("prekeys_low at 20 keys: %v", kindsOf(evs))
		}
		if _, _, err := claimers[1].claimOne(target.user); err != nil {
			t.Fatal(err)
		}
		evs = target.events(500)
		if countKind(evs, "prekeys_low") != 1 {
			t.Fatalf("at 19 keys: %v, want one prekeys_low", kindsOf(evs))
		}
		// Only the device itself is told.
		for _, c := range claimers {
			if evs := c.events(500); countKind(evs, "prekeys_low") != 0 {
				t.Fatalf("%s got a prekeys_low event", c.name)
			}
		}
	})
}

// rateLimited checks a 429 rate_limited answer and returns its Retry-After.
func rateLimited(t *testing.T, r rawResponse) time.Duration {
	t.Helper()
	r.wantProblem(t, http.StatusTooManyRequests, server.CodeRateLimited)
	h := r.header.Get("Retry-After")
	secs, err := strconv.Atoi(h)
	if err != nil || secs < 1 || secs > 60 {
		t.Fatalf("Retry-After %q", h)
	}
	var body struct {
		RetryAfter int `json:"retryAfter"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.RetryAfter != secs {
		t.Fatalf("retryAfter %d in the body, Retry-After %d", body.RetryAfter, secs)
	}
	return time.Duration(secs) * time.Second
}

func creds(name, password string) map[string]string {
	return map[string]string{"username": name, "password": password}
}

// Register is limited per client address, login per address and per
// address and username (also for wrong passwords); the buckets refill
// with time.
func TestRateLimitRegisterLogin(t *testing.T) {
	cfg := server.Config{RegisterPerMinute: 3, LoginPerMinute: 4, ClaimPerMinute: -1}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		addr := func(n int) *http.Client { return clientFrom(t, fmt.Sprintf("127.0.0.%d", n)) }
		pw := func(name string) string { return "password of " + name }
		register := func(c *http.Client, name string) rawResponse {
			return e.raw(c, "", "POST", "/api/auth/register", creds(name, pw(name)))
		}
		login := func(c *http.Client, name, password string) rawResponse {
			return e.raw(c, "", "POST", "/api/auth/login", creds(name, password))
		}

		// Register: three from one address, then 429.
		a2 := addr(2)
		for _, name := range []string{"user0", "user1", "user2"} {
			if r := register(a2, name); r.status != http.StatusCreated {
				t.Fatalf("register %s: %d %s", name, r.status, r.body)
			}
		}
		rateLimited(t, register(a2, "user3"))
		// The refused request created nothing: user3 is free elsewhere.
		a3 := addr(3)
		if r := register(a3, "user3"); r.status != http.StatusCreated {
			t.Fatalf("register user3 from another address: %d %s", r.status, r.body)
		}
		// One second later: still limited. After Retry-After: one more.
		e.clock.now = e.clock.now.Add(time.Second)
		wait := rateLimited(t, register(a2, "user4"))
		e.clock.now = e.clock.now.Add(wait)
		if r := register(a2, "user4"); r.status != http.StatusCreated {
			t.Fatalf("register after Retry-After: %d %s", r.status, r.body)
		}
		rateLimited(t, register(a2, "user5"))

		// Login per address and username (half the per-address rate: 2): wrong passwords from one address use up its
		// bucket for user0; it is then refused even with the right
		// password, and can still log in to another account. Another
		// address logs in to user0: no limit keys on the username alone.
		a4 := addr(4)
		for range 2 {
			login(a4, "user0", "wrong password").wantProblem(t, http.StatusUnauthorized, server.CodeBadCredentials)
		}
		wait = rateLimited(t, login(a4, "user0", pw("user0")))
		if r := login(a4, "user1", pw("user1")); r.status != http.StatusOK {
			t.Fatalf("login user1 from the address that used up user0's: %d %s", r.status, r.body)
		}
		if r := login(addr(7), "user0", pw("user0")); r.status != http.StatusOK {
			t.Fatalf("login user0 from another address: %d %s", r.status, r.body)
		}
		// Login per address: four accounts from one address, then a
		// fifth account (whose own bucket is full) is refused.
		a8 := addr(8)
		for _, name := range []string{"user1", "user2", "user3", "user4"} {
			if r := login(a8, name, pw(name)); r.status != http.StatusOK {
				t.Fatalf("login %s: %d %s", name, r.status, r.body)
			}
		}
		rateLimited(t, login(a8, "user0", pw("user0")))
		if r := login(addr(9), "user0", pw("user0")); r.status != http.StatusOK {
			t.Fatalf("user0 from another address: %d %s", r.status, r.body)
		}
		// The (address, user0) bucket refills.
		e.clock.now = e.clock.now.Add(wait)
		if r := login(a4, "user0", pw("user0")); r.status != http.StatusOK {
			t.Fatalf("login after Retry-After: %d %s", r.status, r.body)
		}
	})
}

// Claims are limited per requesting device (and account, see
// TestClaimsCannotBlockOthers); a refused claim takes no key.
func TestRateLimitClaim(t *testing.T) {
	cfg := server.Config{RegisterPerMinute: -1, LoginPerMinute: -1, ClaimPerMinute: 3}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		var req, tgt []*device
		for i := range 5 {
			req = append(req, e.register(fmt.Sprint("req", i)))
			tgt = append(tgt, e.register(fmt.Sprint("tgt", i)))
		}
		claim := func(d *device, users ...*device) rawResponse {
			ids := make([]protocol.UserID, len(users))
			for i, u := range users {
				ids[i] = u.user
			}
			return e.raw(nil, d.token, "POST", "/api/keys/claim", map[string]any{"users": ids})
		}
		ok := func(r rawResponse) {
			t.Helper()
			if r.status != http.StatusOK {
				t.Fatalf("claim: %d %s", r.status, r.body)
			}
		}
		// Per requester: req0 claims three targets, the fourth is refused
		// and takes nothing; another requester claims it.
		ok(claim(req[0], tgt[0]))
		ok(claim(req[0], tgt[1]))
		ok(claim(req[0], tgt[2]))
		wait := rateLimited(t, claim(req[0], tgt[3], tgt[4]))
		if n, m := tgt[3].keyCount(), tgt[4].keyCount(); n != 5 || m != 5 {
			t.Fatalf("refused claim took keys: %d and %d left", n, m)
		}
		ok(claim(req[1], tgt[3]))
		// Many requesters claim one target: none is refused for it.
		for _, r := range req[1:] {
			ok(claim(r, tgt[4]))
		}
		if n := tgt[4].keyCount(); n != 1 {
			t.Fatalf("tgt4 has %d keys, want 1", n)
		}
		// Devices claiming their own account's keys are limited as callers
		// only: req3's account has two claims left, for all its devices.
		for i := range 3 {
			r := claim(e.login(req[3].name, req[3].id), req[3])
			if i < 2 {
				ok(r)
			} else {
				rateLimited(t, r)
			}
		}
		// The requester's bucket refills.
		e.clock.now = e.clock.now.Add(wait)
		ok(claim(req[0], tgt[3]))
	})
}

// forwardingClient is a reverse proxy's connection: from ip, each request
// carrying X-Forwarded-For: xff.
func forwardingClient(t *testing.T, ip, xff string) *http.Client {
	c := clientFrom(t, ip)
	c.Transport = headerTransport{c.Transport, "X-Forwarded-For", xff}
	return c
}

type headerTransport struct {
	rt          http.RoundTripper
	name, value string
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.name, h.value)
	return h.rt.RoundTrip(r)
}

// Behind a trusted proxy each client has its own register bucket, keyed
// on the address the proxy forwards; a client that is not a trusted proxy
// cannot choose its bucket with the header.
func TestRateLimitBehindProxy(t *testing.T) {
	cfg := server.Config{RegisterPerMinute: 2, LoginPerMinute: -1, ClaimPerMinute: -1,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		n := 0
		register := func(c *http.Client) rawResponse {
			n++
			name := fmt.Sprintf("user%d", n)
			return e.raw(c, "", "POST", "/api/auth/register", creds(name, "password of "+name))
		}
		created := func(r rawResponse) {
			t.Helper()
			if r.status != http.StatusCreated {
				t.Fatalf("register: %d %s", r.status, r.body)
			}
		}
		// Two clients behind the proxy: two registrations each.
		for _, client := range []string{"198.51.100.1", "198.51.100.2"} {
			c := forwardingClient(t, "127.0.0.2", client)
			created(register(c))
			created(register(c))
			rateLimited(t, register(c))
		}
		// The proxy's own bucket is untouched.
		created(register(clientFrom(t, "127.0.0.2")))
		// A client that is not a trusted proxy: its header is ignored.
		for i := range 3 {
			r := register(forwardingClient(t, "127.0.0.3", fmt.Sprintf("203.0.113.%d", i)))
			if i < 2 {
				created(r)
			} else {
				rateLimited(t, r)
			}
		}
	})
}

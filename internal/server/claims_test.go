package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/protocol"
)

// claimRaw claims users' bundles as d and keeps the status.
func (d *device) claimRaw(users ...protocol.UserID) rawResponse {
	return d.e.raw(nil, d.token, "POST", "/api/keys/claim", map[string]any{"users": users})
}

// claimOK claims users' bundles as d, verifies them and reports how many
// came with a one-time key.
func (d *device) claimOK(t *testing.T, users ...protocol.UserID) (bundles, oneTime int) {
	t.Helper()
	ca, bs, err := d.claimOne(users...)
	if err != nil {
		t.Fatalf("%s claims: %v", d.name, err)
	}
	for _, cb := range ca.Bundles {
		if cb.OneTime {
			oneTime++
		}
	}
	return len(bs), oneTime
}

// Claims that name a user without being served (unknown users next to it,
// the same user again and again, from several callers) spend only their
// callers' allowance: a third party's claims for that user still succeed,
// with a one-time key. The caller is charged per device and per account.
func TestClaimsCannotBlockOthers(t *testing.T) {
	cfg := server.Config{RegisterPerMinute: -1, LoginPerMinute: -1, ClaimPerMinute: 3}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		victim, carol := e.register("victim"), e.register("carol")
		var mallory []*device
		for i := range 3 {
			mallory = append(mallory, e.register(fmt.Sprint("mallory", i)))
		}
		// Each attacker: three claims naming the victim and an unknown
		// user (404), then its allowance is spent (429).
		for _, m := range mallory {
			for range 3 {
				m.claimRaw(victim.user, protocol.NewUserID()).wantProblem(t, http.StatusNotFound, server.CodeNotFound)
			}
			rateLimited(t, m.claimRaw(victim.user))
		}
		if n := victim.keyCount(); n != 5 {
			t.Fatalf("refused claims took keys: %d left", n)
		}
		// The victim can still be claimed by others, with a one-time key.
		if n, ot := carol.claimOK(t, victim.user); n != 1 || ot != 1 {
			// The old per-target limit was charged before the user was
			// checked: the 404s above had spent the victim's allowance.
			t.Fatalf("carol's claim after the 404s: %d bundles, %d with a one-time key", n, ot)
		}
		// Repeated real claims: dave claims the victim until his own
		// allowance runs out; carol still claims the victim.
		dave := e.register("dave")
		for range 3 {
			if n, _ := dave.claimOK(t, victim.user, victim.user); n != 1 {
				t.Fatalf("a claim naming the victim twice gave %d bundles", n)
			}
		}
		rateLimited(t, dave.claimRaw(victim.user))
		if n, ot := carol.claimOK(t, victim.user); n != 1 || ot != 1 {
			t.Fatalf("carol's claim after dave's: %d bundles, %d with a one-time key", n, ot)
		}
		// Per account: another device of dave's account shares its
		// allowance.
		dave2 := e.login("dave", dave.id)
		rateLimited(t, dave2.claimRaw(victim.user))
		// The caller's allowance refills.
		e.clock.now = e.clock.now.Add(time.Minute)
		dave2.claimOK(t, victim.user)
	})
}

// One caller cannot drain another user's one-time keys: past its budget
// for that user it gets the bundle with the signed pre-key only, and all
// callers together take at most the target's budget; the account's own
// devices are not limited, and budgets refill with time.
func TestClaimDrainBounded(t *testing.T) {
	cfg := server.Config{RegisterPerMinute: -1, LoginPerMinute: -1, ClaimPerMinute: 1000,
		ClaimOneTimePerHour: 3, TargetOneTimePerHour: 5}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		victim := e.register("victim")
		victim.must("POST", oneTimePath, map[string]any{"preKeys": victim.oneTimeKeys(45, victim.id, protocol.OneTimePreKey)}, nil)
		if n := victim.keyCount(); n != 50 {
			t.Fatalf("victim has %d keys", n)
		}
		mallory, trudy, carol := e.register("mallory"), e.register("trudy"), e.register("carol")
		drain := func(d *device, claims int) (oneTime int) {
			for range claims {
				n, ot := d.claimOK(t, victim.user)
				if n != 1 {
					t.Fatalf("%s's claim: %d bundles", d.name, n)
				}
				oneTime += ot
			}
			return oneTime
		}
		if ot := drain(mallory, 20); ot != 3 {
			t.Fatalf("mallory got %d one-time keys in 20 claims, want 3 (its budget)", ot)
		}
		if ot := drain(trudy, 20); ot != 2 {
			t.Fatalf("trudy got %d one-time keys, want 2 (what is left of the victim's budget)", ot)
		}
		if n := victim.keyCount(); n != 45 {
			// Without the budgets 40 claims took 40 keys.
			t.Fatalf("40 claims left the victim %d keys, want 45", n)
		}
		// Others still get bundles (signed pre-key only) to seal to.
		if n, ot := carol.claimOK(t, victim.user); n != 1 || ot != 0 {
			t.Fatalf("carol: %d bundles, %d one-time", n, ot)
		}
		// The account's own devices are not limited.
		if _, ot := victim.claimOK(t, victim.user); ot != 1 {
			t.Fatalf("the victim's own claim came without a one-time key")
		}
		if got := e.metricOr0("sandi_claim_onetime_withheld_total", "budget", "caller"); got != 17 {
			t.Errorf("withheld for the caller's budget: %v, want 17", got)
		}
		if got := e.metricOr0("sandi_claim_onetime_withheld_total", "budget", "target"); got != 19 {
			t.Errorf("withheld for the target's budget: %v, want 19", got)
		}
		// An hour later both budgets are full again.
		e.clock.now = e.clock.now.Add(time.Hour)
		if ot := drain(mallory, 5); ot != 3 {
			t.Fatalf("after an hour mallory got %d one-time keys, want 3", ot)
		}
	})
}

// A claim naming more users than maxClaimUsers is refused with a stable
// code and takes nothing; one at the cap is served.
func TestClaimTooManyUsers(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		users := make([]protocol.UserID, 201)
		for i := range users {
			users[i] = bob.user
		}
		alice.claimRaw(users...).wantProblem(t, http.StatusBadRequest, server.CodeTooManyUsers)
		alice.claimRaw().wantProblem(t, http.StatusBadRequest, server.CodeTooManyUsers)
		if n := bob.keyCount(); n != 5 {
			t.Fatalf("a refused claim took keys: %d left", n)
		}
		if n, _ := alice.claimOK(t, users[:200]...); n != 1 {
			t.Fatalf("a claim of 200 names: %d bundles", n)
		}
	})
}

// A device holds at most MaxOneTimeKeys one-time keys: an upload (of
// one-time keys or a bundle) past it is refused whole with a stable code.
func TestOneTimeKeyCap(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) { // default cap, 200
		alice, bob := e.register("alice"), e.register("bob")
		upload := func(n int) error {
			return alice.do("POST", oneTimePath, map[string]any{"preKeys": alice.oneTimeKeys(n, alice.id, protocol.OneTimePreKey)}, nil)
		}
		for _, n := range []int{100, 95} {
			if err := upload(n); err != nil {
				t.Fatal(err)
			}
		}
		if n := alice.keyCount(); n != 200 {
			t.Fatalf("count %d, want 200", n)
		}
		wantCode(t, upload(1), http.StatusConflict, server.CodeTooManyPreKeys)
		// A bundle with new one-time keys is refused too.
		wantCode(t, alice.uploadBundle(false), http.StatusConflict, server.CodeTooManyPreKeys)
		if n := alice.keyCount(); n != 200 {
			t.Fatalf("refused uploads changed the count to %d", n)
		}
		// A claimed key makes room for one.
		bob.claimOK(t, alice.user)
		if err := upload(1); err != nil {
			t.Fatal(err)
		}
		if n := alice.keyCount(); n != 200 {
			t.Fatalf("count %d, want 200", n)
		}
	})
}

// Uploads of bundles and one-time keys are limited per device.
func TestUploadRateLimit(t *testing.T) {
	cfg := server.Config{UploadPerMinute: 3}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob") // one upload each
		keys := func() map[string]any {
			return map[string]any{"preKeys": alice.oneTimeKeys(1, alice.id, protocol.OneTimePreKey)}
		}
		alice.must("POST", oneTimePath, keys(), nil)
		alice.must("POST", oneTimePath, keys(), nil)
		wantCode(t, alice.do("POST", oneTimePath, keys(), nil), http.StatusTooManyRequests, server.CodeRateLimited)
		wantCode(t, alice.uploadBundle(false), http.StatusTooManyRequests, server.CodeRateLimited)
		if n := alice.keyCount(); n != 7 {
			t.Fatalf("count %d after refused uploads, want 7", n)
		}
		// Another device is not limited by alice's uploads.
		if err := bob.uploadBundle(false); err != nil {
			t.Fatal(err)
		}
		e.clock.now = e.clock.now.Add(time.Minute)
		alice.must("POST", oneTimePath, keys(), nil)
	})
}

// openEnvHooked is openEnv with hook called on the server before it
// serves (to install a Hub.Forward).
func openEnvHooked(t *testing.T, dbURL string, cfg server.Config, hook func(*server.Server)) *env {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), dbURL, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ck := &clock{now: time.Unix(1_780_000_000, 0)}
	cfg.Now = ck.Now
	cfg.Argon2Time, cfg.Argon2MemKiB, cfg.Argon2Threads = 1, 64, 1
	cfg.RegisterPerMinute, cfg.LoginPerMinute, cfg.ClaimPerMinute = -1, -1, -1
	srv := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg)
	hook(srv)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		srv.Close()
		st.Close()
	})
	return &env{t: t, url: hs.URL, st: st, srv: srv, clock: ck}
}

// A bundle change wakes the connections of its account and of the users
// that share a conversation with it, not every connection on the server.
func TestBundleWakesOnlyContacts(t *testing.T) {
	forEachDBURL(t, func(t *testing.T, dbURL string) {
		var mu sync.Mutex
		woken := map[protocol.UserID]int{}
		e := openEnvHooked(t, dbURL, server.Config{}, func(s *server.Server) {
			s.Hub().Forward = func(users []protocol.UserID, _ int64) {
				mu.Lock()
				defer mu.Unlock()
				for _, u := range users {
					woken[u]++
				}
			}
		})
		alice, bob := e.register("alice"), e.register("bob")
		if _, err := alice.create([]*device{bob}); err != nil {
			t.Fatal(err)
		}
		var strangers []*device
		for i := range 10 {
			strangers = append(strangers, e.register(fmt.Sprint("stranger", i)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, d := range append([]*device{bob}, strangers...) {
			c, err := d.dialWS(ctx, nil, d.cursor)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if d == bob {
				go func() {
					for {
						p, err := readFrame(ctx, c)
						if err != nil {
							return
						}
						mu.Lock()
						for _, ev := range p.Events {
							if ev.Kind == "device" {
								woken[protocol.UserID{}]++ // bob's socket got the device event
							}
						}
						mu.Unlock()
					}
				}()
			}
		}
		eventually(t, 5*time.Second, "11 WebSockets open", func() bool {
			return e.metricOr0("sandi_websockets_open") == 11
		})
		time.Sleep(100 * time.Millisecond) // subscribed after the gauge counts them
		mu.Lock()
		clear(woken)
		mu.Unlock()

		// A new device of alice (a first bundle: bob gets a device event)
		// and a signed pre-key rotation (no event at all).
		alice2 := e.login("alice", alice.id)
		if err := alice2.uploadBundle(false); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "bob's socket gets the device event", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return woken[protocol.UserID{}] > 0
		})
		mu.Lock()
		defer mu.Unlock()
		if woken[bob.user] == 0 {
			t.Fatalf("alice's new device did not wake bob")
		}
		var wokenStrangers []string
		for _, s := range strangers {
			if woken[s.user] > 0 {
				wokenStrangers = append(wokenStrangers, s.name)
			}
		}
		if len(wokenStrangers) > 0 {
			slices.Sort(wokenStrangers)
			t.Fatalf("bundle uploads of alice woke accounts that share no conversation with her: %v", wokenStrangers)
		}
	})
}

// The budgets' memory is bounded (MaxClaimBudgets of each kind): past it,
// newly claimed users get bundles without one-time keys (counted as
// "full"), until budgets idle for an hour are forgotten.
func TestClaimBudgetsBounded(t *testing.T) {
	cfg := server.Config{RegisterPerMinute: -1, LoginPerMinute: -1, ClaimPerMinute: 1000, MaxClaimBudgets: 3}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		caller := e.register("caller")
		var targets []*device
		for i := range 5 {
			targets = append(targets, e.register(fmt.Sprint("target", i)))
		}
		for i, tg := range targets {
			_, ot := caller.claimOK(t, tg.user)
			if want := i < 3; (ot == 1) != want {
				t.Fatalf("claim of target %d: one-time key %v, want %v", i, ot == 1, want)
			}
		}
		if got := e.metricOr0("sandi_claim_onetime_withheld_total", "budget", "full"); got != 2 {
			t.Fatalf("withheld for a full table: %v, want 2", got)
		}
		// Known targets keep their budgets.
		if _, ot := caller.claimOK(t, targets[0].user); ot != 1 {
			t.Fatalf("a budgeted target lost its one-time key")
		}
		e.clock.now = e.clock.now.Add(time.Hour + time.Second)
		if _, ot := caller.claimOK(t, targets[4].user); ot != 1 {
			t.Fatalf("after an hour a new target still gets no one-time key")
		}
	})
}

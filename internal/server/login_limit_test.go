package server_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"sandi.dev/internal/server"
)

// Wrong passwords for one account from many addresses do not lock its
// owner out: each address stays within its limits, the logins naming the
// account are delayed (from the LoginDelayAfter-th failure on) but never
// refused, and the right password logs in from yet another address. One
// address hammering one account is still refused with 429, and can still
// log in to another account.
func TestLoginLockoutNotTurnedAgainstOwner(t *testing.T) {
	const delayMax = 200 * time.Millisecond
	cfg := server.Config{RegisterPerMinute: -1, LoginPerMinute: 20, ClaimPerMinute: -1,
		LoginDelayAfter: 10, LoginDelayMax: delayMax,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		e.register("alice")
		e.register("bob")
		from := func(addr string) *http.Client { return forwardingClient(t, "127.0.0.2", addr) }
		login := func(c *http.Client, name, password string) (rawResponse, time.Duration) {
			start := time.Now()
			r := e.raw(c, "", "POST", "/api/auth/login", creds(name, password))
			return r, time.Since(start)
		}
		right := func(name string) string { return "correct horse " + name }

		for i := 1; i <= 25; i++ {
			r, took := login(from(fmt.Sprintf("198.51.100.%d", i)), "alice", "wrong password")
			r.wantProblem(t, http.StatusUnauthorized, server.CodeBadCredentials)
			if i > cfg.LoginDelayAfter && took < delayMax {
				t.Fatalf("wrong password %d for alice answered in %v: want a delay of %v after %d failures", i, took, delayMax, cfg.LoginDelayAfter)
			}
		}
		r, took := login(from("198.51.100.26"), "alice", right("alice"))
		if r.status != http.StatusOK {
			t.Fatalf("alice's right password from a 26th address: %d %s; want 200 after failures from 25 other addresses", r.status, r.body)
		}
		if took < delayMax {
			t.Fatalf("alice's login answered in %v: logins for a username under attack wait (%v) whatever their outcome", took, delayMax)
		}
		if n := e.metricOr0("sandi_login_delayed_total"); n != 16 {
			t.Fatalf("sandi_login_delayed_total = %v, want 16 (15 wrong passwords and the right one)", n)
		}

		// One address hammering alice: 10 tries (half of 20) for the
		// (address, username) pair, then 429; the address itself may
		// still log in to bob.
		c := from("203.0.113.9")
		for i := range 10 {
			r, _ := login(c, "alice", fmt.Sprint("wrong password ", i))
			r.wantProblem(t, http.StatusUnauthorized, server.CodeBadCredentials)
		}
		r, _ = login(c, "alice", right("alice"))
		rateLimited(t, r)
		if r, _ := login(c, "bob", right("bob")); r.status != http.StatusOK {
			t.Fatalf("bob from the address that hammered alice: %d %s", r.status, r.body)
		}
		// And alice, from anywhere else, still logs in.
		if r, _ := login(from("198.51.100.27"), "alice", right("alice")); r.status != http.StatusOK {
			t.Fatalf("alice from a fresh address after the hammering: %d %s", r.status, r.body)
		}
	})
}

package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func TestClientAddr(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}}}
	for _, c := range []struct {
		name   string
		peer   string
		xff    []string
		client string
	}{
		{"untrusted peer: its header is ignored", "192.0.2.9:5000", []string{"203.0.113.7"}, "192.0.2.9"},
		{"trusted peer without a header", "127.0.0.1:5000", nil, "127.0.0.1"},
		{"trusted peer", "127.0.0.1:5000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"a client's own entry before the proxy's is not believed", "127.0.0.1:5000", []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		{"trusted hops are skipped", "127.0.0.1:5000", []string{"198.51.100.1, 203.0.113.7, 10.1.2.3"}, "203.0.113.7"},
		{"one header per proxy", "127.0.0.1:5000", []string{"198.51.100.1, 203.0.113.7", "10.1.2.3"}, "203.0.113.7"},
		{"every hop trusted", "127.0.0.1:5000", []string{"10.9.9.9, 10.1.2.3"}, "10.9.9.9"},
		{"malformed entry: counted as the nearest trusted hop", "127.0.0.1:5000", []string{"203.0.113.7, nonsense, 10.1.2.3"}, "10.1.2.3"},
		{"malformed last entry: counted as the peer", "127.0.0.1:5000", []string{"203.0.113.7, 300.1.1.1"}, "127.0.0.1"},
		{"entries with ports", "127.0.0.1:5000", []string{"203.0.113.7:41234"}, "203.0.113.7"},
		{"IPv6", "[fd00::1]:5000", []string{"[2001:db8::7]:41234"}, "2001:db8::7"},
		{"IPv4-mapped IPv6 peer", "[::ffff:127.0.0.1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4-mapped entry", "127.0.0.1:5000", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: c.peer, Header: http.Header{}}
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := s.clientAddr(r); got != c.client {
				t.Errorf("clientAddr = %q, want %q", got, c.client)
			}
		})
	}
	// Without trusted proxies the peer is the client, whatever the header.
	r := &http.Request{RemoteAddr: "127.0.0.1:5000", Header: http.Header{"X-Forwarded-For": {"203.0.113.7"}}}
	if got := (&Server{}).clientAddr(r); got != "127.0.0.1" {
		t.Errorf("no trusted proxies: clientAddr = %q, want the peer", got)
	}
}

// FuzzClientAddr checks that any header gives, without a panic, the
// peer's address or one of the header's own addresses.
func FuzzClientAddr(f *testing.F) {
	f.Add("127.0.0.1:5000", "198.51.100.1, 203.0.113.7, 10.1.2.3")
	f.Add("[fd00::1]:5000", "[2001:db8::7]:41234,,nonsense")
	f.Add("192.0.2.9:5000", "")
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := &http.Request{RemoteAddr: peer, Header: http.Header{"X-Forwarded-For": {xff}}}
		got := s.clientAddr(r)
		ap, err := netip.ParseAddrPort(peer)
		if err != nil {
			if got != peer {
				t.Fatalf("unparsable peer %q gave %q", peer, got)
			}
			return
		}
		if got == ap.Addr().Unmap().String() {
			return
		}
		if !s.trustedProxy(ap.Addr().Unmap()) {
			t.Fatalf("untrusted peer %q: got %q from its header", peer, got)
		}
		for _, h := range forwardedFor([]string{xff}) {
			if a, ok := parseHop(h); ok && a.String() == got {
				return
			}
		}
		t.Fatalf("peer %q, header %q: %q is neither the peer nor a header entry", peer, xff, got)
	})
}

func TestAddrKey(t *testing.T) {
	for _, c := range []struct {
		addr string
		bits int
		key  string
	}{
		{"203.0.113.7", 64, "203.0.113.7"},
		{"::ffff:203.0.113.7", 64, "203.0.113.7"},
		{"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", 64, "2001:db8:1:3::/64"},
		{"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"},
		{"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6"},
		{"not an address", 64, "not an address"},
	} {
		if got := addrKey(c.addr, c.bits); got != c.key {
			t.Errorf("addrKey(%q, %d) = %q, want %q", c.addr, c.bits, got, c.key)
		}
	}
}

// A limiter holds at most its cap of keys however many it sees, forgets
// idle keys, and keeps limiting a key it holds.
func TestLimiterBounded(t *testing.T) {
	now := time.Unix(1_780_000_000, 0)
	l := newLimiter(2, 100, func() time.Time { return now }, nil)
	for i := range 100_000 {
		l.allow(fmt.Sprint("key", i))
		if len(l.buckets) > 100 {
			t.Fatalf("%d buckets after %d keys, cap 100", len(l.buckets), i+1)
		}
	}
	l = newLimiter(2, 100, func() time.Time { return now }, nil)
	for range 2 {
		if err := l.allow("a"); err != nil {
			t.Fatal(err)
		}
	}
	if l.allow("a") == nil {
		t.Fatal("third request in a minute allowed at 2 a minute")
	}
	now = now.Add(61 * time.Second)
	l.allow("b")
	if _, ok := l.buckets["a"]; ok || len(l.buckets) != 1 {
		t.Fatalf("idle key kept: %d buckets", len(l.buckets))
	}
}

// The login delay starts at the after-th failure for a username, doubles
// with each further one up to its cap, ends with a success or the window,
// is per username, and holds at most its cap of usernames.
func TestLoginFailuresDelay(t *testing.T) {
	now := time.Unix(1_780_000_000, 0)
	f := newLoginFailures(Config{LoginDelayAfter: 3, LoginDelayMax: time.Second, MaxRateBuckets: 100, Now: func() time.Time { return now }}, nil)
	var got []time.Duration
	for range 7 {
		got = append(got, f.delay("alice"))
		f.failed("alice")
	}
	want := []time.Duration{0, 0, 0, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
	if d := f.delay("bob"); d != 0 {
		t.Fatalf("bob delayed %v by alice's failures", d)
	}
	f.succeeded("alice")
	if d := f.delay("alice"); d != 0 {
		t.Fatalf("alice delayed %v after a success", d)
	}
	for range 3 {
		f.failed("alice")
	}
	if d := f.delay("alice"); d != 250*time.Millisecond {
		t.Fatalf("delay %v after 3 failures", d)
	}
	now = now.Add(loginFailWindow + time.Second)
	if d := f.delay("alice"); d != 0 {
		t.Fatalf("delay %v after the window", d)
	}
	if n := f.failed("alice"); n != 1 {
		t.Fatalf("%d failures counted in a new window", n)
	}
	for i := range 10_000 {
		f.failed(fmt.Sprint("user", i))
		if len(f.runs) > 100 {
			t.Fatalf("%d usernames held after %d, cap 100", len(f.runs), i+1)
		}
	}
	off := newLoginFailures(Config{LoginDelayAfter: -1, LoginDelayMax: time.Second, MaxRateBuckets: 100, Now: func() time.Time { return now }}, nil)
	for range 20 {
		off.failed("alice")
	}
	if d := off.delay("alice"); d != 0 {
		t.Fatalf("delay %v with the delay off", d)
	}
}

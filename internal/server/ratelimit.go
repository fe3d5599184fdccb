package server

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// limiter is a token bucket per key: perMinute tokens a minute, bursting to
// perMinute. It forgets idle keys.
type limiter struct {
	mu        sync.Mutex
	perMinute int
	now       func() time.Time
	buckets   map[string]*bucket
	sweptAt   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

type limiters struct {
	register, login, claim *limiter
}

func newLimiters(c Config) *limiters {
	return &limiters{
		register: newLimiter(c.RegisterPerMinute, c.Now),
		login:    newLimiter(c.LoginPerMinute, c.Now),
		claim:    newLimiter(c.ClaimPerMinute, c.Now),
	}
}

func newLimiter(perMinute int, now func() time.Time) *limiter {
	return &limiter{perMinute: perMinute, now: now, buckets: map[string]*bucket{}}
}

// allow takes one token for key or returns a 429 problem with Retry-After.
func (l *limiter) allow(key string) error {
	if l.perMinute < 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	rate := float64(l.perMinute) / 60 // tokens per second
	if now.Sub(l.sweptAt) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.at) > time.Minute {
				delete(l.buckets, k)
			}
		}
		l.sweptAt = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: float64(l.perMinute), at: now}
		l.buckets[key] = b
	}
	b.tokens = min(float64(l.perMinute), b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	if b.tokens < 1 {
		p := problem(http.StatusTooManyRequests, CodeRateLimited, "too many requests; try again later", nil)
		p.RetryAfter = int((1-b.tokens)/rate) + 1
		return p
	}
	b.tokens--
	return nil
}

// clientAddr is the caller's IP address: the TCP peer's, unless the peer
// is one of Config.TrustedProxies. A trusted proxy's X-Forwarded-For is
// read from its end (each proxy appends the address it received the
// request from), skipping the trusted proxies, and the first address that
// is not one is the caller's. A client can write anything at the start
// of the header, so nothing before that address is believed. A malformed
// entry ends the walk at the nearest trusted hop: the request is then
// counted as that proxy's.
func (s *Server) clientAddr(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := ap.Addr().Unmap()
	if !s.trustedProxy(addr) {
		return addr.String()
	}
	hops := forwardedFor(r.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseHop(hops[i])
		if !ok {
			break
		}
		addr = hop
		if !s.trustedProxy(hop) {
			break
		}
	}
	return addr.String()
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor splits X-Forwarded-For headers into their entries, in
// order (a proxy may add a header of its own rather than extend one).
func forwardedFor(values []string) []string {
	var hops []string
	for _, v := range values {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	return hops
}

// parseHop reads one X-Forwarded-For entry: an address, or an address and
// port ("203.0.113.7:41234", "[2001:db8::1]:41234").
func parseHop(h string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

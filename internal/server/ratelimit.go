package server

import (
	"net"
	"net/http"
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

// clientAddr is the caller's IP address (the server is meant to sit on
// localhost or behind a proxy the operator controls; X-Forwarded-For is not
// trusted).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

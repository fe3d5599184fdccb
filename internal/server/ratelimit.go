package server

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// limiter is a token bucket per key: perMinute tokens a minute, bursting to
// perMinute. Its memory is bounded: a key idle for a minute (its bucket
// full again) is forgotten, and at most maxKeys are held; at the cap, after
// a sweep, a random key is forgotten for each new one. Forgetting a key
// gives it a full bucket, so an attacker who fills the table refills
// buckets at random, mostly those of its own keys, and never blocks
// anyone; with IPv6 keyed by prefix, filling it takes as many prefixes.
type limiter struct {
	mu        sync.Mutex
	perMinute int
	maxKeys   int
	now       func() time.Time
	buckets   map[string]*bucket
	sweptAt   time.Time
	gauge     prometheus.Gauge
}

type bucket struct {
	tokens float64
	at     time.Time
}

type limiters struct {
	register, login, claim *limiter
	typing                 *limiter // typing notices per device (typing.go)
	settings               *limiter // changes to the account's settings per device (setting)
	conversations          *limiter // conversation changes per account (conversationChange)
	// loginUser is keyed by client address and username (loginKey): one
	// address cannot spend all its logins on one account. No limit keys
	// on the username alone, so nobody can lock an account's owner out;
	// loginFails slows the guessing of one username from many addresses.
	loginUser  *limiter
	loginFails *loginFailures
}

func newLimiters(c Config, m *limitMetrics) *limiters {
	l := func(name string, perMinute int) *limiter {
		return newLimiter(perMinute, c.MaxRateBuckets, c.Now, m.buckets.WithLabelValues(name))
	}
	perUser := c.LoginPerMinute
	if perUser > 0 {
		perUser = (perUser + 1) / 2
	}
	return &limiters{
		register:      l("register", c.RegisterPerMinute),
		login:         l("login", c.LoginPerMinute),
		claim:         l("claim", c.ClaimPerMinute),
		typing:        l("typing", c.TypingPerMinute),
		settings:      l("settings", c.SettingsPerMinute),
		conversations: l("conversations", c.ConversationsPerMinute),
		loginUser:     l("login_user", perUser),
		loginFails:    newLoginFailures(c, m.buckets.WithLabelValues("login_failures")),
	}
}

// settingsPerMinute is the default of Config.SettingsPerMinute: far above
// what a person does by hand, and a burst of 60 for a client that sends
// many at once (block statements the server lost, sent again).
const settingsPerMinute = 60

// setting wraps the handler of a route that changes the account's own
// settings and that no other limit counts (the routes wrapped in the
// table of routes.go: the block list, device names, the device list and
// removals, sessions signed out, link requests and approvals): each call
// first takes one token of the caller's device. Each of them writes to
// the database and some emit events to the account's contacts, so a
// device looping over one would otherwise write as fast as the server
// answers.
func (s *Server) setting(h handlerFunc) handlerFunc {
	return limited(s.limits.settings, func(c *call) string { return c.device.ID.String() }, h)
}

// conversationsPerMinute is the default of Config.ConversationsPerMinute:
// far above what people do by hand, with a burst of 60.
const conversationsPerMinute = 60

// conversationChange wraps the handler of a route that creates a
// conversation or changes its members or state (the routes wrapped in
// the table of routes.go): each call first takes one token of the
// caller's account, whichever of its devices makes it. Each writes rows
// (the conversation, its members, its signed records, an event for each
// member device) that stay, so an account looping over them would grow
// the database as fast as the server answers; counting by account keeps
// its devices (up to --max-devices) from multiplying the rate.
func (s *Server) conversationChange(h handlerFunc) handlerFunc {
	return limited(s.limits.conversations, func(c *call) string { return c.user().String() }, h)
}

// handlerFunc is the handler of a route of the table in routes.go.
type handlerFunc = func(http.ResponseWriter, *http.Request, *call) error

// limited wraps h so that each call first takes a token of l under the
// caller's key.
func limited(l *limiter, key func(*call) string, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		if err := l.allow(key(c)); err != nil {
			return err
		}
		return h(w, r, c)
	}
}

// loginKey is the key of the per address and username login limit.
func loginKey(addr, username string) string {
	return addr + "\x00" + username
}

// loginFailures counts the failed logins naming each username, in windows
// of loginFailWindow, whatever the address they came from. Past `after`
// failures in a window, every login naming the username waits before its
// password is checked (delay): 250 ms for the first failure past it,
// doubling with each further one, at most max. The delay comes before the
// check and whatever its outcome, so an attacker cannot learn the outcome
// sooner by giving up early; it holds no hashing slot; and it never
// refuses: the owner's right password still logs in, a little later, and
// a successful login ends the run of failures. An attacker guessing from
// many addresses then has each guess wait seconds, while each of its
// addresses stays within its own limits.
//
// Memory is bounded as the limiter's: runs older than the window are
// forgotten, and at most maxKeys usernames are held (at the cap a random
// one is forgotten, which only shortens its delay).
type loginFailures struct {
	mu      sync.Mutex
	after   int
	max     time.Duration
	maxKeys int
	now     func() time.Time
	runs    map[string]*failRun
	sweptAt time.Time
	gauge   prometheus.Gauge
}

type failRun struct {
	n     int
	start time.Time
}

const (
	loginFailWindow = 15 * time.Minute
	loginDelayBase  = 250 * time.Millisecond
)

func newLoginFailures(c Config, gauge prometheus.Gauge) *loginFailures {
	return &loginFailures{after: c.LoginDelayAfter, max: c.LoginDelayMax, maxKeys: c.MaxRateBuckets,
		now: c.Now, runs: map[string]*failRun{}, gauge: gauge}
}

// delay is how long a login naming username waits before its check.
func (f *loginFailures) delay(username string) time.Duration {
	if f.after < 0 {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[username]
	if r == nil || f.now().Sub(r.start) > loginFailWindow || r.n < f.after {
		return 0
	}
	d := loginDelayBase << min(r.n-f.after, 16)
	return min(d, f.max)
}

// failed counts a failed login naming username and returns the failures
// in its window; the count equals `after` once per window (the moment
// delays begin).
func (f *loginFailures) failed(username string) int {
	if f.after < 0 {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	r := f.runs[username]
	if r == nil {
		if len(f.runs) >= f.maxKeys || now.Sub(f.sweptAt) > time.Minute {
			f.sweep(now)
		}
		for k := range f.runs { // random order: forget a random username
			if len(f.runs) < f.maxKeys {
				break
			}
			delete(f.runs, k)
		}
		r = &failRun{start: now}
		f.runs[username] = r
		f.count()
	}
	if now.Sub(r.start) > loginFailWindow {
		r.n, r.start = 0, now
	}
	r.n++
	return r.n
}

// succeeded ends username's run of failures.
func (f *loginFailures) succeeded(username string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.runs[username]; ok {
		delete(f.runs, username)
		f.count()
	}
}

func (f *loginFailures) count() {
	if f.gauge != nil {
		f.gauge.Set(float64(len(f.runs)))
	}
}

// sweep forgets the runs older than the window, at most once a second.
func (f *loginFailures) sweep(now time.Time) {
	if now.Sub(f.sweptAt) < time.Second {
		return
	}
	for k, r := range f.runs {
		if now.Sub(r.start) > loginFailWindow {
			delete(f.runs, k)
		}
	}
	f.sweptAt = now
	f.count()
}

func newLimiter(perMinute, maxKeys int, now func() time.Time, gauge prometheus.Gauge) *limiter {
	return &limiter{perMinute: perMinute, maxKeys: maxKeys, now: now, buckets: map[string]*bucket{}, gauge: gauge}
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
	b := l.buckets[key]
	if b == nil && (len(l.buckets) >= l.maxKeys || now.Sub(l.sweptAt) > time.Minute) {
		l.sweep(now)
	}
	if b == nil {
		for k := range l.buckets { // random order: forget a random key
			if len(l.buckets) < l.maxKeys {
				break
			}
			delete(l.buckets, k)
		}
		b = &bucket{tokens: float64(l.perMinute), at: now}
		l.buckets[key] = b
		if l.gauge != nil {
			l.gauge.Set(float64(len(l.buckets)))
		}
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

// sweep forgets the keys idle for a minute (their buckets are full again),
// at most once a second when the table is at its cap.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.sweptAt) < time.Second {
		return
	}
	for k, b := range l.buckets {
		if now.Sub(b.at) > time.Minute {
			delete(l.buckets, k)
		}
	}
	l.sweptAt = now
	if l.gauge != nil {
		l.gauge.Set(float64(len(l.buckets)))
	}
}

// clientKey is what the per-address limits key on: the client address
// (clientAddr), an IPv6 one cut to Config.IPv6PrefixLen bits.
func (s *Server) clientKey(r *http.Request) string {
	return addrKey(s.clientAddr(r), s.cfg.IPv6PrefixLen)
}

// addrKey keys an address: an IPv4 address is its own key, an IPv6 one is
// keyed by its first bits ("2001:db8:1:2::/64"). Anything else (an address
// that did not parse) is its own key.
func addrKey(addr string, bits int) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	return ipKey(a, bits)
}

func ipKey(a netip.Addr, bits int) string {
	a = a.Unmap()
	if !a.Is6() || bits >= 128 {
		return a.String()
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a.String()
	}
	return p.String()
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

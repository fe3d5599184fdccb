package server

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sandi.dev/protocol"
)

// limitMetrics show an operator the server's bounds being reached.
type limitMetrics struct {
	hashSlots, hashRunning, hashPeak prometheus.Gauge
	hashes, hashRefused              prometheus.Counter
	wsRefused                        prometheus.Counter
	connsOpen                        prometheus.Gauge
	connsRefused                     prometheus.Counter
	loginDelayed                     prometheus.Counter
	buckets                          *prometheus.GaugeVec
}

func newLimitMetrics(reg *prometheus.Registry) *limitMetrics {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &limitMetrics{
		hashSlots:    g("sandi_password_hash_slots", "Password hashes that may run at once."),
		hashRunning:  g("sandi_password_hashes_running", "Password hashes running now."),
		hashPeak:     g("sandi_password_hashes_peak", "Most password hashes that ran at once since start."),
		hashes:       c("sandi_password_hashes_total", "Password hashes computed (one per login or registration)."),
		hashRefused:  c("sandi_password_hashes_refused_total", "Logins and registrations refused with 503 overloaded: no hashing slot within the wait."),
		wsRefused:    c("sandi_websockets_refused_total", "WebSockets refused: the device or account was at its cap."),
		connsOpen:    g("sandi_connections_open", "TCP connections open on the API listener."),
		connsRefused: c("sandi_connections_refused_total", "TCP connections closed at accept: their client address was at its cap."),
		loginDelayed: c("sandi_login_delayed_total", "Logins delayed because of repeated failures for their username (see LoginDelayAfter)."),
		buckets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sandi_ratelimit_buckets", Help: "Rate-limit buckets held, by limit.",
		}, []string{"limit"}),
	}
	reg.MustRegister(m.hashSlots, m.hashRunning, m.hashPeak, m.hashes, m.hashRefused, m.wsRefused,
		m.connsOpen, m.connsRefused, m.loginDelayed, m.buckets)
	return m
}

// CodeOverloaded is the problem code of a request refused because the
// server is at a global bound (password hashing): 503 with Retry-After.
const CodeOverloaded = "overloaded"

// hashGate bounds the Argon2id computations running at once. Each takes
// Config.Argon2MemKiB of memory for its duration, so without a global bound
// a few hundred logins from as many addresses take gigabytes, and the Go
// runtime keeps the heap it grew. With the bound, the hashing memory never
// exceeds slots × Argon2MemKiB.
type hashGate struct {
	slots chan struct{}
	wait  time.Duration
	m     *limitMetrics

	log *slog.Logger

	mu       sync.Mutex
	running  int
	peak     int
	refused  int       // since the last log line
	loggedAt time.Time // of the last log line
}

// hashSlots is the number of hashes that may run at once: the configured
// value, else GOMAXPROCS (hashing is CPU-bound: more would only queue on
// the CPUs) bounded by HashMemoryMiB / Argon2MemKiB, and at least 1.
func hashSlots(c Config) int {
	if c.HashConcurrency > 0 {
		return c.HashConcurrency
	}
	n := runtime.GOMAXPROCS(0)
	if byMem := int(int64(c.HashMemoryMiB) * 1024 / int64(max(c.Argon2MemKiB, 1))); byMem < n {
		n = byMem
	}
	return max(n, 1)
}

func newHashGate(c Config, m *limitMetrics, log *slog.Logger) *hashGate {
	g := &hashGate{slots: make(chan struct{}, hashSlots(c)), wait: c.HashWait, m: m, log: log}
	m.hashSlots.Set(float64(cap(g.slots)))
	return g
}

// run calls f, a password hash, in a slot. It waits for a slot at most
// g.wait (or until ctx ends), and then answers 503 overloaded with
// Retry-After. It counts every hash it runs.
func (g *hashGate) run(ctx context.Context, f func()) error {
	hashesWanted.Add(1) // collectAfter leaves the heap to a hash that follows
	defer hashesWanted.Add(-1)
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
	case <-t.C:
		return g.refuse(nil)
	case <-ctx.Done(): // the client has gone: nobody reads the answer
		return g.refuse(ctx.Err())
	}
	g.mu.Lock()
	g.running++
	if g.running > g.peak {
		g.peak = g.running
		g.m.hashPeak.Set(float64(g.peak))
	}
	g.mu.Unlock()
	g.m.hashRunning.Inc()
	defer func() {
		g.m.hashRunning.Dec()
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
		<-g.slots
	}()
	g.m.hashes.Inc()
	f()
	return nil
}

func (g *hashGate) refuse(cause error) error {
	g.m.hashRefused.Inc()
	g.mu.Lock()
	g.refused++
	// One line every 10 s at most, however many are refused.
	if now := time.Now(); now.Sub(g.loggedAt) >= 10*time.Second {
		g.log.Warn("password hashing at capacity: logins and registrations refused", "slots", cap(g.slots), "refused", g.refused)
		g.loggedAt, g.refused = now, 0
	}
	g.mu.Unlock()
	p := problem(http.StatusServiceUnavailable, CodeOverloaded, "the server is busy; try again shortly", cause)
	p.RetryAfter = 1
	return p
}

// wsCounter caps the WebSockets open at once per device and per account,
// so that one token (or one account's many devices) cannot hold an
// unbounded share of the server's connections and wake-ups.
type wsCounter struct {
	perDevice, perAccount int
	mu                    sync.Mutex
	devices               map[protocol.DeviceID]int
	accounts              map[protocol.UserID]int
	refused               prometheus.Counter
}

func newWSCounter(c Config, m *limitMetrics) *wsCounter {
	return &wsCounter{perDevice: c.MaxWebSocketsPerDevice, perAccount: c.MaxWebSocketsPerAccount, refused: m.wsRefused,
		devices: map[protocol.DeviceID]int{}, accounts: map[protocol.UserID]int{}}
}

// acquire counts a WebSocket of ref, or returns a 429 problem if the
// device or the account is at its cap; release undoes it.
func (w *wsCounter) acquire(ref protocol.DeviceRef) (release func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.devices[ref.Device] >= w.perDevice || w.accounts[ref.User] >= w.perAccount {
		w.refused.Inc()
		p := problem(http.StatusTooManyRequests, CodeRateLimited, "too many live connections for this device or account", nil)
		p.RetryAfter = 5
		return nil, p
	}
	w.devices[ref.Device]++
	w.accounts[ref.User]++
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.devices[ref.Device]--; w.devices[ref.Device] <= 0 {
			delete(w.devices, ref.Device)
		}
		if w.accounts[ref.User]--; w.accounts[ref.User] <= 0 {
			delete(w.accounts, ref.User)
		}
	}, nil
}

// Package server is sandi's HTTP and WebSocket API over a store.Store. It
// verifies every signed protocol object with package protocol before storing
// it, checks on every route that the caller may see what it names, and never
// handles private keys (it cannot import sandi.dev/protocol/secret; a test
// enforces that).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"sandi.dev/internal/store"
)

// Config tunes a Server. Zero values take the defaults.
type Config struct {
	// Rotation policy: a conversation needs a new epoch after this many
	// messages or this age (protocol.md §7.5).
	RotateAfterMessages int           // default 100
	RotateAfterAge      time.Duration // default 7 days
	// LowPreKeys is the one-time pre-key count below which a device is told
	// to upload more (default 20).
	LowPreKeys int
	// Argon2 parameters for password hashing (defaults: 2 passes, 19 MiB, 1 lane).
	Argon2Time    uint32
	Argon2MemKiB  uint32
	Argon2Threads uint8
	// Rate limits, per minute; 0 takes the default, a negative value disables.
	RegisterPerMinute int // per client address, default 10
	LoginPerMinute    int // per client address and per username, default 20
	ClaimPerMinute    int // per requesting device and per target user, default 120
	// TrustedProxies are the reverse proxies whose X-Forwarded-For gives
	// the client address the rate limits key on (see clientAddr). Without
	// them the client address is the TCP peer's, and every client behind
	// a proxy shares the proxy's limits.
	TrustedProxies []netip.Prefix
	// MaxBodyBytes caps request bodies other than messages (default 4 MiB).
	MaxBodyBytes int64
	// SessionIdle is how long a token may go unused before it expires
	// (default 90 days; negative: never). See sessions.go.
	SessionIdle time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.RotateAfterMessages == 0 {
		c.RotateAfterMessages = 100
	}
	if c.RotateAfterAge == 0 {
		c.RotateAfterAge = 7 * 24 * time.Hour
	}
	if c.LowPreKeys == 0 {
		c.LowPreKeys = 20
	}
	if c.Argon2Time == 0 {
		c.Argon2Time, c.Argon2MemKiB, c.Argon2Threads = 2, 19*1024, 1
	}
	if c.RegisterPerMinute == 0 {
		c.RegisterPerMinute = 10
	}
	if c.LoginPerMinute == 0 {
		c.LoginPerMinute = 20
	}
	if c.ClaimPerMinute == 0 {
		c.ClaimPerMinute = 120
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server serves the API. Create it with New.
type Server struct {
	cfg     Config
	store   store.Store
	log     *slog.Logger
	hub     *Hub
	metrics *metrics
	limits  *limiters
	mux     *http.ServeMux
	chains  chainCache
	idents  identityCache
}

// New returns a Server over st. bus may be nil (in-process fan-out only).
func New(st store.Store, log *slog.Logger, cfg Config) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, store: st, log: log, hub: NewHub(), metrics: newMetrics()}
	s.limits = newLimiters(cfg)
	s.mux = http.NewServeMux()
	for _, rt := range s.routes() {
		s.mux.Handle(rt.Method+" "+rt.Pattern, s.instrument(rt, s.wrap(rt)))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			s.writeError(w, r, problem(http.StatusServiceUnavailable, CodeUnavailable, "database unreachable", err))
			return
		}
		w.Write([]byte("ready\n"))
	})
	s.mux.Handle("GET /metrics", s.metrics.handler())
	return s
}

// Handler returns the HTTP handler of the API, /healthz, /readyz and /metrics.
func (s *Server) Handler() http.Handler { return s.mux }

// Mount adds a handler for other paths (the web client) to the server's mux.
func (s *Server) Mount(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Hub returns the live-event hub (cmd/sandi wires a cross-node bus to it).
func (s *Server) Hub() *Hub { return s.hub }

// Close ends the live connections (WebSockets) with a going-away close
// and waits, a few seconds at most, for them to finish. Call it after
// http.Server.Shutdown, which does not wait for hijacked connections, and
// before closing the store.
func (s *Server) Close() {
	s.hub.Close()
	if !s.hub.wait(6 * time.Second) {
		s.log.Warn("close: live connections still open")
	}
}

func (s *Server) now() int64 { return s.cfg.Now().UnixMilli() }

// decode reads a JSON body of at most limit bytes into v, refusing unknown
// fields and trailing data.
func decode(r *http.Request, v any, limit int64) error {
	body := http.MaxBytesReader(nil, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return problem(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body too large", err)
		}
		return badRequest("request body is not the expected JSON: "+err.Error(), err)
	}
	if dec.More() {
		return badRequest("trailing data after the JSON body", nil)
	}
	return nil
}

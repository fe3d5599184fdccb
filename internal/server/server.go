// Package server is sandi's HTTP and WebSocket API over a store.Store. It
// verifies every signed protocol object with package protocol before storing
// it, checks on every route that the caller may see what it names, and never
// handles private keys (it cannot import sandi.dev/protocol/secret; a test
// enforces that).
package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"sandi.dev/internal/blob"
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
	LoginPerMinute    int // per client address, default 20; per client address and username, half of it (rounded up)
	ClaimPerMinute    int // claims per requesting device and per its account, default 120; negative: every claim limit off
	TypingPerMinute   int // typing notices per device, default 60 (typing.go)
	// SettingsPerMinute: changes a device makes to its account's own
	// settings, which no other limit counts (block list, device names,
	// device list and removals, sessions signed out, link requests and
	// approvals), per device, default 60 (ratelimit.go).
	SettingsPerMinute int
	// ConversationsPerMinute: conversations an account creates and
	// membership and state changes it makes (members added or removed,
	// leaving, renames and timers), which the other limits do not count,
	// per account, default 60 (ratelimit.go). Messages and key rotations
	// are not counted.
	ConversationsPerMinute int
	// Pre-key limits (see claims.go); 0 takes the default, negative
	// disables (except MaxClaimBudgets).
	MaxOneTimeKeys       int // one-time keys a device may hold, default 200
	UploadPerMinute      int // bundle and one-time key uploads per device, default 60
	ClaimOneTimePerHour  int // one-time keys a caller account takes of one target user, default 10
	TargetOneTimePerHour int // one-time keys all callers take of one target user, default 60
	MaxClaimBudgets      int // one-time key budgets remembered, of each kind, default 100,000
	// TrustedProxies are the reverse proxies whose X-Forwarded-For gives
	// the client address the rate limits key on (see clientAddr). Without
	// them the client address is the TCP peer's, and every client behind
	// a proxy shares the proxy's limits.
	TrustedProxies []netip.Prefix
	// IPv6PrefixLen is the prefix an IPv6 client address is keyed by, in
	// the rate limits and the per-address connection cap (default 64: one
	// subscriber usually holds a whole /64). IPv4 addresses are keyed whole.
	IPv6PrefixLen int
	// Login delay (see loginFailures): once LoginDelayAfter logins naming
	// one username have failed within 15 minutes (default 10; negative:
	// never), each further login naming it, from any address, waits
	// before its password is checked: 250 ms, doubling with each further
	// failure, at most LoginDelayMax (default 4 s). A delay, never a
	// refusal: the right password still logs in.
	LoginDelayAfter int
	LoginDelayMax   time.Duration
	// MaxRateBuckets caps the keys each rate limit remembers (default
	// 100,000); at the cap a random one is forgotten (see limiter).
	MaxRateBuckets int
	// MaxBodyBytes caps request bodies other than messages (default 4 MiB).
	MaxBodyBytes int64

	// Password hashing: at most HashConcurrency Argon2id hashes run at once
	// (default: GOMAXPROCS, but no more than fit in HashMemoryMiB, default
	// 256, at Argon2MemKiB each). A login or registration waits up to
	// HashWait (default 1 s) for a slot, then gets 503 overloaded.
	HashConcurrency int
	HashMemoryMiB   int
	HashWait        time.Duration

	// Connections (see HTTPServer and Listener): timeouts of the HTTP
	// server (defaults: headers 10 s, whole request 30 s, response 60 s,
	// idle keep-alive 90 s), and open connections per client address
	// (default 256; negative: no cap). Trusted proxies have no cap.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxConnsPerAddr   int
	// WebSockets: a ping after WebSocketPing without traffic (default and
	// at most 20 s, the store poll interval) that must be answered within
	// WebSocketPongWait (default 15 s), and at most
	// MaxWebSocketsPerDevice (default 4) and MaxWebSocketsPerAccount
	// (default 64) open at once.
	WebSocketPing           time.Duration
	WebSocketPongWait       time.Duration
	MaxWebSocketsPerDevice  int
	MaxWebSocketsPerAccount int

	// Metrics: with MetricsToken set, GET /metrics answers only requests
	// that carry it as a bearer token. With MetricsOff, Handler does not
	// serve /metrics at all (MetricsHandler serves it on another address).
	MetricsToken string
	MetricsOff   bool

	// Attachment blobs (blobs.go). Blobs is where their ciphertext is kept
	// (nil: the blob routes answer 503). MaxBlobSize caps a blob's
	// ciphertext (default DefaultMaxBlob); BlobQuota caps the bytes of an
	// account's live blobs (default DefaultBlobQuota; negative: no cap);
	// MaxOpenUploads caps its unfinished uploads (default 16; negative: no
	// cap); BlobUploadsPerMinute limits the uploads and parts a device
	// sends (default 600; negative: off); BlobTransferTimeout is the time
	// one part's upload or one download may take (default 10 minutes).
	// UploadPace is the bytes a second that the uploads of the server
	// read together while messages are sent (within paceWindow of a
	// send): default DefaultUploadPacePerCore for each core the server
	// may use (GOMAXPROCS); negative: uploads are not paced.
	UploadPace           int64
	Blobs                blob.Store
	MaxBlobSize          int64
	BlobQuota            int64
	MaxOpenUploads       int
	BlobUploadsPerMinute int
	BlobTransferTimeout  time.Duration

	// NewContactsPerDay caps the accounts one account may name in new
	// conversations and member additions while sharing no conversation
	// with them, in any 24 hours (default 100; negative: no cap). See
	// blocks.go.
	NewContactsPerDay int
	// MaxBlocks caps the accounts on one account's block list: blocked,
	// or unblocked with the signed unblock kept (default DefaultMaxBlocks;
	// negative: no cap). See blocks.go.
	MaxBlocks int
	// MaxDevices caps an account's devices that are not revoked: a login
	// past it is refused (default DefaultMaxDevices; negative: no cap).
	// See sessions.go.
	MaxDevices int

	// SessionIdle is how long a token may go unused before it expires
	// (default 90 days; negative: never). See sessions.go.
	SessionIdle time.Duration
	// StreamStuckAfter: on PostgreSQL, /readyz answers 503 once an
	// observation of the event stream has waited this long to settle
	// (default 10 s; see stream.go).
	StreamStuckAfter time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.StreamStuckAfter == 0 {
		c.StreamStuckAfter = 10 * time.Second
	}
	if c.RotateAfterMessages == 0 {
		c.RotateAfterMessages = 100
	}
	if c.RotateAfterAge == 0 {
		c.RotateAfterAge = 7 * 24 * time.Hour
	}
	if c.LowPreKeys == 0 {
		c.LowPreKeys = 20
	}
	if c.NewContactsPerDay == 0 {
		c.NewContactsPerDay = 100
	}
	if c.MaxBlocks == 0 {
		c.MaxBlocks = DefaultMaxBlocks
	}
	if c.MaxDevices == 0 {
		c.MaxDevices = DefaultMaxDevices
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
	if c.TypingPerMinute == 0 {
		c.TypingPerMinute = typingPerMinute
	}
	if c.SettingsPerMinute == 0 {
		c.SettingsPerMinute = settingsPerMinute
	}
	if c.ConversationsPerMinute == 0 {
		c.ConversationsPerMinute = conversationsPerMinute
	}
	if c.LoginDelayAfter == 0 {
		c.LoginDelayAfter = 10
	}
	if c.LoginDelayMax <= 0 {
		c.LoginDelayMax = 4 * time.Second
	}
	if c.ClaimPerMinute == 0 {
		c.ClaimPerMinute = 120
	}
	if c.IPv6PrefixLen <= 0 || c.IPv6PrefixLen > 128 {
		c.IPv6PrefixLen = 64
	}
	if c.MaxRateBuckets <= 0 {
		c.MaxRateBuckets = 100_000
	}
	if c.HashMemoryMiB <= 0 {
		c.HashMemoryMiB = 256
	}
	if c.HashWait <= 0 {
		c.HashWait = time.Second
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDur(&c.ReadHeaderTimeout, 10*time.Second)
	setDur(&c.ReadTimeout, 30*time.Second)
	setDur(&c.WriteTimeout, 60*time.Second)
	setDur(&c.IdleTimeout, 90*time.Second)
	setDur(&c.WebSocketPing, pollInterval)
	setDur(&c.WebSocketPongWait, 15*time.Second)
	if c.MaxConnsPerAddr == 0 {
		c.MaxConnsPerAddr = 256
	}
	if c.MaxWebSocketsPerDevice <= 0 {
		c.MaxWebSocketsPerDevice = 4
	}
	if c.MaxWebSocketsPerAccount <= 0 {
		c.MaxWebSocketsPerAccount = 64
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
	c.blobDefaults()
}

// Server serves the API. Create it with New.
type Server struct {
	cfg     Config
	store   store.Store
	log     *slog.Logger
	hub     *Hub
	metrics *metrics
	limits  *limiters
	// keyLimits are the pre-key limits (claims.go).
	keyLimits *keyLimits
	// stream is the store's event stream head, when it has one to watch
	// (stream.go).
	stream  streamHeader
	lm      *limitMetrics
	hashes  *hashGate
	sockets *wsCounter
	// dummyHash is a password hash of the configured cost that no password
	// matches in practice: a login for an unknown username checks against
	// it, so that it costs one hash, as a login for a known one does.
	dummyHash string
	blobRate  *limiter     // blob uploads and parts, per device
	blobPing  blobPing     // /readyz's shared check of the blob store
	sending   atomic.Int64 // message sends in their handler (see yieldReader)
	// uploadSlots bounds the uploads written at once to a local blob
	// store (yieldReader); nil for a store on another machine.
	uploadSlots chan struct{}
	uploadPace  *uploadPacer // nil: uploads not paced beside sends
	mux         *http.ServeMux
	chains      chainCache
	idents      identityCache
	cluster     *cluster // nil unless JoinCluster
}

// New returns a Server over st. bus may be nil (in-process fan-out only).
func New(st store.Store, log *slog.Logger, cfg Config) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, store: st, log: log, hub: NewHub(), metrics: newMetrics()}
	s.lm = newLimitMetrics(s.metrics.reg)
	s.limits = newLimiters(cfg, s.lm)
	s.setupKeyLimits()
	s.hashes = newHashGate(cfg, s.lm, log)
	s.sockets = newWSCounter(cfg, s.lm)
	if l, ok := cfg.Blobs.(blob.Local); ok && l.Local() {
		s.uploadSlots = newUploadSlots()
	}
	s.uploadPace = newUploadPacer(cfg.UploadPace, paceWindow, s.metrics.uploadPaced)
	s.blobRate = newLimiter(cfg.BlobUploadsPerMinute, cfg.MaxRateBuckets, cfg.Now, s.lm.buckets.WithLabelValues("blob_upload"))
	s.dummyHash = s.hashPassword(rand.Text())
	s.watchStream()
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
		if p := s.streamStuck(); p != nil {
			s.writeError(w, r, p)
			return
		}
		// Still ready without NATS (the node delivers by polling) or
		// without its blob store (messages flow; attachments answer 503
		// until it is back, and every node of a cluster shares it, so
		// taking them all out of service would stop the messages too).
		var degraded []string
		if joined, up := s.ClusterConnected(); joined && !up {
			degraded = append(degraded, "NATS unreachable, live delivery from other nodes by polling")
		}
		if err := s.blobPing.check(ctx, s); err != nil {
			degraded = append(degraded, "blob store unreachable, attachments refused")
		}
		if len(degraded) > 0 {
			w.Write([]byte("ready (degraded: " + strings.Join(degraded, "; ") + ")\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	if !cfg.MetricsOff {
		s.mux.Handle("GET /metrics", s.MetricsHandler())
	}
	return s
}

// MetricsHandler serves the Prometheus metrics, to a request that carries
// Config.MetricsToken as a bearer token if one is set.
func (s *Server) MetricsHandler() http.Handler {
	h := s.metrics.handler()
	if s.cfg.MetricsToken == "" {
		return h
	}
	want := hashToken(s.cfg.MetricsToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare(hashToken(bearer(r)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			s.writeError(w, r, problem(http.StatusUnauthorized, CodeUnauthenticated, "the metrics token is required", nil))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Handler returns the HTTP handler of the API, /healthz, /readyz and
// /metrics (unless Config.MetricsOff).
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
	if s.cluster != nil {
		s.cluster.leave()
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
		return badRequest("request body is not the expected JSON: "+jsonProblem(err), err)
	}
	if dec.More() {
		return badRequest("trailing data after the JSON body", nil)
	}
	return nil
}

// jsonProblem says what is wrong with a request body in terms of JSON,
// for the client: encoding/json's own texts name Go types and fields
// ("cannot unmarshal number into Go struct field credentials.username of
// type string"), which tell a client about the server's code, not its
// request.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "empty body"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body ends in the middle of a value"
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "the body is not a JSON " + jsonKind(typ.Type)
		}
		return fmt.Sprintf("field %q is not a JSON %s", typ.Field, jsonKind(typ.Type))
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + f // f is the client's own field name, quoted
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return "the body was not received in time"
		}
		return "the body could not be read"
	}
	// What remains is a value's own check (the protocol package's parsers
	// of IDs and keys), whose texts are written for clients, or another
	// text of the standard library's, which is not.
	msg := err.Error()
	if strings.HasPrefix(msg, "json: ") || strings.HasPrefix(msg, "http: ") {
		return "the body could not be read as JSON"
	}
	return msg
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// jsonKind names the JSON kind that decodes into t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	if t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "value"
}

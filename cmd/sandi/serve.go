package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/web"
)

// serveConfig is what `sandi serve` reads from flags and environment.
type serveConfig struct {
	addr, data, db, logLevel string
	trustedProxies           []netip.Prefix
	metricsAddr              string
	nats                     string        // NATS URL of the cluster; empty: a node alone
	limits                   server.Config // the limits set from flags
	// Pre-key limits (server.Config; 0 takes the default).
	claimRate, claimOneTime, targetOneTime, maxOneTime, uploadRate int
	newContacts                                                    int
	sessionIdle                                                    time.Duration // negative: tokens never expire
	// Attachment blobs: where (see openBlobStore) and their limits.
	blobs              string
	maxBlob, blobQuota int64 // blobQuota negative: no cap
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func parseServe(args []string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", envOr("SANDI_ADDR", "127.0.0.1:8080"), "listen address (env SANDI_ADDR)")
	fs.StringVar(&c.data, "data", envOr("SANDI_DATA", "sandi-data"), "data directory for the SQLite database (env SANDI_DATA)")
	fs.StringVar(&c.db, "db", envOr("SANDI_DB", ""), "database: empty for SQLite in the data directory, a SQLite file ending in .db or .sqlite, or PostgreSQL as postgres://… or 'host=… dbname=…' (env SANDI_DB)")
	fs.StringVar(&c.logLevel, "log-level", envOr("SANDI_LOG_LEVEL", "info"), "debug, info, warn or error (env SANDI_LOG_LEVEL)")
	proxies := fs.String("trusted-proxies", envOr("SANDI_TRUSTED_PROXIES", ""), "reverse proxies whose X-Forwarded-For names the client, for the rate limits: addresses or CIDR prefixes, comma-separated (env SANDI_TRUSTED_PROXIES)")
	fs.StringVar(&c.nats, "nats", envOr("SANDI_NATS", ""), "join a cluster of nodes over one PostgreSQL database through this NATS server, nats://host:4222 (env SANDI_NATS); empty: this node runs alone")
	fs.StringVar(&c.metricsAddr, "metrics-addr", envOr("SANDI_METRICS_ADDR", ""), "serve /metrics on this address only, not on --addr (env SANDI_METRICS_ADDR)")
	fs.StringVar(&c.limits.MetricsToken, "metrics-token", envOr("SANDI_METRICS_TOKEN", ""), "require this bearer token on /metrics (env SANDI_METRICS_TOKEN)")
	// Numeric limits: flag, else environment, else default.
	var errs []string
	intFlag := func(p *int, name, env string, def int, usage string) {
		if v := os.Getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a number", env, v))
			}
			def = n
		}
		fs.IntVar(p, name, def, usage+" (env "+env+")")
	}
	durFlag := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		if v := os.Getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a duration", env, v))
			}
			def = d
		}
		fs.DurationVar(p, name, def, usage+" (env "+env+")")
	}
	l := &c.limits
	intFlag(&l.MaxConnsPerAddr, "max-conns-per-addr", "SANDI_MAX_CONNS_PER_ADDR", 256, "open connections per client address (IPv6: per prefix); 0: no cap")
	intFlag(&l.IPv6PrefixLen, "ipv6-prefix", "SANDI_IPV6_PREFIX", 64, "prefix length an IPv6 client is keyed by in the rate limits and the connection cap")
	intFlag(&l.HashMemoryMiB, "hash-memory", "SANDI_HASH_MEMORY", 256, "MiB of memory password hashing may use at once (19 MiB a hash)")
	intFlag(&l.HashConcurrency, "hash-concurrency", "SANDI_HASH_CONCURRENCY", 0, "password hashes at once; 0: GOMAXPROCS, within --hash-memory")
	intFlag(&l.MaxWebSocketsPerDevice, "max-websockets-per-device", "SANDI_MAX_WEBSOCKETS_PER_DEVICE", 4, "open WebSockets per device")
	intFlag(&l.MaxWebSocketsPerAccount, "max-websockets-per-account", "SANDI_MAX_WEBSOCKETS_PER_ACCOUNT", 64, "open WebSockets per account")
	durFlag(&l.ReadTimeout, "read-timeout", "SANDI_READ_TIMEOUT", 30*time.Second, "time to read a whole request")
	durFlag(&l.WriteTimeout, "write-timeout", "SANDI_WRITE_TIMEOUT", 60*time.Second, "time to write a response")
	durFlag(&l.IdleTimeout, "idle-timeout", "SANDI_IDLE_TIMEOUT", 90*time.Second, "time an idle keep-alive connection stays open")
	intFlag(&c.claimRate, "claim-rate", "SANDI_CLAIM_RATE", 0, "key claims a minute per device and per account, 0: the default, 120; negative turns every claim limit off")
	intFlag(&c.claimOneTime, "claim-onetime-per-hour", "SANDI_CLAIM_ONETIME_PER_HOUR", 0, "claims with one-time keys an account makes of one user an hour, 0: the default, 10")
	intFlag(&c.newContacts, "new-contacts-per-day", "SANDI_NEW_CONTACTS_PER_DAY", 0, "accounts one account may add to conversations in 24 hours while sharing none with them, 0: the default, 100; negative: no cap")
	intFlag(&l.MaxDevices, "max-devices", "SANDI_MAX_DEVICES", 0, "devices one account may have signed in (not revoked), 0: the default, 100; negative: no cap")
	intFlag(&l.MaxBlocks, "max-blocks", "SANDI_MAX_BLOCKS", 0, "accounts one account's block list may hold (blocked, or unblocked with its signed unblock kept), 0: the default, 10000; negative: no cap")
	intFlag(&c.targetOneTime, "target-onetime-per-hour", "SANDI_TARGET_ONETIME_PER_HOUR", 0, "claims with one-time keys all accounts make of one user an hour, 0: the default, 60")
	intFlag(&c.maxOneTime, "max-onetime-keys", "SANDI_MAX_ONETIME_KEYS", 0, "one-time pre-keys a device may hold, 0: the default, 200; negative: no cap")
	intFlag(&c.uploadRate, "upload-rate", "SANDI_UPLOAD_RATE", 0, "bundle and one-time key uploads a minute per device, 0: the default, 60")
	intFlag(&l.SettingsPerMinute, "settings-rate", "SANDI_SETTINGS_RATE", 0, "changes a minute per device to the account's settings (block list, device names and list, removals, sign-outs, links), 0: the default, 60; negative: off")
	intFlag(&l.ConversationsPerMinute, "conversation-rate", "SANDI_CONVERSATION_RATE", 0, "conversations created and member or state changes a minute per account, 0: the default, 60; negative: off")
	fs.StringVar(&c.blobs, "blobs", envOr("SANDI_BLOBS", ""), "where attachment ciphertext is kept: a directory (default: blobs in the data directory) or an s3:// URL (env SANDI_BLOBS)")
	maxBlob := fs.String("max-blob", envOr("SANDI_MAX_BLOB", "101MiB"), "largest attachment, in ciphertext bytes (KiB, MiB, GiB suffixes; 101MiB holds 100 MiB of plaintext) (env SANDI_MAX_BLOB)")
	blobQuota := fs.String("blob-quota", envOr("SANDI_BLOB_QUOTA", "1GiB"), "attachment bytes an account may keep, 0 for no cap (env SANDI_BLOB_QUOTA)")
	uploadPace := fs.String("upload-pace", envOr("SANDI_UPLOAD_PACE", ""), "bytes a second that all uploads together may read while messages are sent (KiB, MiB, GiB suffixes), so that sends keep the cores; empty: 16MiB for each core, 0: no pace (env SANDI_UPLOAD_PACE)")
	idle := fs.String("session-idle", envOr("SANDI_SESSION_IDLE", "90d"), "a sign-in token unused this long expires: a duration such as 90d or 720h, or 0 for never (env SANDI_SESSION_IDLE)")
	if err := fs.Parse(args); err != nil {
		return c, usageError{err.Error()}
	}
	if len(errs) > 0 {
		return c, usageError{strings.Join(errs, "; ")}
	}
	if fs.NArg() != 0 {
		return c, usageError{"serve takes no arguments"}
	}
	switch {
	case l.MaxConnsPerAddr < 0:
		return c, usageError{"--max-conns-per-addr: a count, or 0 for no cap"}
	case l.MaxConnsPerAddr == 0:
		l.MaxConnsPerAddr = -1
	}
	if l.IPv6PrefixLen < 1 || l.IPv6PrefixLen > 128 {
		return c, usageError{"--ipv6-prefix: a prefix length from 1 to 128"}
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"--hash-memory", l.HashMemoryMiB}, {"--max-websockets-per-device", l.MaxWebSocketsPerDevice}, {"--max-websockets-per-account", l.MaxWebSocketsPerAccount}} {
		if v.n < 1 {
			return c, usageError{v.name + ": at least 1"}
		}
	}
	if l.HashConcurrency < 0 {
		return c, usageError{"--hash-concurrency: a count, or 0 for the default"}
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"--read-timeout", l.ReadTimeout}, {"--write-timeout", l.WriteTimeout}, {"--idle-timeout", l.IdleTimeout}} {
		if v.d <= 0 {
			return c, usageError{v.name + ": a positive duration such as 30s"}
		}
	}
	var err error
	if c.sessionIdle, err = parseIdle(*idle); err != nil {
		return c, usageError{"--session-idle: " + err.Error()}
	}
	if c.maxBlob, err = parseSize(*maxBlob); err != nil || c.maxBlob < 1 {
		return c, usageError{"--max-blob: a size such as 101MiB, at least 1 byte"}
	}
	if c.blobQuota, err = parseSize(*blobQuota); err != nil {
		return c, usageError{"--blob-quota: a size such as 1GiB, or 0 for no cap"}
	}
	if c.blobQuota == 0 {
		c.blobQuota = -1
	}
	if *uploadPace != "" {
		if l.UploadPace, err = parseSize(*uploadPace); err != nil || l.UploadPace < 0 {
			return c, usageError{"--upload-pace: bytes a second such as 32MiB, or 0 for no pace"}
		}
		if l.UploadPace == 0 {
			l.UploadPace = -1
		}
	}
	if c.blobs == "" {
		c.blobs = filepath.Join(c.data, "blobs")
	}
	if c.trustedProxies, err = parsePrefixes(*proxies); err != nil {
		return c, usageError{"--trusted-proxies: " + err.Error()}
	}
	if c.db, err = databaseURL(c.db, c.data); err != nil {
		return c, usageError{"--db: " + err.Error()}
	}
	if c.nats != "" && !sqlstore.IsPostgres(c.db) {
		return c, usageError{"--nats: the nodes of a cluster share a PostgreSQL database: give --db postgres://…"}
	}
	return c, nil
}

// databaseURL checks --db and returns what sqlstore.Open takes: a
// postgres:// or postgresql:// URL as it is; a PostgreSQL key=value
// string ("host=… dbname=…") as the equivalent postgres:// URL; a path
// ending in .db or .sqlite as it is; empty as sandi.db in the data
// directory. Anything else is refused, so that a mistyped PostgreSQL
// setting never becomes a SQLite file of that name.
func databaseURL(db, data string) (string, error) {
	switch {
	case db == "":
		return filepath.Join(data, "sandi.db"), nil
	case sqlstore.IsPostgres(db):
		return db, nil
	case keywordValueRE.MatchString(db):
		return keywordValueURL(db)
	case strings.HasSuffix(db, ".db") || strings.HasSuffix(db, ".sqlite"):
		return db, nil
	}
	return "", fmt.Errorf("%q is neither a postgres:// URL, a PostgreSQL key=value string, nor a SQLite file ending in .db or .sqlite", db)
}

// keywordValueRE matches the start of a PostgreSQL key=value string.
var keywordValueRE = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)

// keywordValueURL turns a PostgreSQL key=value connection string
// ("host=127.0.0.1 dbname=sandi password='a b'") into a postgres:// URL
// with the same settings as query parameters. Values may be quoted with
// single quotes, with \' and \\ inside.
func keywordValueURL(s string) (string, error) {
	q := url.Values{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return "", fmt.Errorf("%q in a key=value string has no '='", s)
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, " \t'") {
			return "", fmt.Errorf("bad key %q in a key=value string", key)
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			i, closed := 1, false
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					val.WriteByte(s[i])
				} else if s[i] == '\'' {
					closed = true
					break
				} else {
					val.WriteByte(s[i])
				}
			}
			if !closed {
				return "", fmt.Errorf("unterminated quoted value of %q", key)
			}
			s = s[i+1:]
		} else {
			end := strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
			val.WriteString(s[:end])
			s = s[end:]
		}
		q.Set(key, val.String())
	}
	// Query escaping, with spaces as %20: the driver decodes percent
	// escapes only, not '+'.
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
		b.WriteString(esc(k) + "=" + esc(q.Get(k)))
	}
	return "postgres://?" + b.String(), nil
}

// parseIdle reads a token idle limit: N days ("90d"), a Go duration of
// at least a minute, or 0 for never (returned as -1).
func parseIdle(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "0" {
		return -1, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days (1 to 36500)", v)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("%q is not a duration (90d, 720h) or 0", v)
		}
	}
	if d < time.Minute {
		return 0, fmt.Errorf("%q is shorter than a minute", v)
	}
	return d, nil
}

// parsePrefixes reads a comma-separated list of addresses (each its own
// prefix) and CIDR prefixes.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", item)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("%q: write an IPv4 prefix as such", item)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return usageError{"--log-level: " + err.Error()}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	gogc := server.TuneGC()

	if c.db == filepath.Join(c.data, "sandi.db") {
		if err := os.MkdirAll(c.data, 0o700); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if soft, hard, err := raiseFileLimit(); err != nil {
		log.Warn("file descriptor limit", "err", err)
	} else if soft > 0 {
		log.Info("file descriptor limit", "soft", soft, "hard", hard)
	}

	st, err := sqlstore.Open(ctx, c.db, sqlstore.Options{})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer st.Close()
	cfg := c.limits
	cfg.TrustedProxies = c.trustedProxies
	cfg.SessionIdle = c.sessionIdle
	cfg.ClaimPerMinute, cfg.ClaimOneTimePerHour, cfg.TargetOneTimePerHour = c.claimRate, c.claimOneTime, c.targetOneTime
	cfg.NewContactsPerDay = c.newContacts
	cfg.MaxOneTimeKeys, cfg.UploadPerMinute = c.maxOneTime, c.uploadRate
	// /metrics names routes, counts and load: it is served on the API
	// address only behind a token, else only on --metrics-addr.
	cfg.MetricsOff = c.metricsAddr != "" || cfg.MetricsToken == ""
	if c.metricsAddr == "" && cfg.MetricsToken == "" {
		log.Info("metrics not served: set --metrics-addr or --metrics-token")
	}
	bs, where, err := openBlobStore(ctx, c.blobs)
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	cfg.Blobs, cfg.MaxBlobSize, cfg.BlobQuota = bs, c.maxBlob, c.blobQuota
	srv := server.New(st, log, cfg)
	defer srv.Close()
	if c.nats != "" {
		host, _ := os.Hostname()
		if err := srv.JoinCluster(server.ClusterOptions{URL: c.nats, Name: "sandi " + host}); err != nil {
			return err
		}
		log.Info("cluster: joined")
	}
	mountWeb(srv)
	go srv.RunBlobCollector(ctx, blobCollectEvery)

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	hs := srv.HTTPServer()
	errc := make(chan error, 2)
	if c.metricsAddr != "" {
		mln, err := net.Listen("tcp", c.metricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics address: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second}
		defer ms.Close()
		go func() { errc <- ms.Serve(mln) }()
		log.Info("metrics serving", "addr", "http://"+mln.Addr().String()+"/metrics", "token", c.limits.MetricsToken != "")
	}
	log.Info("sandi serving", "addr", "http://"+ln.Addr().String(), "database", st.Database(), "gogc", gogc, "trustedProxies", c.trustedProxies,
		"maxConnsPerAddr", cfg.MaxConnsPerAddr, "ipv6Prefix", cfg.IPv6PrefixLen, "metricsToken", c.limits.MetricsToken != "", "sessionIdle", c.sessionIdle.String(),
		"blobs", where, "maxBlob", c.maxBlob, "blobQuota", c.blobQuota)
	go func() { errc <- hs.Serve(srv.Listener(ln)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// mountWeb serves the web client: the page at / and its files under /web/.
func mountWeb(srv *server.Server) {
	h := web.Handler()
	srv.Mount("GET /{$}", h)
	srv.Mount("GET "+web.Prefix, h)
}

// blobCollectEvery is how often sandi serve collects expired and
// unreferenced attachment blobs.
const blobCollectEvery = 10 * time.Minute

// openBlobStore opens the attachment blob store that --blobs names and
// returns it with a description for the log (never a credential): an
// s3:// URL is an S3-compatible object store, anything else a directory
// on the local file system.
func openBlobStore(ctx context.Context, spec string) (blob.Store, string, error) {
	if st, ok, err := openS3Blobs(ctx, spec); ok {
		if err != nil {
			return nil, "", err
		}
		return st, st.String(), nil
	}
	bs, err := fsblob.New(spec)
	if err != nil {
		return nil, "", err
	}
	return bs, spec, nil
}

// parseSize reads a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(v string) (int64, error) {
	v = strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	return n * mult, nil
}

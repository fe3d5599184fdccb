package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/web"
)

// serveConfig is what `sandi serve` reads from flags and environment.
type serveConfig struct {
	addr, data, db, logLevel string
	trustedProxies           []netip.Prefix
	sessionIdle              time.Duration // negative: tokens never expire
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
	fs.StringVar(&c.db, "db", envOr("SANDI_DB", ""), "database URL: empty for SQLite in the data directory, or postgres://… (env SANDI_DB)")
	fs.StringVar(&c.logLevel, "log-level", envOr("SANDI_LOG_LEVEL", "info"), "debug, info, warn or error (env SANDI_LOG_LEVEL)")
	proxies := fs.String("trusted-proxies", envOr("SANDI_TRUSTED_PROXIES", ""), "reverse proxies whose X-Forwarded-For names the client, for the rate limits: addresses or CIDR prefixes, comma-separated (env SANDI_TRUSTED_PROXIES)")
	idle := fs.String("session-idle", envOr("SANDI_SESSION_IDLE", "90d"), "a sign-in token unused this long expires: a duration such as 90d or 720h, or 0 for never (env SANDI_SESSION_IDLE)")
	if err := fs.Parse(args); err != nil {
		return c, usageError{err.Error()}
	}
	if fs.NArg() != 0 {
		return c, usageError{"serve takes no arguments"}
	}
	var err error
	if c.sessionIdle, err = parseIdle(*idle); err != nil {
		return c, usageError{"--session-idle: " + err.Error()}
	}
	if c.trustedProxies, err = parsePrefixes(*proxies); err != nil {
		return c, usageError{"--trusted-proxies: " + err.Error()}
	}
	return c, nil
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

	dbURL := c.db
	if dbURL == "" {
		if err := os.MkdirAll(c.data, 0o700); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		dbURL = filepath.Join(c.data, "sandi.db")
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := sqlstore.Open(ctx, dbURL, sqlstore.Options{})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer st.Close()
	srv := server.New(st, log, server.Config{TrustedProxies: c.trustedProxies, SessionIdle: c.sessionIdle})
	defer srv.Close()
	mountWeb(srv)

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("sandi serving", "addr", "http://"+ln.Addr().String(), "database", st.Database(), "gogc", gogc, "trustedProxies", c.trustedProxies, "sessionIdle", c.sessionIdle.String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
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

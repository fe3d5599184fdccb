// Command sandi-load measures sandi's send path, live delivery, sync
// catch-up and text sends during attachment uploads (see package
// sandi.dev/internal/load and docs/performance.md).
//
//	sandi-load                                  # in-process server on a fresh SQLite file
//	sandi-load --db postgres://127.0.0.1:5432/postgres?sslmode=disable
//	sandi-load --server http://127.0.0.1:8080   # a running server
//	sandi-load --server http://127.0.0.1:8080 --conc none --catchup -1 --rate 0 --uploads 64 --upload-size 10MiB
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"sandi.dev/internal/load"
	"sandi.dev/internal/server"
)

func main() {
	if os.Getenv(load.UploadWorkerEnv) != "" {
		if err := load.RunUploadWorker(os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "sandi-load upload child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sandi-load:", err)
		os.Exit(1)
	}
}

// parseSize reads a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	return n * mult, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	var cfg load.Config
	fs := flag.NewFlagSet("sandi-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Func("server", "base URL of a running server on a loopback address (default: start one in-process); repeated: nodes of one cluster, driven at once and reported per node", func(v string) error {
		if cfg.Server == "" {
			cfg.Server = v
		} else {
			cfg.Servers = append(cfg.Servers, v)
		}
		return nil
	})
	fs.BoolVar(&cfg.Spread, "spread", false, "with several --server: one receiver per node, each on a WebSocket to its node, so each message is delivered once (default: one receiver on a WebSocket to every node)")
	fs.StringVar(&cfg.DB, "db", "", "in-process database: empty for a fresh SQLite file in a temporary directory, the path of a new SQLite file, or a postgres:// URL (a fresh database is created there for each run and dropped)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the run's SQLite file or PostgreSQL database")
	fs.IntVar(&cfg.Senders, "senders", 0, "sending accounts, one conversation each with the receiver (default: the largest --conc level)")
	conc := fs.String("conc", "1,8,64", "closed-loop concurrency levels, comma-separated, or none")
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Second, "duration of each closed-loop level")
	fs.IntVar(&cfg.Rate, "rate", 1000, "open-loop sends per second with the receiver on the WebSocket (0: skip)")
	fs.DurationVar(&cfg.RateDuration, "rate-duration", 5*time.Second, "duration of the open loop")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "unmeasured sends just before the measured ones: at the open loop's rate, and at each closed-loop level's concurrency (0: none)")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", 512, "open loop: most sends outstanding at once")
	fs.IntVar(&cfg.CatchUp, "catchup", 0, "catch-up: most events to read through GET /api/sync (0: all the closed-loop messages, -1: skip)")
	fs.IntVar(&cfg.PageSize, "page", 500, "catch-up sync page size (1 to 500)")
	fs.IntVar(&cfg.MessageSize, "size", 100, "plaintext bytes per message")
	fs.IntVar(&cfg.Pool, "pool", 256, "envelopes each sender encrypts and signs before the timed phases (sends cycle through them)")
	fs.BoolVar(&cfg.InlineEncrypt, "inline-encrypt", false, "encrypt and sign every envelope during the timed phases instead of using a pool")
	fs.IntVar(&cfg.Uploads, "uploads", 0, "upload phase: this many concurrent attachment uploads (random bytes through the blob routes), with one text sender timed alone, then during them (0: skip)")
	uploadSize := fs.String("upload-size", "10MiB", "upload phase: bytes of each upload (KiB, MiB, GiB suffixes)")
	fs.IntVar(&cfg.UploadRounds, "upload-rounds", 1, "upload phase: run the uploads this many times, one round after another")
	fs.BoolVar(&cfg.UploadProcess, "upload-process", true, "upload phase: run the uploads in a child process at a lower priority (nice 10), as uploads from other machines, so that they do not share the timing sender's process and CPU; false: in this process")
	fs.DurationVar(&cfg.UploadBaseline, "upload-baseline", 3*time.Second, "upload phase: how long the text sender is timed alone first")
	fs.DurationVar(&cfg.SendEvery, "send-every", 10*time.Millisecond, "upload phase: the text sender's next send waits for the next tick of this period")
	fs.StringVar(&cfg.Metrics, "metrics", "", "upload phase: the server's /metrics URL, for the send's time in its handler (default: --server's /metrics; sandi serve serves them on --metrics-addr)")
	fs.StringVar(&cfg.BlobDir, "blobs", "", "in-process server: directory of its blob store (default: beside the database)")
	fs.IntVar(&cfg.RotateAfterMessages, "rotate-after", 1<<30, "in-process server: messages per epoch before rotation is required")
	fs.DurationVar(&cfg.Settle, "settle", 0, "before each timed phase, wait up to this long for the rest of the machine to be idle (shared machines)")
	maxOthers := fs.Float64("max-others", 0, "discard and repeat a run in which the rest of the machine used (or the hypervisor stole) more than this many cores during a timed phase (0: keep every run; at most 2 extra attempts per run)")
	runs := fs.Int("runs", 1, "repeat the whole measurement and report the median of each figure (1 to 9)")
	jsonOut := fs.String("json", "", "also write the report (and each run's, with --runs) as JSON to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed phases to this file (in-process: labels side=server and side=client)")
	traceOut := fs.String("trace", "", "write a runtime execution trace of the timed phases to this file (go tool trace)")
	timeout := fs.Duration("timeout", 15*time.Minute, "give up after this long")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	idle := fs.Int("idle", 0, "instead of the send measurements: open this many authenticated WebSockets to --server, leave them idle and report the server's memory per connection (needs --pid)")
	idleAccounts := fs.Int("idle-accounts", 10, "--idle: accounts the WebSockets are spread over (the server's WebSocket caps per device and account must allow their share)")
	idleSettle := fs.Duration("idle-settle", 5*time.Second, "--idle: wait before each memory reading")
	pid := fs.Int("pid", 0, "--idle: process id of the server, whose resident memory is read from /proc")
	idleMetrics := fs.String("idle-metrics", "", "--idle: the server's /metrics URL (served without a token, e.g. on --metrics-addr): also report its goroutines, stacks and heap")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("no arguments expected; see -h")
	}
	if *idle > 0 {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		ic := load.IdleConfig{Server: cfg.Server, PID: *pid, Conns: *idle, Accounts: *idleAccounts, Settle: *idleSettle, Metrics: *idleMetrics}
		if !*quiet {
			ic.Log = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
		}
		rep, err := load.Idle(ctx, ic)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d idle WebSockets: server RSS %d KiB before, %d KiB after: %.1f KiB a connection\n",
			rep.Conns, rep.RSSBeforeKiB, rep.RSSAfterKiB, rep.PerConnKiB)
		if b, a := rep.RuntimeBefore, rep.RuntimeAfter; b != nil && a != nil {
			per := func(b, a int64) float64 { return float64(a-b) / float64(rep.Conns) }
			fmt.Fprintf(stdout, "  goroutines %d → %d (%.2f a connection); stacks %d → %d KiB (%.1f KiB a connection); heap in use %d → %d KiB (%.1f KiB a connection); next collection at %d KiB\n",
				b.Goroutines, a.Goroutines, per(b.Goroutines, a.Goroutines), b.StackKiB, a.StackKiB, per(b.StackKiB, a.StackKiB),
				b.HeapInuseKiB, a.HeapInuseKiB, per(b.HeapInuseKiB, a.HeapInuseKiB), a.NextGCKiB)
		}
		return nil
	}
	size, err := parseSize(*uploadSize)
	if err != nil || size < 1 {
		return fmt.Errorf("--upload-size: %q is not a size such as 10MiB", *uploadSize)
	}
	cfg.UploadSize = size
	if *conc == "none" {
		cfg.Duration = -1
	} else {
		cfg.Concurrency = nil
		for _, f := range strings.Split(*conc, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("--conc: %q is not a number", f)
			}
			cfg.Concurrency = append(cfg.Concurrency, n)
		}
	}
	if cfg.Duration == 0 {
		cfg.Duration = -1
	}
	if cfg.Rate <= 0 || cfg.RateDuration <= 0 {
		cfg.Rate = -1
	}
	if cfg.Warmup <= 0 {
		cfg.Warmup = -1
	}
	if cfg.PageSize < 1 || cfg.PageSize > 500 {
		return errors.New("--page is 1 to 500")
	}
	if *runs < 1 || *runs > 9 {
		return errors.New("--runs is 1 to 9")
	}
	if cfg.DB != "" && !strings.HasPrefix(cfg.DB, "postgres") && *runs != 1 {
		return errors.New("a SQLite path takes a single run (each run needs a new file); leave --db empty for a temporary file per run")
	}
	if (*cpuProfile != "" || *traceOut != "") && *runs != 1 {
		return errors.New("--cpuprofile and --trace take a single run")
	}
	if !*quiet {
		cfg.Log = stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.CPUProfile = f
	}
	if *traceOut != "" {
		f, err := os.Create(*traceOut)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.Trace = f
	}
	if cfg.Server == "" {
		// The in-process server runs with sandi serve's collector target.
		server.TuneGC()
	}
	var reports []load.Report
	discarded := 0
	for attempt := 1; len(reports) < *runs; attempt++ {
		if attempt > 3**runs {
			if len(reports) == 0 {
				return fmt.Errorf("no run had the machine to itself (--max-others %.2f) in %d attempts", *maxOthers, attempt-1)
			}
			fmt.Fprintf(stderr, "sandi-load: only %d of %d runs had the machine to themselves (--max-others %.2f) in %d attempts; reporting those\n",
				len(reports), *runs, *maxOthers, attempt-1)
			break
		}
		if *runs > 1 && !*quiet {
			fmt.Fprintf(stderr, "sandi-load: run %d of %d\n", len(reports)+1, *runs)
		}
		rep, err := load.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("run %d: %w", len(reports)+1, err)
		}
		if *maxOthers > 0 && rep.MaxOthers() > *maxOthers {
			discarded++
			fmt.Fprintf(stderr, "sandi-load: run discarded: the rest of the machine used %.2f cores during a phase (--max-others %.2f)\n", rep.MaxOthers(), *maxOthers)
			continue
		}
		if *runs > 1 {
			rep.WriteTable(stdout)
			fmt.Fprintln(stdout)
		}
		reports = append(reports, rep)
	}
	sum := load.Summarize(reports)
	sum.DiscardedRuns = discarded
	sum.WriteTable(stdout)
	if *jsonOut != "" {
		out := struct {
			Summary load.Report   `json:"summary"`
			Runs    []load.Report `json:"runs,omitempty"`
		}{Summary: sum}
		if len(reports) > 1 {
			out.Runs = reports
		}
		data, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

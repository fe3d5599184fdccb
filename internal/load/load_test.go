package load

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain makes this test binary the upload phase's child when the phase
// starts it (Config.UploadProcess), as cmd/sandi-load's main does.
func TestMain(m *testing.M) {
	if os.Getenv(UploadWorkerEnv) != "" {
		if err := RunUploadWorker(os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRunSQLite runs the whole tool with tiny numbers against an in-process
// server on SQLite and checks that the report adds up, so the tool cannot
// rot silently. It asserts nothing about speed.
func TestRunSQLite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log bytes.Buffer
	rep, err := Run(ctx, Config{
		Senders:      3,
		Concurrency:  []int{1, 3},
		Duration:     300 * time.Millisecond,
		Rate:         100,
		RateDuration: 500 * time.Millisecond,
		Warmup:       200 * time.Millisecond,
		Pool:         4, // fewer envelopes than sends: the pool cycles
		Log:          &log,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}
	if len(rep.Closed) != 2 || rep.Closed[0].Concurrency != 1 || rep.Closed[1].Concurrency != 3 {
		t.Fatalf("closed-loop levels: %+v", rep.Closed)
	}
	var closed, closedWarm int64
	for _, c := range rep.Closed {
		// Each level's warm-up (200 ms at its concurrency) is stored
		// and in none of its figures.
		if u := c.Warmup; u == nil || u.Accepted == 0 || u.Failed != 0 || u.Seconds < 0.2 {
			t.Errorf("closed loop with %d senders: warm-up %+v", c.Concurrency, u)
		} else {
			closedWarm += u.Accepted
		}
		if c.Accepted == 0 || c.Failed != 0 || len(c.Errors) != 0 {
			t.Errorf("closed loop with %d senders: %d accepted, %d failed %v", c.Concurrency, c.Accepted, c.Failed, c.Errors)
		}
		if c.PerSecond <= 0 || c.Ack.N != int(c.Accepted) || c.Ack.P50 <= 0 || c.Ack.P99 < c.Ack.P50 || c.Ack.Max < c.Ack.P99 {
			t.Errorf("closed loop with %d senders: rate %v, ack latencies %+v", c.Concurrency, c.PerSecond, c.Ack)
		}
		closed += c.Accepted
	}
	if cu := rep.CatchUp; cu == nil || cu.Messages != closed+closedWarm || cu.Events < cu.Messages || cu.Pages < 1 || cu.EventsPerSecond <= 0 {
		t.Errorf("catch-up read %+v, want every one of the %d closed-loop messages (%d of them warm-ups)", rep.CatchUp, closed+closedWarm, closedWarm)
	}
	l := rep.Live
	if l == nil {
		t.Fatal("no live phase in the report")
	}
	if l.Scheduled != 50 || l.Sent != 50 || l.Accepted != 50 || l.Failed != 0 {
		t.Errorf("live: scheduled %d, sent %d, accepted %d, failed %d %v; want 50 sent and accepted", l.Scheduled, l.Sent, l.Accepted, l.Failed, l.Errors)
	}
	if l.Received != l.Accepted || l.Missing != 0 {
		t.Errorf("live: %d delivered over the WebSocket, %d missing, of %d accepted", l.Received, l.Missing, l.Accepted)
	}
	// The warm-up's 20 sends come first, are stored and delivered, and
	// are in none of the measured figures.
	if u := l.Warmup; u == nil || u.Scheduled != 20 || u.Accepted != 20 || u.Failed != 0 || u.Received != 20 {
		t.Errorf("live: warm-up %+v; want 20 sent, accepted and delivered", u)
	}
	d := l.Delivery
	if d.N != int(l.Received) || d.P50 <= 0 || d.P90 < d.P50 || d.P99 < d.P90 || d.Max < d.P99 || d.Mean <= 0 {
		t.Errorf("live: delivery latencies %+v", d)
	}
	if l.Ack.N != int(l.Accepted) || l.Ack.P50 <= 0 {
		t.Errorf("live: ack latencies %+v", l.Ack)
	}
	// From the request's actual start: never later than from its
	// scheduled start, which is never after the actual start.
	if f := l.DeliveryFromStart; f.N != d.N || f.P50 <= 0 || f.Max > d.Max || f.Mean > d.Mean {
		t.Errorf("live: delivery from the request's start %+v, from the schedule %+v", f, d)
	}
	if ds := l.DiskSync; ds.N != diskWrites || ds.P50 <= 0 || ds.P99 < ds.P50 || ds.Max < ds.P99 {
		t.Errorf("live: disk probe %+v, want %d synced writes", ds, diskWrites)
	}
	if rep.Stored != rep.Accepted() || rep.Accepted() != closed+closedWarm+l.Accepted+20 {
		t.Errorf("stored %d messages, accepted %d sends (closed %d + their warm-ups %d + live %d + 20 of the warm-up)", rep.Stored, rep.Accepted(), closed, closedWarm, l.Accepted)
	}
	if rep.Database != "sqlite" || rep.EnvelopeBytes <= rep.MessageBytes || rep.Machine.NumCPU < 1 {
		t.Errorf("report header: %+v", rep)
	}

	var table bytes.Buffer
	rep.WriteTable(&table)
	for _, want := range []string{"3 concurrent senders", "send → delivered", "catch-up", "messages stored", "disk just before", "after 20 unmeasured", "unmeasured warm-up at its concurrency"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	sum := Summarize([]Report{rep, rep, rep})
	if sum.Runs != 3 || sum.MismatchedRuns != 0 || sum.Closed[1].Accepted != rep.Closed[1].Accepted || sum.Live.Delivery.P99 != d.P99 {
		t.Errorf("summary of three identical runs differs from the run: %+v", sum)
	}
}

// TestConfigRefusesRemoteAddresses checks that the tool only ever targets
// loopback addresses.
func TestConfigRefusesRemoteAddresses(t *testing.T) {
	for _, c := range []Config{
		{Server: "http://192.0.2.1:8080"},
		{Server: "http://example.com"},
		{DB: "postgres://db.example.com/sandi"},
		{DB: "postgres://10.0.0.1:5432/sandi"},
	} {
		if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Run(%+v) = %v, want a refusal of the non-loopback address", c, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:80", "postgres://127.0.0.1/x", "postgres:///x?host=/tmp"} {
		if err := checkLoopbackURL(u); err != nil {
			t.Errorf("checkLoopbackURL(%q) = %v", u, err)
		}
	}
}

// TestUploadPhase runs the upload phase with small numbers against a
// server of its own (as against a separate sandi serve, through its URL),
// whose rotation policy makes the text sender make new epochs, and checks
// on the server's own counters that the uploads happened: the bytes it
// received, the blobs deleted afterwards, the sends it stored. The
// uploads run in this process, then in a child process.
func TestUploadPhase(t *testing.T) {
	for _, child := range []bool{false, true} {
		t.Run(fmt.Sprintf("child=%v", child), func(t *testing.T) { testUploadPhase(t, child) })
	}
}

func testUploadPhase(t *testing.T, child bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log bytes.Buffer
	logf := func(format string, args ...any) { fmt.Fprintf(&log, format+"\n", args...) }
	srv, err := startServer(ctx, &Config{RotateAfterMessages: 10, Log: &log}, logf)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	const uploads, rounds, size = 9, 2, 200_000 // two accounts
	rep, err := Run(ctx, Config{
		Server: srv.url, Duration: -1, CatchUp: -1, Rate: -1,
		Uploads: uploads, UploadSize: size, UploadRounds: rounds, UploadBaseline: 300 * time.Millisecond,
		SendEvery: 5 * time.Millisecond, Log: &log, UploadProcess: child,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}
	u := rep.Upload
	if u == nil {
		t.Fatalf("no upload phase in the report:\n%s", log.String())
	}
	if u.Completed != uploads*rounds || u.Failed != 0 || u.Accounts != 2 {
		t.Errorf("uploads: %d completed, %d failed %v by %d accounts; want %d by 2", u.Completed, u.Failed, u.Errors, u.Accounts, uploads*rounds)
	}
	if u.Alone.N < 2 || u.During.N < 1 || u.SendsFailed != 0 || u.Alone.P99 <= 0 || u.During.P99 <= 0 || u.P99Ratio != u.During.P99/u.Alone.P99 {
		t.Errorf("text sends: alone %+v, during %+v, %d failed %v, ratio %v", u.Alone, u.During, u.SendsFailed, u.SendErrors, u.P99Ratio)
	}
	// The first epoch is the conversation's own: N sends need
	// (N-1)/10 new ones.
	if want := (u.Alone.N + u.During.N - 1) / 10; u.Rotations < want || u.Rotations == 0 {
		t.Errorf("%d new epochs for %d sends at 10 messages an epoch", u.Rotations, u.Alone.N+u.During.N)
	}
	if u.ServerAloneMs <= 0 || u.ServerDuringMs <= 0 {
		t.Errorf("server time of a send: %v ms alone, %v ms during", u.ServerAloneMs, u.ServerDuringMs)
	}
	if inChild := u.UploaderPID != os.Getpid() && u.UploaderPID > 0; inChild != child {
		t.Errorf("uploads ran in process %d, this test in %d; want a child: %v", u.UploaderPID, os.Getpid(), child)
	}
	if u.Seconds <= 0 || u.MiBPerSecond <= 0 {
		t.Errorf("upload time %v s, %v MiB/s", u.Seconds, u.MiBPerSecond)
	}
	if rep.Stored != rep.Accepted() || rep.Accepted() != int64(u.Alone.N+u.During.N) {
		t.Errorf("stored %d messages, accepted %d, text sends %d", rep.Stored, rep.Accepted(), u.Alone.N+u.During.N)
	}
	metrics := scrape(t, srv.url)
	if got := metrics[`sandi_blob_bytes_received_total`]; got != uploads*rounds*size {
		t.Errorf("the server received %v blob bytes, want %d", got, uploads*rounds*size)
	}
	if got := metrics[`sandi_blobs_collected_total{reason="deleted"}`]; got != uploads*rounds {
		t.Errorf("the server deleted %v blobs, want the %d uploaded", got, uploads*rounds)
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	if !strings.Contains(table.String(), "during the uploads") {
		t.Errorf("table lacks the upload phase:\n%s", table.String())
	}
}

// scrape reads a server's /metrics: each sample by its name and labels.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// TestLiveAfterBacklog: with the catch-up phase off, the live phase still
// starts at the end of the receiver's stream, so the closed loop's
// messages do not come first on the WebSocket (their drain would be
// measured as live delay).
func TestLiveAfterBacklog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log bytes.Buffer
	rep, err := Run(ctx, Config{Senders: 2, Concurrency: []int{2}, Duration: 300 * time.Millisecond, CatchUp: -1,
		Rate: 100, RateDuration: 300 * time.Millisecond, Warmup: -1, Log: &log})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}
	if rep.Live != nil && rep.Live.Warmup != nil {
		t.Errorf("a warm-up of %+v, with none asked", rep.Live.Warmup)
	}
	if len(rep.Closed) != 1 || rep.Closed[0].Accepted == 0 {
		t.Fatalf("closed loop: %+v", rep.Closed)
	}
	l := rep.Live
	if l == nil || l.Accepted == 0 || l.Received != l.Accepted {
		t.Fatalf("live: %+v", l)
	}
	if l.Backlog != 0 {
		t.Errorf("the WebSocket brought %d messages of the closed loop (of %d) before the live ones", l.Backlog, rep.Closed[0].Accepted)
	}
}

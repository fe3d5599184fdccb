//go:build unix

package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sandi.dev/internal/server"
	"sandi.dev/internal/store/sqlstore"
)

// BenchmarkLoginFlood: a flood of logins, from 1 and from 8 clients at
// once, each naming an unknown username (the server hashes the password against its
// dummy hash, as for any login), against a real server on SQLite with the
// default password hashing (Argon2id, 19 MiB, 2 passes) and the collector
// governed as in sandi serve (TuneGC), where every hash is followed by
// collectAfter. It reports the wall time per login (ns/op), the process's
// CPU time per login (cpu-ns/op) and the forced collections per login
// (forced-gc/op). With GOGC set in the environment the collector is not
// governed and collectAfter does nothing: that is the comparison.
func BenchmarkLoginFlood(b *testing.B) {
	server.TuneGC()
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { loginFlood(b, clients) })
	}
}

func loginFlood(b *testing.B, clients int) {
	st, err := sqlstore.Open(context.Background(), filepath.Join(b.TempDir(), "sandi.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	cfg := server.Config{RegisterPerMinute: -1, LoginPerMinute: -1, ClaimPerMinute: -1, HashWait: time.Minute}
	srv := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg)
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(func() {
		hs.Close()
		srv.Close()
		st.Close()
	})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	login := func(i int64) error {
		body := fmt.Sprintf(`{"username":"nobody%d","password":"not a password"}`, i)
		resp, err := hc.Post(hs.URL+"/api/auth/login", "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("login: status %d, want 401", resp.StatusCode)
		}
		return nil
	}
	if err := login(-1); err != nil { // the first hash, and a connection
		b.Fatal(err)
	}

	forced := []rtmetrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	rtmetrics.Read(forced)
	forced0 := forced[0].Value.Uint64()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if err := login(i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	rtmetrics.Read(forced)
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(forced[0].Value.Uint64()-forced0)/float64(b.N), "forced-gc/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

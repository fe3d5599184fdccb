package server_test

import (
	"os"
	"path/filepath"
	"runtime/trace"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/server"
)

// TestBlobUploadLoad measures (it checks no time) the text send path
// while 64 uploads of 10 MiB run at once, against the same sends alone,
// on SQLite: the figures of docs/performance.md. It runs only with
// SANDI_BLOB_LOAD=1.
func TestBlobUploadLoad(t *testing.T) {
	if os.Getenv("SANDI_BLOB_LOAD") == "" {
		t.Skip("a measurement: set SANDI_BLOB_LOAD=1")
	}
	const (
		accounts   = 8
		perAccount = 8 // 64 uploads
		size       = 10 << 20
	)
	cfg := server.Config{RotateAfterMessages: 1 << 30, BlobUploadsPerMinute: -1}
	if dir := os.Getenv("SANDI_BLOB_LOAD_DIR"); dir != "" { // the blob store elsewhere (another disk, a tmpfs)
		bs, err := fsblob.New(filepath.Join(dir, "blobs-"+filepath.Base(t.TempDir())))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(bs.Dir()) })
		cfg.Blobs = bs
	}
	e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), cfg)
	alice, bob := e.register("alice"), e.register("bob")
	conv, err := alice.create([]*device{bob})
	if err != nil {
		t.Fatal(err)
	}
	ups := e.loners("up", accounts)
	data := randomBytes(size)

	// sends sends text messages one after another until stop is closed
	// and returns their latencies.
	sends := func(stop <-chan struct{}) []time.Duration {
		var lat []time.Duration
		for {
			select {
			case <-stop:
				return lat
			default:
			}
			start := time.Now()
			if _, err := alice.send(conv, 1, "hello"); err != nil {
				t.Error(err)
				return lat
			}
			lat = append(lat, time.Since(start))
		}
	}
	pct := func(lat []time.Duration, p float64) time.Duration {
		s := slices.Clone(lat)
		slices.Sort(s)
		return s[int(float64(len(s)-1)*p)]
	}

	// serverTime is the send route's total time in the server's handler
	// so far, and its count of requests.
	route := "POST /api/conversations/{id}/messages"
	serverTime := func() (float64, float64) {
		sum, _ := e.metric("sandi_http_request_duration_seconds_sum", "route", route)
		n, _ := e.metric("sandi_http_request_duration_seconds_count", "route", route)
		return sum, n
	}
	stop := make(chan struct{})
	time.AfterFunc(3*time.Second, func() { close(stop) })
	s0, n0 := serverTime()
	alone := sends(stop)
	s1, n1 := serverTime()
	t.Logf("alone: mean in the server %v", time.Duration((s1-s0)/(n1-n0)*1e9))

	if path := os.Getenv("SANDI_BLOB_LOAD_TRACE"); path != "" { // an execution trace of the uploads
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			t.Fatal(err)
		}
		defer trace.Stop()
	}
	stop = make(chan struct{})
	done := make(chan []time.Duration)
	go func() { done <- sends(stop) }()
	// More rounds, more sends measured during the uploads (each round's
	// uploads are 640 MiB).
	rounds := 1
	if v, err := strconv.Atoi(os.Getenv("SANDI_BLOB_LOAD_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range rounds {
		for _, u := range ups {
			for range perAccount {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a, err := u.d.newBlob(u.conv, size)
					if err != nil {
						t.Error(err)
						return
					}
					for n := range a.Parts {
						end := min(size, (n+1)*blob.PartSize)
						if r := u.d.putPart(a.Blob, n, data[n*blob.PartSize:end]); r.status != 204 {
							t.Errorf("part: %d %s", r.status, r.body)
							return
						}
					}
					if err := u.d.do("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
	}
	took := time.Since(start)
	close(stop)
	during := <-done
	s2, n2 := serverTime()
	t.Logf("during: mean in the server %v", time.Duration((s2-s1)/(n2-n1)*1e9))
	mb := float64(rounds*accounts*perAccount*size) / (1 << 20)
	t.Logf("text sends alone: %d, p50 %v, p99 %v", len(alone), pct(alone, 0.5), pct(alone, 0.99))
	t.Logf("%d×64 uploads of 10 MiB: %.0f MiB in %v, %.1f MiB/s", rounds, mb, took.Round(time.Millisecond), mb/took.Seconds())
	t.Logf("text sends during the uploads: %d, p50 %v, p99 %v", len(during), pct(during, 0.5), pct(during, 0.99))
}

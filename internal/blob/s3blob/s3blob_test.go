package s3blob_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/blob/blobtest"
	"sandi.dev/internal/blob/s3blob"
	"sandi.dev/internal/tests3"
)

func TestMain(m *testing.M) { tests3.Main(m) }

// open returns a Store on a fresh bucket of the test S3 server.
func open(t *testing.T) *s3blob.Store {
	s, err := s3blob.Open(t.Context(), tests3.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance runs the blob.Store suite on a real S3-compatible server.
func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return open(t) })
}

// TestOpenErrors: a missing bucket, missing or wrong credentials are
// errors that say so, and no secret shows in them.
func TestOpenErrors(t *testing.T) {
	c, err := s3blob.ParseURL(tests3.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	missing := c
	missing.Bucket = "sandi-no-such-bucket"
	noCreds := c
	noCreds.AccessKey, noCreds.SecretKey = "", ""
	wrong := c
	wrong.SecretKey = "Zq" + strings.Repeat("x", 38)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	for _, tc := range []struct {
		url, want string
	}{
		{missing.URL(), `bucket "sandi-no-such-bucket" does not exist`},
		{noCreds.URL(), "no credentials"},
		{wrong.URL(), "signature"},
		{"s3://h/x", "blob store URL: bucket \"x\""},
	} {
		_, err := s3blob.Open(t.Context(), tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s) = %v, want an error with %q", tc.url, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), c.SecretKey) || strings.Contains(err.Error(), "Zq")) {
			t.Errorf("Open = %v: the error shows the secret", err)
		}
	}
	// The credentials may come from the environment.
	t.Setenv("AWS_ACCESS_KEY_ID", c.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", c.SecretKey)
	if _, err := s3blob.Open(t.Context(), noCreds.URL()); err != nil {
		t.Fatalf("Open with credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: %v", err)
	}
}

// zeros reads as n zero bytes, allocating nothing.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), z.n)]
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// TestWritePartMemory: a part streams to the store over plain HTTP (the
// streaming SigV4 signature) rather than being held in memory to sign it:
// writing a part of PartSize allocates a fraction of it (about 1.1 MiB in
// all, mostly short-lived: a 64 KiB chunk signed at a time).
func TestWritePartMemory(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	id := blobtest.NewID()
	state, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := s.WritePart(ctx, id, state, 0, &zeros{blob.PartSize}, blob.PartSize); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("WritePart of %d bytes allocated %d bytes", blob.PartSize, alloc)
	if alloc > blob.PartSize/2 {
		t.Fatalf("WritePart of %d bytes allocated %d bytes: the part is buffered, not streamed", blob.PartSize, alloc)
	}
}

// BenchmarkWritePart writes parts of PartSize to the test server, from
// b.N goroutines at most 32 at a time, and reports the throughput and the
// peak heap over the baseline per concurrent part (sampled every
// millisecond), for docs/performance.md.
func BenchmarkWritePart(b *testing.B) {
	s, err := s3blob.Open(b.Context(), tests3.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	const conc = 32
	ids, states := make([]string, conc), make([]string, conc)
	for i := range conc {
		ids[i] = blobtest.NewID()
		if states[i], err = s.Begin(ctx, ids[i]); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
		}
	}()
	b.SetBytes(blob.PartSize)
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for n := next.Add(1) - 1; n < int64(b.N); n = next.Add(1) - 1 {
				if _, err := s.WritePart(ctx, ids[w], states[w], int(n/conc), &zeros{blob.PartSize}, blob.PartSize); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(stop)
	<-sampled
	if p := peak.Load(); p > base.HeapAlloc {
		b.ReportMetric(float64(p-base.HeapAlloc)/float64(min(conc, b.N)), "peak-heap-B/part")
	}
}

// TestFull: a store out of space refuses a part with blob.ErrFull, keeps
// nothing of it, and takes parts again once space is freed. The store is
// a versitygw of the test's own on a 20 MiB tmpfs (root and mount(8), as
// on CI; elsewhere the test fails saying so).
func TestFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=20m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("TestFull mounts a small tmpfs and needs root and mount(8) (uid %d): mount: %v\n%s", os.Getuid(), err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	s, err := s3blob.Open(t.Context(), tests3.Server(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	id := blobtest.NewID()
	state, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; n < 4; n++ {
		_, err = s.WritePart(ctx, id, state, n, &zeros{blob.PartSize}, blob.PartSize)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, blob.ErrFull) {
		t.Fatalf("part %d of %d MiB on a 20 MiB disk: %v, want blob.ErrFull", n, blob.PartSize>>20, err)
	}
	if n == 0 {
		t.Fatal("not even one part fit: the test's disk is too small to show anything")
	}
	if err := s.Commit(ctx, id, state, n+1, int64(n+1)*blob.PartSize); err == nil {
		t.Fatalf("Commit with part %d, refused for want of space, succeeded", n)
	}
	// Freeing the space (another upload deleted) lets the part in.
	if err := s.Delete(ctx, id, state); err != nil {
		t.Fatal(err)
	}
	other := blobtest.NewID()
	if state, err = s.Begin(ctx, other); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("sandi"), 1000)
	if _, err := s.WritePart(ctx, other, state, 0, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("WritePart after space was freed: %v", err)
	}
	if err := s.Commit(ctx, other, state, 1, int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkOpen reads a committed object of PartSize from the test server,
// whole, for docs/performance.md.
func BenchmarkOpen(b *testing.B) {
	s, err := s3blob.Open(b.Context(), tests3.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	id := blobtest.NewID()
	state, err := s.Begin(ctx, id)
	if err == nil {
		state, err = s.WritePart(ctx, id, state, 0, &zeros{blob.PartSize}, blob.PartSize)
	}
	if err == nil {
		err = s.Commit(ctx, id, state, 1, blob.PartSize)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(blob.PartSize)
	b.ResetTimer()
	for b.Loop() {
		rc, err := s.Open(ctx, id, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || n != blob.PartSize {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}

// TestUnreachable: every operation on a store nobody listens at fails
// with blob.ErrUnavailable (the server answers 503 for it, not 500),
// without a secret in the error.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	secret := "Zq" + strings.Repeat("y", 38)
	s, err := s3blob.New(s3blob.Config{Endpoint: addr, Bucket: "sandi", AccessKey: "sandi", SecretKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	id := blobtest.NewID()
	data := []byte("sandi")
	_, err = s.Begin(ctx, id)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, blob.ErrUnavailable) {
			t.Errorf("%s on an unreachable store: %v, want blob.ErrUnavailable", op, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the secret: %v", op, err)
		}
	}
	check("Begin", err)
	_, err = s.WritePart(ctx, id, "upload", 0, bytes.NewReader(data), int64(len(data)))
	check("WritePart", err)
	check("Commit", s.Commit(ctx, id, "upload", 1, int64(len(data))))
	_, err = s.Open(ctx, id, 0, -1)
	check("Open", err)
	check("Delete", s.Delete(ctx, id, "upload"))
	check("Walk", s.Walk(ctx, time.Now(), func(string) error { return nil }))
	check("Ping", s.Ping(ctx))
}

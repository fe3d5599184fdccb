package server

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestNoCollectionBeforeNextHash: a large hash that another one waits to
// follow (in the hashing gate, one slot) ends without a collection: the
// next one would fault in again the pages given back. The last one is
// collected as TestCollectAfterHash says.
func TestNoCollectionBeforeNextHash(t *testing.T) {
	old := debug.SetGCPercent(GCPercent)
	defer debug.SetGCPercent(old)
	was := governed.Swap(true)
	defer governed.Store(was)
	s := []rtmetrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	runtime.GC()
	rtmetrics.Read(s)
	mem := max(16<<10, uint32(s[1].Value.Uint64()>>10)) // as TestCollectAfterHash
	srv := &Server{cfg: Config{Argon2Time: 1, Argon2MemKiB: mem, Argon2Threads: 1}}
	// hash hashes and returns the forced collections meanwhile.
	hash := func() uint64 {
		rtmetrics.Read(s)
		before := s[0].Value.Uint64()
		srv.hashPassword("correct horse")
		rtmetrics.Read(s)
		return s[0].Value.Uint64() - before
	}
	g := newHashGate(Config{HashConcurrency: 1, HashWait: time.Minute}, newLimitMetrics(prometheus.NewRegistry()),
		slog.New(slog.NewTextHandler(io.Discard, nil)))

	var first, second uint64 // forced collections during each hash
	var wg sync.WaitGroup
	wg.Add(1)
	if err := g.run(context.Background(), func() {
		go func() { // the second login, waiting for the slot
			defer wg.Done()
			if err := g.run(context.Background(), func() { second = hash() }); err != nil {
				t.Error(err)
			}
		}()
		for hashesWanted.Load() < 2 {
			runtime.Gosched()
		}
		first = hash()
	}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if first != 0 || second != 1 {
		t.Fatalf("hashes of %d MiB, the first followed by the second: %d and %d forced collections, want 0 and 1", mem>>10, first, second)
	}
}

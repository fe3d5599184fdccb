package server

import (
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"testing"
)

// TestTuneGC: without GOGC in the environment the collector's target
// becomes GCPercent; with GOGC set, the process keeps the target it has.
func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	t.Setenv("GOGC", "")
	if got := TuneGC(); got != GCPercent {
		t.Fatalf("TuneGC without GOGC = %d, want %d", got, GCPercent)
	}
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Fatalf("target after TuneGC = %d, want %d", got, GCPercent)
	}

	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150) // as the runtime would have read it at start
	if got := TuneGC(); got != 150 {
		t.Fatalf("TuneGC with GOGC=150 = %d, want 150", got)
	}
	if got := debug.SetGCPercent(100); got != 150 {
		t.Fatalf("target after TuneGC with GOGC set = %d, want 150", got)
	}
}

// gcTarget sizes the headroom for gcRoom of allocation and at least
// gcFloor, within GCMinPercent..GCPercent: a quiet server with a large
// heap gets Go's default, a busy one GCPercent, and in between the target
// follows the rate; a small heap keeps GCPercent.
func TestGCTarget(t *testing.T) {
	if got := gcTarget(0, gcFloor/4); got != GCPercent {
		t.Errorf("gcTarget of a quiet server holding a quarter of gcFloor = %d, want %d", got, GCPercent)
	}
	if got := gcTarget(0, gcFloor/2); got != 200 {
		t.Errorf("gcTarget of a quiet server holding half of gcFloor = %d, want 200", got)
	}
	const live = 100 << 20
	perRoom := func(bytes float64) float64 { return bytes / gcRoom.Seconds() } // the rate that allocates bytes in gcRoom
	for _, c := range []struct {
		rate float64
		want int
	}{
		{0, GCMinPercent},
		{perRoom(live / 2), GCMinPercent},
		{perRoom(2 * live), 200},
		{perRoom(3 * live), 300},
		{perRoom(4 * live), GCPercent},
		{perRoom(40 * live), GCPercent},
	} {
		if got := gcTarget(c.rate, live); got != c.want {
			t.Errorf("gcTarget(%.0f B/s, %d B) = %d, want %d", c.rate, live, got, c.want)
		}
	}
}

// TestCollectAfterHash: a password hash whose memory is large against the
// live heap is collected as soon as it returns, so that the collector's
// next goal is not set from a heap that held it (at GCPercent, five times
// its memory); a small one costs no collection.
func TestCollectAfterHash(t *testing.T) {
	old := debug.SetGCPercent(GCPercent)
	defer debug.SetGCPercent(old)
	was := governed.Swap(true)
	defer governed.Store(was)
	s := []rtmetrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	read := func() (forced, live uint64) {
		rtmetrics.Read(s)
		return s[0].Value.Uint64(), s[1].Value.Uint64()
	}
	runtime.GC()
	forced0, live0 := read()
	// A hash of at least the live heap (which other tests may have grown).
	mem := max(16<<10, uint32(live0>>10))
	srv := &Server{cfg: Config{Argon2Time: 1, Argon2MemKiB: mem, Argon2Threads: 1}}
	phc := srv.hashPassword("correct horse")
	forced1, live1 := read()
	if forced1 == forced0 || live1 > live0+uint64(mem)<<10/4 {
		t.Fatalf("after a hash of %d MiB: %d forced collections, live heap %d → %d bytes; want one, without the hash",
			mem>>10, forced1-forced0, live0, live1)
	}
	// Its pages go back to the system: a server's resident memory at rest
	// does not keep the hash's (which a transfer's peak then counted).
	free := []rtmetrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	if rtmetrics.Read(free); free[0].Value.Uint64() > uint64(mem)<<10/2 {
		t.Fatalf("after a hash of %d MiB: %d bytes of free heap kept from the system", mem>>10, free[0].Value.Uint64())
	}
	if !checkPassword(phc, "correct horse") {
		t.Fatal("the password does not check")
	}
	if forced2, live2 := read(); forced2 == forced1 || live2 > live0+uint64(mem)<<10/4 {
		t.Fatalf("after checking a hash of %d MiB: %d forced collections, live heap %d → %d bytes; want one, without the hash",
			mem>>10, forced2-forced1, live0, live2)
	}

	small := &Server{cfg: Config{Argon2Time: 1, Argon2MemKiB: 64, Argon2Threads: 1}}
	forced3, _ := read()
	small.hashPassword("x")
	if forced4, _ := read(); forced4 != forced3 {
		t.Fatalf("a hash of 64 KiB forced %d collections, want none", forced4-forced3)
	}
}

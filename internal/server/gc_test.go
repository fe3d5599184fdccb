package server

import (
	"runtime/debug"
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

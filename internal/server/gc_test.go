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

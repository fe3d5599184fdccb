package server

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage collector's target (GOGC) that sandi serve runs
// with when the GOGC environment variable is not set. The server's live
// heap is small, tens of megabytes, so with Go's default of 100 the
// collector runs several times a second under load, and while it marks it
// takes a quarter of the CPU and slows every request for a few
// milliseconds: that showed in the tail of the delivery latency
// (docs/performance.md). At 400 the heap may grow to five times the live
// heap before a collection, and collections are four times rarer.
const GCPercent = 400

// TuneGC sets the collector's target to GCPercent unless GOGC is set in
// the environment, and returns the target in effect (-1: off).
func TuneGC() int {
	if os.Getenv("GOGC") != "" {
		return GCTarget()
	}
	debug.SetGCPercent(GCPercent)
	return GCPercent
}

// GCTarget returns the collector's target in effect (-1: off). The
// runtime has no getter: it is read by setting it and setting it back.
func GCTarget() int {
	old := debug.SetGCPercent(100)
	debug.SetGCPercent(old)
	return old
}

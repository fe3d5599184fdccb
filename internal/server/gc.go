package server

import (
	"math"
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// GCPercent is the garbage collector's target (GOGC) that sandi serve runs
// with, while it allocates fast, when the GOGC environment variable is not
// set. The server's live heap is small, tens of megabytes, so with Go's
// default of 100 the collector runs several times a second under load,
// and while it marks it takes a quarter of the CPU and slows every request
// for a few milliseconds: that showed in the tail of the delivery latency
// (docs/performance.md). At 400 the heap may grow to five times the live
// heap before a collection, and collections are four times rarer.
//
// A server that allocates slowly does not need that room, and with many
// idle WebSockets the live heap is large: at 400 the heap of 10,000 idle
// sockets grows, from what they allocate when they poll and ping, to five
// times what they hold. So the target follows the allocation rate (see
// governGC): GCPercent while the server allocates, in gcRoom, at least
// four times its live memory, or while that memory is small (gcFloor is
// always allowed); down to GCMinPercent, Go's default, otherwise.
const (
	GCPercent    = 400
	GCMinPercent = 100
)

// The heap's headroom is sized for gcRoom of allocation at the current
// rate (a collection at most this often), and at least gcFloor, within
// GCMinPercent..GCPercent. The governor reads the rate every gcTick.
const (
	gcRoom  = 10 * time.Second
	gcFloor = 32 << 20
	gcTick  = 250 * time.Millisecond
)

var governOnce sync.Once

// TuneGC sets the collector's target to GCPercent and lets it follow the
// allocation rate from then on (between GCMinPercent and GCPercent),
// unless GOGC is set in the environment, and returns the target in
// effect (-1: off).
func TuneGC() int {
	if os.Getenv("GOGC") != "" {
		return GCTarget()
	}
	debug.SetGCPercent(GCPercent)
	governOnce.Do(func() { governed.Store(true); go governGC(gcTick) })
	return GCPercent
}

var governed, collecting atomic.Bool

// hashesWanted counts the password hashes in hashGate.run, running or
// waiting for a slot, in the whole process.
var hashesWanted atomic.Int64

// collectAfter is called when n bytes that one computation held (a
// password hash's memory, 19 MiB by default) have become garbage. The
// collector sets the heap's next goal from what was live when it last
// marked, and a hash that is running then counts as live: on a server
// whose live heap is a few megabytes, each hash raised the goal by five
// times its memory (at GCPercent), and the heap grew to hold several
// hashes' garbage before the next collection (the server's resident
// memory at rest went from 43 to 88 MiB with two registrations, and stayed
// there). So, while the target is governed and n is at least half the
// live memory, a collection runs now: its cost is that of marking a heap
// no larger than twice the hash's memory, below the hash's own; the goal
// is set from the heap without the hash, and the next hash reuses its
// pages. The collection also gives the free pages back to the system
// (debug.FreeOSMemory): otherwise the server's resident memory at rest
// keeps the hash's pages (73 MiB after two registrations, against 55 MiB
// at the peak of a 1 GiB transfer after it); the next hash faults its
// pages in again, a few milliseconds beside its own cost. One such
// collection at a time: a hash that ends while one runs skips it. Nor
// does a hash that another one follows (one running, or waiting for its
// slot: hashesWanted counts them): that one holds as much memory, which
// the collector would count anyway, and it would fault in again the
// pages given back (in a flood of logins, some runs paid that after most
// hashes, at three times a hash's CPU time: docs/performance.md, login
// flood). Hashes then pass their pages on, and the last one collects.
func collectAfter(n uint64) {
	if !governed.Load() || hashesWanted.Load() > 1 || !collecting.CompareAndSwap(false, true) {
		return
	}
	defer collecting.Store(false)
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() == rtmetrics.KindUint64 && s[0].Value.Uint64() <= 2*n {
		debug.FreeOSMemory()
	}
}

// GCTarget returns the collector's target in effect (-1: off).
func GCTarget() int {
	s := []rtmetrics.Sample{{Name: "/gc/gogc:percent"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return -1
	}
	v := s[0].Value.Uint64()
	if v > math.MaxInt32 {
		return -1
	}
	return int(v)
}

// gcStats are the runtime's figures the governor reads.
type gcStats struct {
	allocs uint64 // bytes allocated since the process started
	live   uint64 // what the collector scans: live heap, stacks, globals
}

var gcSamples = []string{"/gc/heap/allocs:bytes", "/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

func readGCStats(s []rtmetrics.Sample) gcStats {
	rtmetrics.Read(s)
	var v [4]uint64
	for i := range s {
		if s[i].Value.Kind() == rtmetrics.KindUint64 {
			v[i] = s[i].Value.Uint64()
		}
	}
	return gcStats{allocs: v[0], live: v[1] + v[2] + v[3]}
}

// governGC sets the collector's target every tick from the allocation
// rate (see gcTarget). A rise of the rate counts at once; a fall, by at
// most a tenth a second, so the target stays up between the bursts of a
// busy server and comes down within a minute when it goes quiet. It
// never returns.
func governGC(tick time.Duration) {
	s := make([]rtmetrics.Sample, len(gcSamples))
	for i, n := range gcSamples {
		s[i].Name = n
	}
	last := readGCStats(s)
	var rate float64 // bytes a second
	decay := math.Pow(0.9, tick.Seconds())
	cur := GCPercent
	for range time.Tick(tick) {
		now := readGCStats(s)
		rate = max(float64(now.allocs-last.allocs)/tick.Seconds(), rate*decay)
		last = now
		if now.live == 0 {
			continue
		}
		want := gcTarget(rate, now.live)
		// Small changes are not worth moving the pacer's goal for.
		if want != cur && (want == GCMinPercent || want == GCPercent || math.Abs(float64(want-cur)) >= float64(cur)/10) {
			debug.SetGCPercent(want)
			cur = want
		}
	}
}

// gcTarget is the target for an allocation rate (bytes a second) and a
// live memory (bytes): the smallest within GCMinPercent..GCPercent whose
// headroom (the target's share of the live memory) holds gcRoom of
// allocation and gcFloor.
func gcTarget(rate float64, live uint64) int {
	p := 100 * max(rate*gcRoom.Seconds(), gcFloor) / float64(live)
	return int(min(max(p, GCMinPercent), GCPercent))
}

package load

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// CPUUse is the CPU used during a phase, in cores (1.0 = one core busy for
// the whole phase), read from /proc (zero elsewhere than Linux). Process is
// this process: in-process, the server and the load generator together.
// Database is the in-process server's PostgreSQL (its backends and
// background processes). Others is what the rest of the machine used
// meanwhile: on a shared machine, a phase with a large Others measured
// sandi with less than the whole machine. Steal is the CPU the hypervisor
// gave to other virtual machines while this one had work to run (the
// steal column of /proc/stat): time in which whatever was running on that
// CPU, sandi included, stood still. It is counted in Others too (up to
// the rounding of the kernel's counters, which can make it the larger).
type CPUUse struct {
	Process  float64 `json:"processCores"`
	Database float64 `json:"databaseCores,omitempty"`
	Others   float64 `json:"otherCores"`
	Steal    float64 `json:"stealCores"`
}

type cpuSample struct {
	at          time.Time
	proc        float64         // seconds of CPU of this process
	db          map[int]float64 // seconds of CPU of each database process
	busy, total float64         // machine ticks
	steal       float64         // machine ticks stolen by the hypervisor
	pids        func() []int    // the database's processes, or nil
}

// clockTick is USER_HZ, the unit of /proc/stat and /proc/PID/stat; 100 on
// every Linux configuration Go supports.
const clockTick = 100.0

// procCPU returns the CPU seconds (user + system) of a process.
func procCPU(pid string) (float64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command name (which is in parentheses).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) <= 12 {
		return 0, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTick, true
}

// parentPID returns the parent of a process (0 if unknown).
func parentPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// sampleCPU reads the CPU counters; pids, when not nil, lists the
// database's processes.
func sampleCPU(pids func() []int) cpuSample {
	s := cpuSample{at: time.Now(), pids: pids}
	s.proc, _ = procCPU("self")
	if pids != nil {
		s.db = map[int]float64{}
		for _, p := range pids() {
			if v, ok := procCPU(strconv.Itoa(p)); ok {
				s.db[p] = v
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		s.busy, s.total, s.steal = statTicks(line)
	}
	return s
}

// statTicks reads the machine-wide line of /proc/stat ("cpu  user nice
// system idle iowait irq softirq steal guest guest_nice"): the ticks not
// idle, all ticks, and the ticks stolen by the hypervisor. Guest time is
// already counted in user.
func statTicks(line string) (busy, total, steal float64) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, 0
	}
	for i, v := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
		if i == 7 {
			steal = n
		}
	}
	return busy, total, steal
}

// cpuSince returns the CPU used since a.
func cpuSince(a cpuSample) CPUUse {
	b := sampleCPU(a.pids)
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 || b.total <= a.total {
		return CPUUse{}
	}
	var db float64
	for p, v := range b.db {
		db += v - a.db[p] // a process that started meanwhile counts from 0
	}
	u := CPUUse{Process: (b.proc - a.proc) / wall, Database: max(0, db/wall)}
	machine := (b.busy - a.busy) / (b.total - a.total) * float64(runtime.NumCPU())
	u.Others = max(0, machine-u.Process-u.Database)
	u.Steal = (b.steal - a.steal) / (b.total - a.total) * float64(runtime.NumCPU())
	return u
}

package load

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"sandi.dev/internal/server"
)

// Report is what one run measured. Times are in milliseconds or seconds as
// their names say.
type Report struct {
	Machine       Machine `json:"machine"`
	Target        string  `json:"target"`     // "in-process" or the server URL
	Database      string  `json:"database"`   // sqlite, postgres
	Durability    string  `json:"durability"` // the database's durability settings
	Senders       int     `json:"senders"`
	MessageBytes  int     `json:"messageBytes"`
	EnvelopeBytes int     `json:"envelopeBytes"`
	// Pool is the number of pre-encrypted envelopes per sender (0 when
	// InlineEncrypt: each send encrypted and signed in the timed phase).
	Pool          int     `json:"pool"`
	InlineEncrypt bool    `json:"inlineEncrypt"`
	SetupSeconds  float64 `json:"setupSeconds"`

	Closed  []ClosedResult `json:"closedLoop"`
	CatchUp *CatchUpResult `json:"catchUp,omitempty"`
	Live    *LiveResult    `json:"live,omitempty"`
	Upload  *UploadResult  `json:"upload,omitempty"`

	// Stored is the number of messages the conversations hold at the end,
	// as the server reports it; it equals Accepted() when every
	// acknowledged send was stored exactly once.
	Stored int64 `json:"stored"`
	// Runs is the number of runs a summary is the median of (0 for a
	// single run), and MismatchedRuns how many of them stored a different
	// number of messages than they had accepted.
	Runs           int `json:"runs,omitempty"`
	MismatchedRuns int `json:"mismatchedRuns,omitempty"`
	// DiscardedRuns is how many runs were measured and left out because
	// the rest of the machine used too much CPU during them (see
	// MaxOthers).
	DiscardedRuns int `json:"discardedRuns,omitempty"`
}

// MaxOthers is the most CPU the rest of the machine used during any timed
// phase of the run that lasted a second or more, in cores (the counters
// tick every 10 ms: shorter phases give no reliable figure). The CPU the
// hypervisor stole is part of it; since the kernel counts the two
// differently, the larger of others and steal is taken.
func (r *Report) MaxOthers() float64 {
	m := 0.0
	add := func(seconds float64, u CPUUse) {
		if seconds >= 1 {
			m = max(m, u.Others, u.Steal)
		}
	}
	for _, c := range r.Closed {
		add(c.Seconds, c.CPU)
	}
	if r.CatchUp != nil {
		add(r.CatchUp.Seconds, r.CatchUp.CPU)
	}
	if r.Live != nil {
		add(r.Live.Seconds, r.Live.CPU)
	}
	if u := r.Upload; u != nil {
		add(u.AloneSeconds, u.CPUAlone)
		add(u.Seconds, u.CPU)
	}
	return m
}

// Accepted is the number of sends answered with a 2xx over all phases.
func (r *Report) Accepted() int64 {
	var n int64
	for _, c := range r.Closed {
		n += c.Accepted
		if c.Warmup != nil {
			n += c.Warmup.Accepted
		}
	}
	if r.Live != nil {
		n += r.Live.Accepted
		if r.Live.Warmup != nil {
			n += r.Live.Warmup.Accepted
		}
	}
	if r.Upload != nil {
		n += r.Upload.Accepted()
	}
	return n
}

// Machine describes where the run happened.
type Machine struct {
	CPU        string `json:"cpu"`
	NumCPU     int    `json:"numCPU"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GOGC       int    `json:"gogc"` // the collector's target in this process (-1: off)
	Memory     string `json:"memory"`
	Go         string `json:"go"`
	OS         string `json:"os"`
}

// ClosedResult is one closed-loop level.
type ClosedResult struct {
	Concurrency int              `json:"concurrency"`
	Seconds     float64          `json:"seconds"`
	Accepted    int64            `json:"accepted"` // 2xx answers
	Failed      int64            `json:"failed"`
	Errors      map[string]int64 `json:"errors,omitempty"` // by "status code" or "transport"
	PerSecond   float64          `json:"perSecond"`        // accepted per second
	Ack         Percentiles      `json:"ackMs"`            // send request to its answer
	CPU         CPUUse           `json:"cpu"`
	// CPUPerSend is the process's CPU time per accepted send, in µs
	// (in-process: server and load generator together).
	CPUPerSend float64 `json:"cpuPerSendUs"`
	// Warmup is the level's unmeasured start at the same concurrency
	// (Config.Warmup; Scheduled unused), nil without one.
	Warmup *WarmupResult `json:"warmup,omitempty"`
}

// CatchUpResult is the sync catch-up phase.
type CatchUpResult struct {
	Events          int64   `json:"events"`
	Messages        int64   `json:"messages"`
	Pages           int     `json:"pages"`
	PageSize        int     `json:"pageSize"`
	Seconds         float64 `json:"seconds"`
	EventsPerSecond float64 `json:"eventsPerSecond"`
	CPU             CPUUse  `json:"cpu"`
}

// LiveResult is the open-loop phase.
type LiveResult struct {
	Rate      int              `json:"rate"`      // scheduled sends per second
	Scheduled int              `json:"scheduled"` // sends scheduled
	Sent      int              `json:"sent"`      // sends started
	Seconds   float64          `json:"seconds"`   // from the first scheduled send to the last answer
	Accepted  int64            `json:"accepted"`
	Failed    int64            `json:"failed"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	PerSecond float64          `json:"perSecond"` // accepted per second
	Received  int64            `json:"received"`  // accepted messages that arrived on the WebSocket
	Missing   int64            `json:"missing"`   // accepted messages that did not (within 10 s of the last answer)
	Frames    int64            `json:"frames"`    // WebSocket frames received (each one read of the store by the server)
	// Backlog counts messages of earlier phases that arrived on the
	// WebSocket: 0, since the phase starts at the end of the receiver's
	// stream (a backlog drained first would be measured as live delay).
	Backlog int64 `json:"backlog"`
	// Delivery is from each send's scheduled start to the arrival of its
	// event at the receiver's WebSocket.
	Delivery Percentiles `json:"deliveryMs"`
	// Ack is from each send's scheduled start to its answer.
	Ack Percentiles `json:"ackMs"`
	// DeliveryFromStart is from the moment the client actually began the
	// send's request to the arrival of its event: Delivery without the
	// load generator's own lateness (it shares the machine).
	DeliveryFromStart Percentiles `json:"deliveryFromStartMs"`
	// MaxStartLagMs is how late the client started the latest send
	// (client saturation shows here).
	MaxStartLagMs float64 `json:"maxStartLagMs"`
	// Nodes, with several servers (Config.Servers), are each node's
	// figures; the fields above are then the first node's WebSocket's,
	// or with Spread every WebSocket's.
	Nodes []NodeLive `json:"nodes,omitempty"`
	// Spread: one receiver per node (Config.Spread), each message
	// delivered once, on the node of its receiver.
	Spread bool   `json:"spread,omitempty"`
	CPU    CPUUse `json:"cpu"`
	// DiskSync is the disk just before the phase: synced 4 KiB writes
	// (see diskSync), in the database's directory when it is SQLite.
	DiskSync Percentiles `json:"diskSyncMs"`
	// Warmup is the unmeasured start (Config.Warmup), nil without one.
	Warmup *WarmupResult `json:"warmup,omitempty"`
}

// WarmupResult is the open loop's warm-up: sends on the same schedule
// just before the measured ones, stored and delivered like them but in
// none of LiveResult's other figures.
type WarmupResult struct {
	Seconds   float64 `json:"seconds"`
	Scheduled int     `json:"scheduled"`
	Accepted  int64   `json:"accepted"`
	Failed    int64   `json:"failed"`
	Received  int64   `json:"received"` // on the first WebSocket (with Spread, on all), by the end of the phase
}

// NodeLive is one node's part of the open loop.
type NodeLive struct {
	Server   string      `json:"server"`
	Accepted int64       `json:"accepted"` // sends through this node
	Failed   int64       `json:"failed"`
	Ack      Percentiles `json:"ackMs"`
	Received int64       `json:"received"` // accepted messages that arrived on its WebSocket (with Spread, its receiver's)
	Missing  int64       `json:"missing"`
	// Duplicates are messages its WebSocket delivered more than once.
	Duplicates int64       `json:"duplicates"`
	Delivery   Percentiles `json:"deliveryMs"` // every message arriving on its WebSocket
	// CrossNode is Delivery for the messages sent through other nodes.
	CrossNode Percentiles `json:"crossNodeMs"`
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.5) - 1
		return ms(s[min(max(i, 0), len(s)-1)])
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Percentiles{N: len(s), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s)))}
}

func machine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	m.GOGC = server.GCTarget()
	m.CPU = procField("/proc/cpuinfo", "model name", ":")
	if kb := procField("/proc/meminfo", "MemTotal", ":"); kb != "" {
		var n int64
		fmt.Sscanf(kb, "%d", &n)
		m.Memory = fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
	}
	return m
}

func procField(path, key, sep string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), sep)
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Summarize returns the median of each figure over several runs of the
// same configuration (the first run's description).
func Summarize(runs []Report) Report {
	if len(runs) == 0 {
		return Report{}
	}
	if len(runs) == 1 {
		return runs[0]
	}
	out := runs[0]
	out.Runs = len(runs)
	med := func(f func(*Report) float64) float64 {
		v := make([]float64, len(runs))
		for i := range runs {
			v[i] = f(&runs[i])
		}
		return median(v)
	}
	medI := func(f func(*Report) float64) int64 { return int64(med(f) + 0.5) }
	medCPU := func(f func(*Report) CPUUse) CPUUse {
		return CPUUse{Process: med(func(r *Report) float64 { return f(r).Process }), Database: med(func(r *Report) float64 { return f(r).Database }),
			Others: med(func(r *Report) float64 { return f(r).Others }),
			Steal:  med(func(r *Report) float64 { return f(r).Steal })}
	}
	medP := func(f func(*Report) *Percentiles) Percentiles {
		return Percentiles{
			N:    int(medI(func(r *Report) float64 { return float64(f(r).N) })),
			P50:  med(func(r *Report) float64 { return f(r).P50 }),
			P90:  med(func(r *Report) float64 { return f(r).P90 }),
			P99:  med(func(r *Report) float64 { return f(r).P99 }),
			Max:  med(func(r *Report) float64 { return f(r).Max }),
			Mean: med(func(r *Report) float64 { return f(r).Mean }),
		}
	}
	out.SetupSeconds = med(func(r *Report) float64 { return r.SetupSeconds })
	out.Stored = medI(func(r *Report) float64 { return float64(r.Stored) })
	for i := range runs {
		if runs[i].Stored != runs[i].Accepted() {
			out.MismatchedRuns++
		}
	}
	out.Closed = slices.Clone(runs[0].Closed)
	for i := range out.Closed {
		ok := true
		for j := range runs {
			ok = ok && len(runs[j].Closed) > i
		}
		if !ok {
			continue
		}
		c := &out.Closed[i]
		c.Seconds = med(func(r *Report) float64 { return r.Closed[i].Seconds })
		c.Accepted = medI(func(r *Report) float64 { return float64(r.Closed[i].Accepted) })
		c.Failed = medI(func(r *Report) float64 { return float64(r.Closed[i].Failed) })
		c.PerSecond = med(func(r *Report) float64 { return r.Closed[i].PerSecond })
		c.Ack = medP(func(r *Report) *Percentiles { return &r.Closed[i].Ack })
		c.Errors = sumErrors(runs, func(r *Report) map[string]int64 { return r.Closed[i].Errors })
		c.CPU = medCPU(func(r *Report) CPUUse { return r.Closed[i].CPU })
		c.CPUPerSend = med(func(r *Report) float64 { return r.Closed[i].CPUPerSend })
	}
	all := func(f func(*Report) bool) bool {
		for i := range runs {
			if !f(&runs[i]) {
				return false
			}
		}
		return true
	}
	if all(func(r *Report) bool { return r.CatchUp != nil }) {
		c := *runs[0].CatchUp
		c.Events = medI(func(r *Report) float64 { return float64(r.CatchUp.Events) })
		c.Messages = medI(func(r *Report) float64 { return float64(r.CatchUp.Messages) })
		c.Pages = int(medI(func(r *Report) float64 { return float64(r.CatchUp.Pages) }))
		c.Seconds = med(func(r *Report) float64 { return r.CatchUp.Seconds })
		c.EventsPerSecond = med(func(r *Report) float64 { return r.CatchUp.EventsPerSecond })
		c.CPU = medCPU(func(r *Report) CPUUse { return r.CatchUp.CPU })
		out.CatchUp = &c
	}
	if all(func(r *Report) bool { return r.Live != nil }) {
		l := *runs[0].Live
		l.Sent = int(medI(func(r *Report) float64 { return float64(r.Live.Sent) }))
		l.Seconds = med(func(r *Report) float64 { return r.Live.Seconds })
		l.Accepted = medI(func(r *Report) float64 { return float64(r.Live.Accepted) })
		l.Failed = medI(func(r *Report) float64 { return float64(r.Live.Failed) })
		l.PerSecond = med(func(r *Report) float64 { return r.Live.PerSecond })
		l.Received = medI(func(r *Report) float64 { return float64(r.Live.Received) })
		l.Frames = medI(func(r *Report) float64 { return float64(r.Live.Frames) })
		l.Missing = medI(func(r *Report) float64 { return float64(r.Live.Missing) })
		if all(func(r *Report) bool { return r.Live.Warmup != nil }) {
			u := *l.Warmup
			u.Accepted = medI(func(r *Report) float64 { return float64(r.Live.Warmup.Accepted) })
			u.Failed = medI(func(r *Report) float64 { return float64(r.Live.Warmup.Failed) })
			u.Received = medI(func(r *Report) float64 { return float64(r.Live.Warmup.Received) })
			l.Warmup = &u
		}
		l.Delivery = medP(func(r *Report) *Percentiles { return &r.Live.Delivery })
		l.Ack = medP(func(r *Report) *Percentiles { return &r.Live.Ack })
		l.DeliveryFromStart = medP(func(r *Report) *Percentiles { return &r.Live.DeliveryFromStart })
		l.MaxStartLagMs = med(func(r *Report) float64 { return r.Live.MaxStartLagMs })
		l.Errors = sumErrors(runs, func(r *Report) map[string]int64 { return r.Live.Errors })
		l.CPU = medCPU(func(r *Report) CPUUse { return r.Live.CPU })
		l.DiskSync = medP(func(r *Report) *Percentiles { return &r.Live.DiskSync })
		out.Live = &l
	}
	if all(func(r *Report) bool { return r.Upload != nil }) {
		u := *runs[0].Upload
		u.Completed = medI(func(r *Report) float64 { return float64(r.Upload.Completed) })
		u.Failed = medI(func(r *Report) float64 { return float64(r.Upload.Failed) })
		u.Errors = sumErrors(runs, func(r *Report) map[string]int64 { return r.Upload.Errors })
		u.Seconds = med(func(r *Report) float64 { return r.Upload.Seconds })
		u.MiBPerSecond = med(func(r *Report) float64 { return r.Upload.MiBPerSecond })
		u.Alone = medP(func(r *Report) *Percentiles { return &r.Upload.Alone })
		u.During = medP(func(r *Report) *Percentiles { return &r.Upload.During })
		u.SendsFailed = medI(func(r *Report) float64 { return float64(r.Upload.SendsFailed) })
		u.SendErrors = sumErrors(runs, func(r *Report) map[string]int64 { return r.Upload.SendErrors })
		u.P99Ratio = med(func(r *Report) float64 { return r.Upload.P99Ratio })
		u.ServerAloneMs = med(func(r *Report) float64 { return r.Upload.ServerAloneMs })
		u.ServerDuringMs = med(func(r *Report) float64 { return r.Upload.ServerDuringMs })
		u.CPUAlone = medCPU(func(r *Report) CPUUse { return r.Upload.CPUAlone })
		u.CPU = medCPU(func(r *Report) CPUUse { return r.Upload.CPU })
		out.Upload = &u
	}
	return out
}

// sumErrors adds the error counts of all runs (a summary shows every
// failure, not a median of them).
func sumErrors(runs []Report, f func(*Report) map[string]int64) map[string]int64 {
	var out map[string]int64
	for i := range runs {
		for k, v := range f(&runs[i]) {
			if out == nil {
				out = map[string]int64{}
			}
			out[k] += v
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// WriteTable prints the report as a table.
func (r *Report) WriteTable(w io.Writer) {
	title := "run"
	if r.Runs > 1 {
		title = fmt.Sprintf("median of %d runs", r.Runs)
	}
	if r.DiscardedRuns > 0 {
		title += fmt.Sprintf(" (%d more discarded: the rest of the machine was busy)", r.DiscardedRuns)
	}
	fmt.Fprintf(w, "sandi-load, %s: %s server, %s (%s)\n", title, r.Target, r.Database, r.Durability)
	fmt.Fprintf(w, "machine: %s, %d CPUs (GOMAXPROCS %d, GOGC %d), %s, %s %s\n", r.Machine.CPU, r.Machine.NumCPU, r.Machine.GOMAXPROCS, r.Machine.GOGC, r.Machine.Memory, r.Machine.Go, r.Machine.OS)
	enc := fmt.Sprintf("%d pre-encrypted envelopes per sender, cycled", r.Pool)
	if r.InlineEncrypt {
		enc = "each envelope encrypted and signed while timed"
	}
	fmt.Fprintf(w, "%d senders (one conversation each with one receiver), %d-byte messages (%d-byte envelopes), %s; setup %.1fs\n\n",
		r.Senders, r.MessageBytes, r.EnvelopeBytes, enc, r.SetupSeconds)
	if len(r.Closed) > 0 {
		fmt.Fprintf(w, "%-22s %8s %9s %7s %10s %10s %10s %9s %6s %6s %6s %6s\n", "closed loop", "sends/s", "accepted", "failed", "ack p50", "ack p99", "ack max", "CPU/send", "cores", "db", "others", "steal")
		for _, c := range r.Closed {
			fmt.Fprintf(w, "%-22s %8.0f %9d %7d %7.2f ms %7.2f ms %7.1f ms %6.0f µs %6.2f %6.2f %6.2f %6.2f%s\n", fmt.Sprintf("%d concurrent senders", c.Concurrency),
				c.PerSecond, c.Accepted, c.Failed, c.Ack.P50, c.Ack.P99, c.Ack.Max, c.CPUPerSend, c.CPU.Process, c.CPU.Database, c.CPU.Others, c.CPU.Steal, errorList(c.Errors))
		}
		fmt.Fprintln(w, "(CPU/send, cores: this process per accepted send and in all, server and load generator together; db: PostgreSQL;")
		fmt.Fprintln(w, " others: the rest of the machine meanwhile; steal: CPU the hypervisor gave to other machines, counted in others too)")
		var warm []string
		for _, c := range r.Closed {
			if u := c.Warmup; u != nil {
				warm = append(warm, fmt.Sprintf("%d sends in %.1fs at %d", u.Accepted, u.Seconds, c.Concurrency))
			}
		}
		if len(warm) > 0 {
			fmt.Fprintf(w, "(each level after an unmeasured warm-up at its concurrency: %s)\n", strings.Join(warm, ", "))
		}
		fmt.Fprintln(w)
	}
	if c := r.CatchUp; c != nil {
		fmt.Fprintf(w, "catch-up (GET /api/sync, pages of %d): %d events (%d messages) in %d pages, %.2fs: %.0f events/s (cores %.2f, db %.2f, others %.2f)\n\n",
			c.PageSize, c.Events, c.Messages, c.Pages, c.Seconds, c.EventsPerSecond, c.CPU.Process, c.CPU.Database, c.CPU.Others)
	}
	if l := r.Live; l != nil {
		warm := ""
		if u := l.Warmup; u != nil {
			warm = fmt.Sprintf(" after %d unmeasured over %.1fs (%d accepted, %d failed, %d delivered)", u.Scheduled, u.Seconds, u.Accepted, u.Failed, u.Received)
		}
		receivers, sockets := "receiver on the WebSocket", "a WebSocket to each"
		if l.Spread {
			receivers, sockets = "a receiver per node on its WebSocket", "its receiver's WebSocket on it"
		}
		fmt.Fprintf(w, "live (open loop at %d sends/s for %d sends%s, %s): %.0f accepted/s, %d accepted, %d failed, %d delivered in %d frames, %d missing%s\n",
			l.Rate, l.Scheduled, warm, receivers, l.PerSecond, l.Accepted, l.Failed, l.Received, l.Frames, l.Missing, errorList(l.Errors))
		fmt.Fprintf(w, "%-22s %9s %9s %9s %9s %9s\n", "latency (ms)", "p50", "p90", "p99", "max", "mean")
		fmt.Fprintf(w, "%-22s %9.2f %9.2f %9.2f %9.2f %9.2f\n", "send → delivered", l.Delivery.P50, l.Delivery.P90, l.Delivery.P99, l.Delivery.Max, l.Delivery.Mean)
		fmt.Fprintf(w, "%-22s %9.2f %9.2f %9.2f %9.2f %9.2f\n", "send → acknowledged", l.Ack.P50, l.Ack.P90, l.Ack.P99, l.Ack.Max, l.Ack.Mean)
		fmt.Fprintf(w, "%-22s %9.2f %9.2f %9.2f %9.2f %9.2f\n", "request → delivered", l.DeliveryFromStart.P50, l.DeliveryFromStart.P90, l.DeliveryFromStart.P99, l.DeliveryFromStart.Max, l.DeliveryFromStart.Mean)
		fmt.Fprintf(w, "latest send start: %.2f ms behind schedule; cores %.2f, db %.2f, others %.2f, stolen by the hypervisor %.2f\n", l.MaxStartLagMs, l.CPU.Process, l.CPU.Database, l.CPU.Others, l.CPU.Steal)
		fmt.Fprintf(w, "disk just before: a synced 4 KiB write took %.2f ms at the median, %.2f ms at the p99, %.2f ms at most (%d writes)\n\n", l.DiskSync.P50, l.DiskSync.P99, l.DiskSync.Max, l.DiskSync.N)
		if len(l.Nodes) > 0 {
			fmt.Fprintf(w, "per node (sends through it in turn; %s; cross-node: sent through another node), ms:\n", sockets)
			fmt.Fprintf(w, "%-24s %8s %8s %8s %8s %8s %8s %8s %8s\n", "node", "accepted", "ack p99", "received", "missing", "dups", "dlv p50", "dlv p99", "cross p99")
			for _, n := range l.Nodes {
				fmt.Fprintf(w, "%-24s %8d %8.2f %8d %8d %8d %8.2f %8.2f %8.2f\n", strings.TrimPrefix(n.Server, "http://"), n.Accepted, n.Ack.P99, n.Received, n.Missing, n.Duplicates, n.Delivery.P50, n.Delivery.P99, n.CrossNode.P99)
			}
			fmt.Fprintln(w)
		}
	}
	if u := r.Upload; u != nil {
		fmt.Fprintf(w, "uploads: %d at once (%d accounts) of %d bytes, %d round(s): %d completed, %d failed in %.2fs: %.1f MiB/s%s\n",
			u.Uploads, u.Accounts, u.SizeBytes, u.Rounds, u.Completed, u.Failed, u.Seconds, u.MiBPerSecond, errorList(u.Errors))
		fmt.Fprintf(w, "%-30s %6s %9s %9s %9s %9s %9s %6s %6s\n", "one text sender, send → ack", "sends", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms", "cores", "others")
		for _, l := range []struct {
			name string
			p    Percentiles
			cpu  CPUUse
		}{{"alone", u.Alone, u.CPUAlone}, {"during the uploads", u.During, u.CPU}} {
			fmt.Fprintf(w, "%-30s %6d %9.2f %9.2f %9.2f %9.2f %9.2f %6.2f %6.2f\n", l.name, l.p.N, l.p.P50, l.p.P90, l.p.P99, l.p.Max, l.p.Mean, l.cpu.Process, l.cpu.Others)
		}
		if u.ServerAloneMs > 0 {
			fmt.Fprintf(w, "mean time of a send in the server's handler (its /metrics): %.2f ms alone, %.2f ms during the uploads\n", u.ServerAloneMs, u.ServerDuringMs)
		}
		fmt.Fprintf(w, "p99 during / alone: %.2f (target: at most 2); %d new epochs asked for by the server, %d sends failed%s\n\n",
			u.P99Ratio, u.Rotations, u.SendsFailed, errorList(u.SendErrors))
	}
	if r.Runs > 1 {
		if r.MismatchedRuns == 0 {
			fmt.Fprintf(w, "messages stored = sends accepted in each of the %d runs\n", r.Runs)
		} else {
			fmt.Fprintf(w, "messages stored ≠ sends accepted in %d of the %d runs\n", r.MismatchedRuns, r.Runs)
		}
		return
	}
	check := "="
	if r.Stored != r.Accepted() {
		check = "≠"
	}
	fmt.Fprintf(w, "messages stored %d %s sends accepted %d\n", r.Stored, check, r.Accepted())
}

func errorList(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("  (")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", k, m[k])
	}
	b.WriteString(")")
	return b.String()
}

package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// IdleConfig is a measurement of idle WebSockets: Accounts accounts open
// Conns authenticated WebSockets between them (round robin) to the
// running server Server (a loopback URL) and leave them idle; the memory
// of the server process PID (its resident set, from /proc) is read before
// and after. The server's WebSocket caps must allow Conns/Accounts
// sockets an account and device, and its connection cap Conns from one
// address.
type IdleConfig struct {
	Server   string
	PID      int
	Conns    int
	Accounts int
	Settle   time.Duration // wait after the last socket opened before reading memory
	// Metrics, if set, is the server's /metrics URL (on a loopback
	// address, without a token): the runtime's figures there are read
	// with each RSS reading.
	Metrics string
	Log     func(format string, args ...any)
}

// IdleRuntime is what the server's Go runtime reports on /metrics.
type IdleRuntime struct {
	Goroutines   int64 `json:"goroutines"`
	StackKiB     int64 `json:"stackKiB"`     // goroutine stacks in use
	HeapInuseKiB int64 `json:"heapInuseKiB"` // heap spans in use: live objects and garbage not yet collected
	NextGCKiB    int64 `json:"nextGCKiB"`    // the heap size at which the next collection starts
}

// IdleReport is what an idle measurement found.
type IdleReport struct {
	Conns        int     `json:"conns"`
	RSSBeforeKiB int64   `json:"rssBeforeKiB"`
	RSSAfterKiB  int64   `json:"rssAfterKiB"`
	PerConnKiB   float64 `json:"perConnKiB"`
	OpenSeconds  float64 `json:"openSeconds"`
	// Runtime figures before and after, with IdleConfig.Metrics.
	RuntimeBefore *IdleRuntime `json:"runtimeBefore,omitempty"`
	RuntimeAfter  *IdleRuntime `json:"runtimeAfter,omitempty"`
}

// readRuntime reads the Go runtime's figures from a Prometheus text page.
func readRuntime(ctx context.Context, url string) (*IdleRuntime, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	var rt IdleRuntime
	fields := map[string]*int64{"go_goroutines": &rt.Goroutines, "go_memstats_stack_inuse_bytes": &rt.StackKiB,
		"go_memstats_heap_inuse_bytes": &rt.HeapInuseKiB, "go_memstats_next_gc_bytes": &rt.NextGCKiB}
	found := 0
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(line, " ")
		p := fields[name]
		if !ok || p == nil {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", url, name, err)
		}
		*p = int64(v)
		if name != "go_goroutines" {
			*p /= 1024
		}
		found++
	}
	if found != len(fields) {
		return nil, fmt.Errorf("%s: not every Go runtime figure is there", url)
	}
	return &rt, nil
}

// rssKiB reads VmRSS of a process.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(f), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// raiseFiles raises this process's file-descriptor soft limit to the hard
// limit (each socket is a descriptor here too).
func raiseFiles(need int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur < uint64(need) {
		return fmt.Errorf("%d sockets need more file descriptors than the hard limit allows (%d)", need, l.Cur)
	}
	return nil
}

// Idle runs an idle-connection measurement.
func Idle(ctx context.Context, cfg IdleConfig) (IdleReport, error) {
	var rep IdleReport
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := checkLoopbackURL(cfg.Server); err != nil {
		return rep, err
	}
	if cfg.Metrics != "" {
		if err := checkLoopbackURL(cfg.Metrics); err != nil {
			return rep, err
		}
	}
	readMemory := func() (int64, *IdleRuntime, error) {
		rss, err := rssKiB(cfg.PID)
		if err != nil || cfg.Metrics == "" {
			return rss, nil, err
		}
		rt, err := readRuntime(ctx, cfg.Metrics)
		return rss, rt, err
	}
	if cfg.Conns < 1 || cfg.Accounts < 1 || cfg.PID <= 0 {
		return rep, errors.New("idle: connections, accounts and the server's process id are needed")
	}
	if err := raiseFiles(cfg.Conns + 100); err != nil {
		return rep, err
	}
	c := newClient(strings.TrimRight(cfg.Server, "/"), logf)
	defer c.close()
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	users := make([]*user, cfg.Accounts)
	for i := range users {
		u, err := c.register(ctx, fmt.Sprintf("idle%s-%d", run, i), 1)
		if err != nil {
			return rep, err
		}
		users[i] = u
	}
	c.close()
	time.Sleep(cfg.Settle)
	before, rtBefore, err := readMemory()
	if err != nil {
		return rep, err
	}
	logf("server RSS before: %d KiB; opening %d WebSockets", before, cfg.Conns)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conns := make([]*websocket.Conn, cfg.Conns)
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Conns)
	sem := make(chan struct{}, 64)
	start := time.Now()
	for i := range conns {
		u := users[i%len(users)]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Each socket dials its own TCP connection.
			hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			url := "ws" + strings.TrimPrefix(c.base, "http") + "/api/ws?since=" + strconv.FormatInt(u.cursor, 10)
			conn, _, err := websocket.Dial(wctx, url, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {u.auth}}})
			if err != nil {
				errs <- fmt.Errorf("websocket %d: %w", i, err)
				return
			}
			conns[i] = conn
			go func() { // answers the server's pings; reads what it sends
				for {
					if _, _, err := conn.Read(wctx); err != nil {
						return
					}
				}
			}()
		}()
	}
	wg.Wait()
	rep.OpenSeconds = time.Since(start).Seconds()
	defer func() {
		for _, conn := range conns {
			if conn != nil {
				conn.CloseNow()
			}
		}
	}()
	select {
	case err := <-errs:
		return rep, err
	default:
	}
	logf("%d WebSockets open in %.1f s; idle for %v", cfg.Conns, rep.OpenSeconds, cfg.Settle)
	time.Sleep(cfg.Settle)
	runtime.KeepAlive(conns)
	after, rtAfter, err := readMemory()
	if err != nil {
		return rep, err
	}
	rep.Conns, rep.RSSBeforeKiB, rep.RSSAfterKiB = cfg.Conns, before, after
	rep.RuntimeBefore, rep.RuntimeAfter = rtBefore, rtAfter
	rep.PerConnKiB = float64(after-before) / float64(cfg.Conns)
	return rep, nil
}

package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// tally counts the outcomes of sends; safe for concurrent use.
type tally struct {
	mu       sync.Mutex
	accepted int64
	failed   int64
	errors   map[string]int64
	firstErr error
	acks     []time.Duration // per accepted send
}

func (t *tally) add(r sendResult, ack time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.ok() {
		t.accepted++
		t.acks = append(t.acks, ack)
		return
	}
	t.failed++
	if t.errors == nil {
		t.errors = map[string]int64{}
	}
	t.errors[r.errorKey()]++
	if t.firstErr == nil {
		if r.err != nil {
			t.firstErr = r.err
		} else {
			t.firstErr = fmt.Errorf("status %d %s", r.status, r.code)
			if r.code == "rotation_required" {
				t.firstErr = fmt.Errorf("%w (the server's rotation policy wants a new epoch every so many messages, and this tool does not rotate: measure in-process, or run the server with a larger policy)", t.firstErr)
			}
		}
	}
}

// merge adds a sender's local counts.
func (t *tally) merge(o *tally) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accepted += o.accepted
	t.failed += o.failed
	for k, v := range o.errors {
		if t.errors == nil {
			t.errors = map[string]int64{}
		}
		t.errors[k] += v
	}
	if t.firstErr == nil {
		t.firstErr = o.firstErr
	}
	t.acks = append(t.acks, o.acks...)
}

// closedLoop runs n senders, each sending its next message as soon as the
// previous one is answered, for dur. Every send is counted, including
// those answered after the deadline: the rate is the accepted sends over
// the time until the last answer.
func (r *runner) closedLoop(ctx context.Context, n int, dur time.Duration) (ClosedResult, error) {
	total := &tally{}
	var wg sync.WaitGroup
	cpu0 := sampleCPU(r.dbPIDs)
	start := time.Now()
	deadline := start.Add(dur)
	var encErr error
	var encMu sync.Mutex
	for _, s := range r.senders[:n] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := &tally{acks: make([]time.Duration, 0, 4096)}
			defer total.merge(local)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				env, err := s.envelope(r.cfg.InlineEncrypt, r.pt)
				if err != nil {
					encMu.Lock()
					encErr = err
					encMu.Unlock()
					return
				}
				t0 := time.Now()
				res := r.c.send(ctx, s, s.clientID(), env)
				local.add(res, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuSince(cpu0)
	if encErr != nil {
		return ClosedResult{}, encErr
	}
	if err := ctx.Err(); err != nil {
		return ClosedResult{}, err
	}
	res := ClosedResult{
		Concurrency: n, Seconds: elapsed.Seconds(), Accepted: total.accepted, Failed: total.failed, Errors: total.errors,
		PerSecond: float64(total.accepted) / elapsed.Seconds(), Ack: percentiles(total.acks), CPU: cpu,
	}
	if total.accepted > 0 {
		res.CPUPerSend = cpu.Process * elapsed.Seconds() / float64(total.accepted) * 1e6
	}
	if total.accepted == 0 && total.firstErr != nil {
		return res, fmt.Errorf("closed loop with %d senders: no send accepted; first error: %w", n, total.firstErr)
	}
	return res, nil
}

// catchUp reads the receiver's stream from its cursor through
// GET /api/sync pages, as a client coming back online does, and times it.
// The events past the cap, if any, are then read untimed so the live phase
// starts at the end of the stream.
func (r *runner) catchUp(ctx context.Context) (CatchUpResult, error) {
	res := CatchUpResult{PageSize: r.cfg.PageSize}
	u := r.receiver()
	cpu0 := sampleCPU(r.dbPIDs)
	start := time.Now()
	for {
		p, err := r.c.syncPage(ctx, u, u.cursor, r.cfg.PageSize)
		if err != nil {
			return res, fmt.Errorf("catch-up: %w", err)
		}
		res.Pages++
		res.Events += int64(len(p.Events))
		for _, e := range p.Events {
			if e.Kind == "message" && e.Message != nil {
				res.Messages++
			}
		}
		u.cursor = p.Cursor
		if !p.More || (r.cfg.CatchUp > 0 && res.Events >= int64(r.cfg.CatchUp)) {
			break
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.CPU = cpuSince(cpu0)
	if res.Seconds > 0 {
		res.EventsPerSecond = float64(res.Events) / res.Seconds
	}
	if err := r.c.syncToEnd(ctx, u, r.cfg.PageSize); err != nil {
		return res, err
	}
	return res, nil
}

// openLoop sends at a fixed rate, whatever the answers, while the receiver
// listens on the WebSocket, and measures for each message the time from its
// scheduled send time to the event's arrival at the receiver (and, apart,
// from the moment its request actually began).
func (r *runner) openLoop(ctx context.Context) (LiveResult, error) {
	rate, dur := r.cfg.Rate, r.cfg.RateDuration
	total := int(int64(rate) * int64(dur) / int64(time.Second))
	// The warm-up's sends come first, on the same schedule: the
	// measured ones follow a second of the same load, not a cold start.
	warm := int(int64(rate) * int64(r.cfg.Warmup) / int64(time.Second))
	res := LiveResult{Rate: rate, Scheduled: total}
	if warm > 0 {
		res.Warmup = &WarmupResult{Seconds: r.cfg.Warmup.Seconds(), Scheduled: warm}
	}
	nodes := r.nodes
	if len(nodes) == 0 {
		nodes = []*client{r.c}
	}

	var mu sync.Mutex
	type times struct {
		scheduled, started time.Time
		node               int    // sent through nodes[node]
		got                uint64 // bit k: arrived on node k's WebSocket
		warm               bool   // a warm-up send: delivered, not measured
	}
	pending := make(map[string]*times, total)
	// One WebSocket per node: the receiver's, each getting every message,
	// or (Spread) receiver k's on node k, getting its senders' messages.
	spread := len(r.rcvs) > 1
	type arrivals struct {
		delivery, fromStart, cross []time.Duration
		received, frames, dups     int64
	}
	arr := make([]*arrivals, len(nodes))
	var accepted int64
	acceptedTo := make([]int64, len(r.rcvs)) // measured sends accepted, by receiver
	expected := func(k int) int64 {          // what socket k should receive
		if spread {
			return acceptedTo[k]
		}
		return accepted
	}
	allIn := make(chan struct{}, 1) // signalled when every WebSocket may have received every accepted send
	sendsDone := false
	caughtUp := func() bool {
		for k, a := range arr {
			if a.received < expected(k) {
				return false
			}
		}
		return true
	}

	// The receiver starts at the end of its stream, untimed: what the
	// earlier phases sent (all of it when the catch-up phase is off) would
	// otherwise come first on the WebSocket and delay every live message.
	for _, u := range r.rcvs {
		if err := r.c.syncToEnd(ctx, u, r.cfg.PageSize); err != nil {
			return res, err
		}
	}
	wctx, stopWS := context.WithCancel(ctx)
	defer stopWS()
	wsErr := make(chan error, len(nodes))
	var conns []*websocket.Conn
	for k, nc := range nodes {
		arr[k] = &arrivals{delivery: make([]time.Duration, 0, total)}
		u := r.receiver()
		if spread {
			u = r.rcvs[k]
		}
		wsURL := "ws" + strings.TrimPrefix(nc.base, "http") + "/api/ws?since=" + strconv.FormatInt(u.cursor, 10)
		conn, _, err := websocket.Dial(wctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {u.auth}}})
		if err != nil {
			return res, fmt.Errorf("websocket to %s: %w", nc.base, err)
		}
		defer conn.CloseNow()
		conn.SetReadLimit(64 << 20)
		conns = append(conns, conn)
		a, bit := arr[k], uint64(1)<<k
		go func() {
			for {
				_, data, err := conn.Read(wctx)
				if err != nil {
					wsErr <- err
					return
				}
				now := time.Now()
				var p syncPage
				if err := json.Unmarshal(data, &p); err != nil {
					wsErr <- err
					return
				}
				mu.Lock()
				a.frames++
				for _, e := range p.Events {
					if e.Kind != "message" || e.Message == nil {
						continue
					}
					at, ok := pending[e.Message.ClientID]
					if !ok {
						if k == 0 {
							res.Backlog++
						}
						continue
					}
					if at.got&bit != 0 {
						a.dups++
						continue
					}
					at.got |= bit
					if at.warm {
						if k == 0 || spread {
							res.Warmup.Received++
						}
						continue
					}
					a.delivery = append(a.delivery, now.Sub(at.scheduled))
					a.fromStart = append(a.fromStart, now.Sub(at.started))
					if at.node != k {
						a.cross = append(a.cross, now.Sub(at.scheduled))
					}
					a.received++
				}
				done := sendsDone && caughtUp()
				mu.Unlock()
				if done {
					select {
					case allIn <- struct{}{}:
					default:
					}
				}
			}
		}()
	}

	sends, warmSends := &tally{acks: make([]time.Duration, 0, total)}, &tally{}
	nodeSends := make([]*tally, len(nodes))
	for k := range nodeSends {
		nodeSends[k] = &tally{}
	}
	// The sends run on a pool of goroutines that grows, up to
	// MaxInFlight, only when every one is busy: a goroutine per send
	// grew a new stack for every request (copying it as the HTTP client
	// went deeper), CPU the generator takes from the nodes it measures
	// when they share a machine.
	type job struct {
		s   *sender
		cid string
		env string
		k   int
		at  time.Time
		t   *times
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	workers := 0
	work := func() {
		defer wg.Done()
		for j := range jobs {
			mu.Lock()
			j.t.started = time.Now()
			mu.Unlock()
			sr := nodes[j.k].send(ctx, j.s, j.cid, j.env)
			ack := time.Since(j.at)
			if !sr.ok() {
				mu.Lock()
				delete(pending, j.cid)
				mu.Unlock()
			}
			if j.t.warm {
				warmSends.add(sr, ack)
				continue
			}
			if sr.ok() {
				mu.Lock()
				acceptedTo[j.s.to]++
				mu.Unlock()
			}
			sends.add(sr, ack)
			nodeSends[j.k].add(sr, ack)
		}
	}
	interval := time.Second / time.Duration(rate)
	start := time.Now().Add(5 * time.Millisecond)
	measured := start.Add(time.Duration(warm) * interval)
	var cpu0 cpuSample
	var maxLag time.Duration
	var encErr error
	i := 0
	for ; i < warm+total && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		if i == warm {
			cpu0 = sampleCPU(r.dbPIDs)
		}
		s := r.senders[i%len(r.senders)]
		env, err := s.envelope(r.cfg.InlineEncrypt, r.pt)
		if err != nil {
			encErr = err
			break
		}
		cid := s.clientID()
		k := i % len(nodes)
		if spread {
			// Through its receiver's node in one of every len(nodes)
			// turns of the senders, another node in the others (i %
			// len(nodes) would tie the node to the sender, hence to its
			// receiver, whenever len(nodes) divides the senders).
			k = (s.to + i/len(r.senders)) % len(nodes)
		}
		t := &times{scheduled: at, started: at, node: k, warm: i < warm}
		mu.Lock()
		pending[cid] = t
		mu.Unlock()
		j := job{s: s, cid: cid, env: env, k: k, at: at, t: t}
		select {
		case jobs <- j:
		default:
			if workers < r.cfg.MaxInFlight {
				workers++
				wg.Add(1)
				go work()
			}
			jobs <- j
		}
		if lag := time.Since(at); lag > maxLag && !t.warm {
			maxLag = lag
		}
	}
	close(jobs)
	wg.Wait()
	res.Seconds = time.Since(measured).Seconds()
	res.Sent = max(i-warm, 0)
	if res.Sent > 0 {
		res.CPU = cpuSince(cpu0)
	}
	if encErr != nil {
		return res, encErr
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	mu.Lock()
	accepted = sends.accepted
	sendsDone = true
	done := caughtUp()
	mu.Unlock()
	if !done {
		// Wait for the last events (bounded).
		select {
		case <-allIn:
		case err := <-wsErr:
			return res, fmt.Errorf("websocket: %w", err)
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	stopWS()
	for _, conn := range conns {
		conn.Close(websocket.StatusNormalClosure, "")
	}
	mu.Lock()
	defer mu.Unlock()
	res.Accepted, res.Failed, res.Errors = sends.accepted, sends.failed, sends.errors
	if res.Warmup != nil {
		res.Warmup.Accepted, res.Warmup.Failed = warmSends.accepted, warmSends.failed
	}
	res.Spread = spread
	delivery, fromStart := arr[0].delivery, arr[0].fromStart
	res.Received = arr[0].received
	if spread {
		delivery, fromStart, res.Received = nil, nil, 0
		for _, a := range arr {
			delivery = append(delivery, a.delivery...)
			fromStart = append(fromStart, a.fromStart...)
			res.Received += a.received
		}
	}
	for _, a := range arr {
		res.Frames += a.frames
	}
	res.Missing = accepted - res.Received
	res.PerSecond = float64(sends.accepted) / res.Seconds
	res.Ack = percentiles(sends.acks)
	res.Delivery = percentiles(delivery)
	res.DeliveryFromStart = percentiles(fromStart)
	res.MaxStartLagMs = ms(maxLag)
	if len(nodes) > 1 {
		for k, a := range arr {
			res.Nodes = append(res.Nodes, NodeLive{
				Server: nodes[k].base, Accepted: nodeSends[k].accepted, Failed: nodeSends[k].failed,
				Ack: percentiles(nodeSends[k].acks), Received: a.received, Missing: expected(k) - a.received,
				Duplicates: a.dups, Delivery: percentiles(a.delivery), CrossNode: percentiles(a.cross),
			})
		}
	}
	if sends.accepted == 0 && sends.firstErr != nil {
		return res, fmt.Errorf("open loop: no send accepted; first error: %w", sends.firstErr)
	}
	return res, nil
}

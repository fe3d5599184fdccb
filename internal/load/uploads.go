package load

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"sandi.dev/internal/blob"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// The upload phase (Config.Uploads): one text sender measures each send's
// time to its answer, first alone, then while many attachment uploads run
// at once. The uploads go through the raw blob routes with random bytes
// for ciphertext: the server cannot tell them from a client's encrypted
// file (it never reads a blob), and the load generator spends its CPU on
// moving bytes, not on encrypting them.

// uploadsPerAccount is how many of the phase's uploads one account runs
// at once (the server's default cap on an account's unfinished uploads
// is 16).
const uploadsPerAccount = 8

// Limits of the upload phase's flags.
const (
	maxUploads      = 1024
	maxUploadBytes  = 1 << 30
	maxUploadRounds = 100
)

// UploadResult is the upload phase.
type UploadResult struct {
	Uploads   int   `json:"uploads"`   // at once, in each round
	Rounds    int   `json:"rounds"`    // times the uploads ran, one round after another
	Accounts  int   `json:"accounts"`  // uploading accounts (uploadsPerAccount each)
	SizeBytes int64 `json:"sizeBytes"` // ciphertext bytes of one upload
	// Completed and Failed count uploads; Errors the failures by
	// "status code" or "transport".
	Completed int64            `json:"completed"`
	Failed    int64            `json:"failed"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	// Seconds is from the first upload's start to the last one's end;
	// MiBPerSecond the bytes of the completed uploads over it.
	Seconds      float64 `json:"seconds"`
	MiBPerSecond float64 `json:"mibPerSecond"`
	// Alone and During are the text sender's send → answer latencies
	// before the uploads and while they run; Sends* their outcomes.
	Alone        Percentiles      `json:"aloneMs"`
	During       Percentiles      `json:"duringMs"`
	SendsFailed  int64            `json:"sendsFailed"`
	SendErrors   map[string]int64 `json:"sendErrors,omitempty"`
	Rotations    int              `json:"rotations"` // epochs the text sender made when the server asked
	AloneSeconds float64          `json:"aloneSeconds"`
	// P99Ratio is During.P99 / Alone.P99 (the target: at most 2).
	P99Ratio float64 `json:"p99Ratio"`
	// ServerAloneMs and ServerDuringMs are the mean time a send spent in
	// the server's handler, alone and during the uploads, from the
	// server's /metrics (0 when it does not serve them to the tool): the
	// latency without the client's own waits for a CPU.
	ServerAloneMs  float64 `json:"serverAloneMs,omitempty"`
	ServerDuringMs float64 `json:"serverDuringMs,omitempty"`
	CPUAlone       CPUUse  `json:"cpuAlone"`
	CPU            CPUUse  `json:"cpu"` // during the uploads
}

// Accepted is the text sends the phase had accepted.
func (u *UploadResult) Accepted() int64 { return int64(u.Alone.N + u.During.N) }

// uploadPhase runs the phase: the sender alone for cfg.UploadBaseline,
// then again while cfg.Uploads uploads of cfg.UploadSize run at once
// (cfg.UploadRounds times), until the last one ends.
func (r *runner) uploadPhase(ctx context.Context) (UploadResult, error) {
	cfg := r.cfg
	res := UploadResult{Uploads: cfg.Uploads, Rounds: cfg.UploadRounds, Accounts: len(r.uploaders), SizeBytes: cfg.UploadSize, AloneSeconds: cfg.UploadBaseline.Seconds()}
	ts := r.senders[0]
	// One body for every part: random, so that nothing on the way
	// compresses it.
	body := make([]byte, min(cfg.UploadSize, blob.PartSize))
	rand.Read(body)

	metrics := cmp.Or(cfg.Metrics, r.c.base+"/metrics")
	srv0 := r.c.sendRouteTime(ctx, metrics)
	cpu0 := sampleCPU(r.dbPIDs)
	stopAlone := make(chan struct{})
	time.AfterFunc(cfg.UploadBaseline, func() { close(stopAlone) })
	alone, err := r.textSends(ctx, ts, stopAlone, &res)
	if err != nil {
		return res, err
	}
	res.CPUAlone = cpuSince(cpu0)
	res.Alone = percentiles(alone)
	srv1 := r.c.sendRouteTime(ctx, metrics)
	res.ServerAloneMs = srv1.meanMs(srv0)

	stop := make(chan struct{})
	type sendsDone struct {
		lat []time.Duration
		err error
	}
	during := make(chan sendsDone, 1)
	go func() {
		lat, err := r.textSends(ctx, ts, stop, &res)
		during <- sendsDone{lat, err}
	}()
	cpu1 := sampleCPU(r.dbPIDs)
	start := time.Now()
	var mu sync.Mutex
	var done []string // completed blobs, deleted after the phase
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if res.Failed == 0 {
			r.logf("upload failed: %v", err)
		}
		key := uploadErrKey(err)
		res.Failed++
		if res.Errors == nil {
			res.Errors = map[string]int64{}
		}
		res.Errors[key]++
	}
	for range cfg.UploadRounds {
		var wg sync.WaitGroup
		for i := range cfg.Uploads {
			u := r.uploaders[i/uploadsPerAccount]
			wg.Go(func() {
				id, err := r.c.uploadBlob(ctx, u, cfg.UploadSize, body)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				res.Completed++
				done = append(done, id)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	res.CPU = cpuSince(cpu1)
	close(stop)
	d := <-during
	if d.err != nil {
		return res, d.err
	}
	res.During = percentiles(d.lat)
	res.ServerDuringMs = r.c.sendRouteTime(ctx, metrics).meanMs(srv1)
	res.Seconds = elapsed.Seconds()
	res.MiBPerSecond = float64(res.Completed*cfg.UploadSize) / (1 << 20) / elapsed.Seconds()
	if res.Alone.P99 > 0 {
		res.P99Ratio = res.During.P99 / res.Alone.P99
	}
	// Untimed: the blobs go, so that the quota and the disk are as
	// before the phase.
	for _, id := range done {
		u := r.uploaders[0].u
		for _, up := range r.uploaders {
			if up.blobs[id] {
				u = up.u
			}
		}
		if err := r.c.do(ctx, u.token, "DELETE", "/api/blobs/"+id, nil, nil); err != nil {
			return res, fmt.Errorf("delete an uploaded blob: %w", err)
		}
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if res.Completed == 0 {
		return res, fmt.Errorf("upload phase: no upload completed (%v)", res.Errors)
	}
	return res, nil
}

// uploadErrKey names a failed upload in the report.
func uploadErrKey(err error) string {
	var a *apiError
	if errors.As(err, &a) {
		return strconv.Itoa(a.Status) + " " + a.Code
	}
	return "transport"
}

// textSends sends text messages from s one after another (after each
// answer, the next send waits for the next tick of Config.SendEvery)
// until stop, at least one, and returns the accepted sends' latencies. When the server
// asks for a new epoch (its rotation policy), s makes one, untimed, and
// sends again.
func (r *runner) textSends(ctx context.Context, s *sender, stop <-chan struct{}, res *UploadResult) ([]time.Duration, error) {
	var lat []time.Duration
	tick := time.NewTicker(r.cfg.SendEvery)
	defer tick.Stop()
	for {
		env, err := s.encrypt(r.pt)
		if err != nil {
			return lat, err
		}
		t0 := time.Now()
		sr := r.c.send(ctx, s, s.clientID(), env)
		took := time.Since(t0)
		switch {
		case sr.ok():
			lat = append(lat, took)
		case sr.code == "rotation_required":
			if err := r.c.rotate(ctx, s, r.rcv); err != nil {
				return lat, fmt.Errorf("text sender: new epoch: %w", err)
			}
			res.Rotations++
			continue // at once: this send was refused
		default:
			res.SendsFailed++
			if res.SendErrors == nil {
				res.SendErrors = map[string]int64{}
			}
			res.SendErrors[sr.errorKey()]++
		}
		select {
		case <-stop:
			return lat, nil
		case <-ctx.Done():
			return lat, ctx.Err()
		case <-tick.C:
		}
	}
}

// blobAnswer is the server's answer to the creation of an upload.
type blobAnswer struct {
	Blob  string `json:"blob"`
	Parts int    `json:"parts"`
}

// uploadBlob uploads size bytes into s's conversation (every part's body
// cut from body) and completes the upload; it returns the blob's id.
func (c *client) uploadBlob(ctx context.Context, s *sender, size int64, body []byte) (string, error) {
	var a blobAnswer
	if err := c.do(ctx, s.u.token, "POST", "/api/conversations/"+s.conv.String()+"/blobs", map[string]int64{"size": size}, &a); err != nil {
		return "", err
	}
	s.mu.Lock()
	if s.blobs == nil {
		s.blobs = map[string]bool{}
	}
	s.blobs[a.Blob] = true
	s.mu.Unlock()
	for n := range a.Parts {
		part := min(blob.PartSize, size-int64(n)*blob.PartSize)
		req, err := http.NewRequestWithContext(ctx, "PUT", c.base+"/api/blobs/"+a.Blob+"/parts/"+strconv.Itoa(n), bytes.NewReader(body[:part]))
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", s.u.auth)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := c.hc.Do(req)
		if err != nil {
			return "", err
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			e := &apiError{}
			json.Unmarshal(rb, e)
			e.Status = resp.StatusCode
			return "", fmt.Errorf("part %d: %w", n, e)
		}
	}
	if err := c.do(ctx, s.u.token, "POST", "/api/blobs/"+a.Blob+"/complete", nil, nil); err != nil {
		return "", err
	}
	return a.Blob, nil
}

// rotate makes the next epoch of s's conversation with rcv, as a client
// does when the server's policy asks for one: claim both members'
// bundles, seal a new epoch secret to their devices, post it.
func (c *client) rotate(ctx context.Context, s *sender, rcv *user) error {
	bundles, err := c.claim(ctx, s.u, rcv)
	if err != nil {
		return err
	}
	s.mu.Lock()
	n := s.epoch + 1
	s.mu.Unlock()
	dist, es, err := secret.NewDistribution(s.u.key, secret.EpochRequest{Chain: s.chain, Epoch: n, Creator: s.u.ref(), Time: time.Now().UnixMilli(), Bundles: bundles})
	if err != nil {
		return err
	}
	if err := c.do(ctx, s.u.token, "POST", "/api/conversations/"+s.conv.String()+"/sessions", map[string]string{"session": b64(dist.Marshal())}, nil); err != nil {
		return err
	}
	ep, err := secret.NewEpoch(es, s.conv, n, s.u.ref(), dist.Devices())
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.ep, s.epoch = ep, n
	s.mu.Unlock()
	return nil
}

// claim claims and verifies a bundle of every device of s and rcv.
func (c *client) claim(ctx context.Context, s, rcv *user) ([]*protocol.Bundle, error) {
	var ca claimAnswer
	if err := c.do(ctx, s.token, "POST", "/api/keys/claim", map[string]any{"users": []protocol.UserID{s.id, rcv.id}}, &ca); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	var bundles []*protocol.Bundle
	for _, cb := range ca.Bundles {
		raw, err := base64Decode(cb.Bundle)
		if err != nil {
			return nil, err
		}
		b, err := protocol.ParseBundle(raw)
		if err != nil {
			return nil, err
		}
		if err := b.Verify(); err != nil {
			return nil, err
		}
		bundles = append(bundles, b)
	}
	return bundles, nil
}

// routeTime is the send route's total time in the server's handler and
// its count of requests, as its /metrics report them.
type routeTime struct{ seconds, count float64 }

// meanMs is the mean time of the requests between since and t.
func (t routeTime) meanMs(since routeTime) float64 {
	if t.count <= since.count {
		return 0
	}
	return (t.seconds - since.seconds) / (t.count - since.count) * 1000
}

// sendRouteTime reads the send route's time from the server's /metrics
// at url (zero if it does not serve them there).
func (c *client) sendRouteTime(ctx context.Context, url string) routeTime {
	var t routeTime
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return t
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return t
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return t
	}
	const route = `route="POST /api/conversations/{id}/messages"`
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, route) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		switch {
		case err != nil:
		case strings.HasPrefix(line, "sandi_http_request_duration_seconds_sum{"):
			t.seconds += v
		case strings.HasPrefix(line, "sandi_http_request_duration_seconds_count{"):
			t.count += v
		}
	}
	return t
}

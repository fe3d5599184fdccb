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
	"os"
	"os/exec"
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
	// UploaderPID is the process that ran the uploads: this one, or a
	// child (Config.UploadProcess), whose CPU CPU counts as the others'.
	UploaderPID int `json:"uploaderPid"`
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
	var out uploadOutcome
	if cfg.UploadProcess {
		out, err = r.uploadsInChild(ctx)
	} else {
		out = runUploads(ctx, r.c, r.uploaders, cfg.Uploads, cfg.UploadRounds, cfg.UploadSize, r.logf)
	}
	if err != nil {
		close(stop)
		<-during
		return res, err
	}
	res.Completed, res.Failed, res.Errors, res.Seconds, res.UploaderPID = out.Completed, out.Failed, out.Errors, out.Seconds, out.PID
	res.CPU = cpuSince(cpu1)
	close(stop)
	d := <-during
	if d.err != nil {
		return res, d.err
	}
	res.During = percentiles(d.lat)
	res.ServerDuringMs = r.c.sendRouteTime(ctx, metrics).meanMs(srv1)
	res.MiBPerSecond = float64(res.Completed*cfg.UploadSize) / (1 << 20) / res.Seconds
	if res.Alone.P99 > 0 {
		res.P99Ratio = res.During.P99 / res.Alone.P99
	}
	// Untimed: the blobs go, so that the quota and the disk are as
	// before the phase.
	for _, b := range out.Blobs {
		if err := r.c.do(ctx, r.uploaders[b.Uploader].u.token, "DELETE", "/api/blobs/"+b.ID, nil, nil); err != nil {
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

// uploadOutcome is what the uploads of the phase did, in this process or
// in a child (its answer, as JSON).
type uploadOutcome struct {
	Completed int64            `json:"completed"`
	Failed    int64            `json:"failed"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	Seconds   float64          `json:"seconds"` // from the first start to the last end
	Blobs     []uploadedBlob   `json:"blobs"`   // the completed ones
	PID       int              `json:"pid"`     // of the process that ran them
}

// uploadedBlob is a completed upload: its blob and the index of its
// uploader.
type uploadedBlob struct {
	ID       string `json:"id"`
	Uploader int    `json:"uploader"`
}

// runUploads runs rounds of n uploads of size bytes at once, spread over
// the uploaders (uploadsPerAccount each), one round after another.
func runUploads(ctx context.Context, c *client, uploaders []*sender, n, rounds int, size int64, logf func(string, ...any)) uploadOutcome {
	// One body for every part: random, so that nothing on the way
	// compresses it.
	body := make([]byte, min(size, blob.PartSize))
	rand.Read(body)
	var out uploadOutcome
	var mu sync.Mutex
	start := time.Now()
	for range rounds {
		var wg sync.WaitGroup
		for i := range n {
			k := i / uploadsPerAccount
			wg.Go(func() {
				id, err := c.uploadBlob(ctx, uploaders[k], size, body)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if out.Failed == 0 {
						logf("upload failed: %v", err)
					}
					out.Failed++
					if out.Errors == nil {
						out.Errors = map[string]int64{}
					}
					out.Errors[uploadErrKey(err)]++
					return
				}
				out.Completed++
				out.Blobs = append(out.Blobs, uploadedBlob{id, k})
			})
		}
		wg.Wait()
	}
	out.Seconds = time.Since(start).Seconds()
	out.PID = os.Getpid()
	return out
}

// UploadWorkerEnv, set in a process's environment, makes the load tool
// (cmd/sandi-load, or a test binary of this package) the child that runs
// the upload phase's uploads (Config.UploadProcess): RunUploadWorker.
const UploadWorkerEnv = "SANDI_LOAD_UPLOAD_WORKER"

// uploadNice is the child's scheduling priority (nice): below the server
// and the timing sender, as uploads from other machines would be.
const uploadNice = 10

// uploadJob is what the parent tells the child, as JSON on its standard
// input.
type uploadJob struct {
	Server    string      `json:"server"`
	Uploads   int         `json:"uploads"`
	Rounds    int         `json:"rounds"`
	Size      int64       `json:"size"`
	Uploaders []jobSender `json:"uploaders"`
}

type jobSender struct {
	Token string                  `json:"token"`
	Conv  protocol.ConversationID `json:"conv"`
}

// uploadsInChild runs the uploads in a child process at a lower priority:
// on a machine that runs the server and the tool both, the uploads then
// take the CPU that the server and the timing sender leave, as uploads
// from other machines would, instead of sharing this process's scheduler
// and threads with the timed sends.
func (r *runner) uploadsInChild(ctx context.Context) (uploadOutcome, error) {
	var out uploadOutcome
	job := uploadJob{Server: r.c.base, Uploads: r.cfg.Uploads, Rounds: r.cfg.UploadRounds, Size: r.cfg.UploadSize}
	for _, u := range r.uploaders {
		job.Uploaders = append(job.Uploaders, jobSender{u.u.token, u.conv})
	}
	in, err := json.Marshal(job)
	if err != nil {
		return out, err
	}
	self, err := os.Executable()
	if err != nil {
		return out, fmt.Errorf("upload child: %w", err)
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), UploadWorkerEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return out, fmt.Errorf("upload child: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return out, fmt.Errorf("upload child's answer: %w", err)
	}
	for _, b := range out.Blobs {
		if b.Uploader < 0 || b.Uploader >= len(r.uploaders) {
			return out, fmt.Errorf("upload child's answer: uploader %d of %d", b.Uploader, len(r.uploaders))
		}
	}
	return out, nil
}

// RunUploadWorker is the child of Config.UploadProcess: it reads its job
// from stdin, lowers its own priority, runs the uploads and writes what
// they did to stdout as JSON.
func RunUploadWorker(stdin io.Reader, stdout, stderr io.Writer) error {
	var job uploadJob
	if err := json.NewDecoder(stdin).Decode(&job); err != nil {
		return fmt.Errorf("upload job: %w", err)
	}
	if len(job.Uploaders) == 0 || job.Uploads < 1 || job.Uploads > maxUploads || job.Size < 1 || job.Size > maxUploadBytes ||
		job.Rounds < 1 || job.Rounds > maxUploadRounds || (job.Uploads+uploadsPerAccount-1)/uploadsPerAccount > len(job.Uploaders) {
		return errors.New("upload job: out of range")
	}
	if err := lowerPriority(uploadNice); err != nil {
		return fmt.Errorf("upload child: nice: %w", err)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	c := newClient(job.Server, logf)
	var us []*sender
	for _, j := range job.Uploaders {
		us = append(us, &sender{u: &user{token: j.Token, auth: "Bearer " + j.Token}, conv: j.Conv})
	}
	out := runUploads(context.Background(), c, us, job.Uploads, job.Rounds, job.Size, logf)
	return json.NewEncoder(stdout).Encode(out)
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
			if err := r.c.rotate(ctx, s, r.rcvs[s.to]); err != nil {
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

package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/store"
)

// Attachment blobs (api.md, Attachments): ciphertext the server stores in
// Config.Blobs and serves to the members of the conversation it was bound
// to at upload. The server never reads it. An upload is created, sent in
// parts of blob.PartSize (each durable before it is acknowledged), then
// completed; only then is it served, and only then may a message
// reference it.

// Blob limits' defaults.
const (
	// DefaultMaxBlob is the largest blob, in ciphertext bytes: 100 MiB of
	// plaintext with its encryption's overhead (16 bytes a 64 KiB chunk,
	// 25 KiB for 100 MiB) and room to spare.
	DefaultMaxBlob = 101 << 20
	// DefaultBlobQuota is the ciphertext bytes of live blobs an account
	// may hold.
	DefaultBlobQuota = 1 << 30
	// BlobUploadTTL is how long an unfinished upload lives; BlobRefTTL how
	// long a completed blob waits for a message to reference it. Past
	// either, the blob is collected.
	BlobUploadTTL = 24 * time.Hour
	BlobRefTTL    = 24 * time.Hour
	// MaxMessageBlobs is the most blobs one message may reference.
	MaxMessageBlobs = 32
)

// Problem codes of the blob routes (api.md lists them).
const (
	CodeBlobTooLarge   = "blob_too_large"
	CodeQuotaExceeded  = "quota_exceeded"
	CodeTooManyUploads = "too_many_uploads"
	CodeBadPart        = "bad_part"
	CodeBlobComplete   = "blob_complete"
	CodeBlobIncomplete = "blob_incomplete"
	CodeBadBlob        = "bad_blob"
	CodeBadRange       = "range_not_satisfiable"
)

func (c *Config) blobDefaults() {
	if c.MaxBlobSize <= 0 {
		c.MaxBlobSize = DefaultMaxBlob
	}
	if c.BlobQuota == 0 {
		c.BlobQuota = DefaultBlobQuota
	}
	if c.MaxOpenUploads == 0 {
		c.MaxOpenUploads = 16
	}
	if c.BlobUploadsPerMinute == 0 {
		c.BlobUploadsPerMinute = 600
	}
	if c.BlobTransferTimeout <= 0 {
		c.BlobTransferTimeout = 10 * time.Minute
	}
	if c.UploadPace == 0 {
		c.UploadPace = DefaultUploadPacePerCore * int64(runtime.GOMAXPROCS(0))
	}
}

func newBlobID() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// validBlobID: 32 lower-case hex digits, as newBlobID makes them.
func validBlobID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// partLen is the length of part n of a blob of size bytes.
func partLen(size int64, n int) int64 {
	return min(blob.PartSize, size-int64(n)*blob.PartSize)
}

func partsOf(size int64) int { return int((size + blob.PartSize - 1) / blob.PartSize) }

var errNoBlob = problem(http.StatusNotFound, CodeNotFound, "no such blob", nil)

// blobsOff answers the blob routes of a server without a blob store.
var blobsOff = problem(http.StatusServiceUnavailable, CodeUnavailable, "this server keeps no attachments", nil)

// blobErr maps the blob store's errors as the database's are mapped: a
// full disk is 503 storage_full, an unreachable store 503 unavailable.
func (s *Server) blobErr(r *http.Request, err error) error {
	if errors.Is(err, blob.ErrUnavailable) {
		s.log.Error("blob store unreachable", "method", r.Method, "path", r.URL.Path, "err", err)
		p := problem(http.StatusServiceUnavailable, CodeUnavailable, "the server's file storage is unreachable; try again shortly", err)
		p.RetryAfter = 2
		return p
	}
	if errors.Is(err, blob.ErrFull) {
		s.log.Error("blob storage full: uploads refused until space is freed", "method", r.Method, "path", r.URL.Path, "err", err)
		s.metrics.blobsRefused.WithLabelValues(CodeStorageFull).Inc()
		p := problem(http.StatusServiceUnavailable, CodeStorageFull, "the server's storage is full; try again later", err)
		p.RetryAfter = 30
		return p
	}
	return err
}

// refuse counts a refused upload by its code and returns p.
func (s *Server) refuse(p *Problem) *Problem {
	s.metrics.blobsRefused.WithLabelValues(p.Code).Inc()
	return p
}

type blobInfo struct {
	Blob      string `json:"blob"`
	Size      int64  `json:"size"`
	PartSize  int64  `json:"partSize"`
	Parts     int    `json:"parts"`
	ExpiresAt int64  `json:"expiresAt"`
	// For GET …/upload only.
	Received *[]int `json:"received,omitempty"`
	Complete *bool  `json:"complete,omitempty"`
}

func (s *Server) createBlob(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.cfg.Blobs == nil {
		return blobsOff
	}
	var req struct {
		Size int64 `json:"size"`
	}
	if err := decode(r, &req, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	if req.Size < 1 {
		return badRequest("size is the ciphertext's length in bytes, at least 1", nil)
	}
	if req.Size > s.cfg.MaxBlobSize {
		return s.refuse(problem(http.StatusRequestEntityTooLarge, CodeBlobTooLarge, fmt.Sprintf("a blob has at most %d bytes", s.cfg.MaxBlobSize), nil))
	}
	if err := s.blobRate.allow(c.device.ID.String()); err != nil {
		return err
	}
	lim := store.BlobLimits{Quota: max(s.cfg.BlobQuota, 0), MaxOpen: max(s.cfg.MaxOpenUploads, 0)}
	// A cheap look first, so that an account at its limits costs no
	// upload in the blob store; CreateBlob checks again, atomically.
	used, open, err := s.store.BlobUsage(r.Context(), c.user())
	if err != nil {
		return err
	}
	if err := s.blobLimitErr(c, used+req.Size, open+1, lim); err != nil {
		return err
	}
	now := s.cfg.Now()
	b := store.Blob{ID: newBlobID(), Conversation: c.conv, User: c.user(), Device: c.device.ID, Size: req.Size, Parts: partsOf(req.Size),
		CreatedAt: now.UnixMilli(), ExpiresAt: now.Add(BlobUploadTTL).UnixMilli()}
	// The upload first, then its row: a crash between them leaves an
	// upload no row names, which the orphan sweep deletes.
	if b.State, err = s.cfg.Blobs.Begin(r.Context(), b.ID); err != nil {
		return s.blobErr(r, err)
	}
	if err := s.store.CreateBlob(r.Context(), b, lim); err != nil {
		if derr := s.cfg.Blobs.Delete(r.Context(), b.ID, b.State); derr != nil {
			s.log.Warn("blob: delete a refused upload", "blob", b.ID, "err", derr)
		}
		switch {
		case errors.Is(err, store.ErrBlobQuota):
			return s.blobLimitErr(c, lim.Quota+1, 0, lim)
		case errors.Is(err, store.ErrTooManyUploads):
			return s.blobLimitErr(c, 0, lim.MaxOpen+1, lim)
		}
		return err
	}
	s.writeJSON(w, http.StatusCreated, blobInfo{Blob: b.ID, Size: b.Size, PartSize: blob.PartSize, Parts: b.Parts, ExpiresAt: b.ExpiresAt})
	return nil
}

// blobLimitErr is the refusal of an upload that would take its account to
// bytes of live blobs and open unfinished uploads, or nil.
func (s *Server) blobLimitErr(c *call, bytes int64, open int, lim store.BlobLimits) error {
	if lim.Quota > 0 && bytes > lim.Quota {
		s.log.Info("blob quota reached: upload refused", "user", c.user().String(), "quota", lim.Quota)
		return s.refuse(problem(http.StatusForbidden, CodeQuotaExceeded,
			fmt.Sprintf("an account holds at most %d bytes of attachments; delete some first", lim.Quota), nil))
	}
	if lim.MaxOpen > 0 && open > lim.MaxOpen {
		p := s.refuse(problem(http.StatusTooManyRequests, CodeTooManyUploads,
			fmt.Sprintf("an account has at most %d unfinished uploads; complete or delete one first", lim.MaxOpen), nil))
		p.RetryAfter = 60
		return p
	}
	return nil
}

// ownBlob returns the live blob named by the path that the caller's
// account uploaded; anything else (no such blob, another account's, an
// expired upload, a deleted one) is 404.
func (s *Server) ownBlob(r *http.Request, c *call) (store.Blob, error) {
	if s.cfg.Blobs == nil {
		return store.Blob{}, blobsOff
	}
	id := r.PathValue("blob")
	if !validBlobID(id) {
		return store.Blob{}, errNoBlob
	}
	b, err := s.store.Blob(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return b, errNoBlob
	}
	if err != nil {
		return b, err
	}
	if b.Deleted || b.User != c.user() || s.expired(&b) {
		return b, errNoBlob
	}
	return b, nil
}

// expired reports whether b is past its time and unreferenced: collected,
// or about to be.
func (s *Server) expired(b *store.Blob) bool {
	return !b.Referenced && b.ExpiresAt <= s.now()
}

// blobReader remembers the error of the request body, to tell a client's
// short or broken body from a failure of the blob store.
type blobReader struct {
	r   io.Reader
	err error
}

func (b *blobReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// yieldReader is an upload's body, which lets message sends go first:
// while one is in its handler, each read waits for it, up to yieldMax.
// Uploads can take both cores of a small machine (the part bodies read,
// copied and synced at hundreds of MiB/s), and a text message then
// waited for a core behind them (docs/performance.md, uploads beside
// text). The bound keeps uploads moving under a steady stream of sends.
//
// With slots (a local blob store), a read that returns bytes also takes
// a slot, which the next read (or release) gives back: the server
// processes at most cap(slots) uploads' bytes at once, and the others
// wait for a slot with their bytes in hand. A slot is never held while
// a read waits on its client, so a slow or stalled client holds up no
// one but itself.
type yieldReader struct {
	r       io.Reader
	sending *atomic.Int64
	sleep   func(time.Duration) // time.Sleep when nil
	yields  prometheus.Counter  // reads that waited; nil: not counted
	slots   chan struct{}       // nil: no bound
	pace    *uploadPacer        // nil: not paced
	left    int64               // bytes still to come: the last read keeps no slot
	held    bool
}

// yieldMax bounds one read's wait for the sends in progress, and
// yieldStep is how often it looks again.
const (
	yieldMax  = 5 * time.Millisecond
	yieldStep = 200 * time.Microsecond
)

func (y *yieldReader) Read(p []byte) (int, error) {
	y.release()
	sleep := y.sleep
	if sleep == nil {
		sleep = time.Sleep
	}
	if y.sending.Load() > 0 && y.yields != nil {
		y.yields.Inc()
	}
	for waited := time.Duration(0); waited < yieldMax && y.sending.Load() > 0; waited += yieldStep {
		sleep(yieldStep)
	}
	n, err := y.r.Read(p)
	y.left -= int64(n)
	if d := y.pace.delay(n, time.Now()); d > 0 {
		sleep(d)
	}
	if y.slots != nil && n > 0 && err == nil && y.left > 0 {
		y.slots <- struct{}{}
		y.held = true
	}
	return n, err
}

// release gives back the slot of the last read, if it holds one.
func (y *yieldReader) release() {
	if y.held {
		<-y.slots
		y.held = false
	}
}

// DefaultUploadPacePerCore is the default of Config.UploadPace for each
// core: moving an upload's bytes costs the server (and, on loopback, its
// clients) about 7 ms of CPU a MiB, so 16 MiB/s a core leaves about nine
// tenths of the cores to message sends (docs/performance.md, "Thirteenth
// round: uploads paced beside text").
const DefaultUploadPacePerCore = 16 << 20

// paceWindow is how long after a message send began the uploads stay
// paced.
const paceWindow = 250 * time.Millisecond

// uploadPacer bounds the bytes a second that the uploads of a server
// read together while messages are sent: within window after a send
// began, each read of a part's body is followed by a wait, so that the
// reads of all uploads keep to rate between them, first come first
// served. Without sends the uploads go as fast as they can. A send
// waited for a core behind uploads that took every core of a small
// machine (docs/performance.md: uploads beside text); ordering the reads
// behind the sends in their handler (yieldReader) did not leave the
// sends the cores they need before and after it.
type uploadPacer struct {
	rate   float64            // bytes a second
	window time.Duration      // how long after a send the uploads stay paced
	start  time.Time          // the origin of lastSend
	waited prometheus.Counter // seconds waited; nil: not counted
	// lastSend is when the newest send began, as nanoseconds since start.
	lastSend atomic.Int64

	mu   sync.Mutex
	next time.Time // when the next read's bytes are due
}

// newUploadPacer returns a pacer of rate bytes a second, nil (no pace)
// for a rate that is not positive.
func newUploadPacer(rate int64, window time.Duration, waited prometheus.Counter) *uploadPacer {
	if rate <= 0 {
		return nil
	}
	p := &uploadPacer{rate: float64(rate), window: window, start: time.Now(), waited: waited}
	p.lastSend.Store(-int64(window) - 1)
	return p
}

// sent records a message send beginning now.
func (p *uploadPacer) sent() {
	if p != nil {
		p.lastSend.Store(int64(time.Since(p.start)))
	}
}

// delay returns how long a read of n bytes at now waits.
func (p *uploadPacer) delay(n int, now time.Time) time.Duration {
	if p == nil || n <= 0 || now.Sub(p.start)-time.Duration(p.lastSend.Load()) > p.window {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	d := at.Sub(now)
	if d > 0 && p.waited != nil {
		p.waited.Add(d.Seconds())
	}
	return d
}

// newUploadSlots is the bound of yieldReader: half the cores the server
// may use (at least one), so that message sends keep the others.
func newUploadSlots() chan struct{} {
	return make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))
}

func (s *Server) putBlobPart(w http.ResponseWriter, r *http.Request, c *call) error {
	b, err := s.ownBlob(r, c)
	if err != nil {
		return err
	}
	if b.Complete {
		return problem(http.StatusConflict, CodeBlobComplete, "the upload is complete", nil)
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= b.Parts {
		return s.refuse(problem(http.StatusBadRequest, CodeBadPart, fmt.Sprintf("the blob has parts 0 to %d", b.Parts-1), err))
	}
	want := partLen(b.Size, n)
	if r.ContentLength != want {
		return s.refuse(problem(http.StatusBadRequest, CodeBadPart, fmt.Sprintf("part %d has %d bytes (Content-Length)", n, want), nil))
	}
	if err := s.blobRate.allow(c.device.ID.String()); err != nil {
		return err
	}
	if b.HasPart(n) {
		// A rewrite: the part is not whole while it is written.
		if err := s.store.SetBlobPart(r.Context(), b.ID, n, false, b.State); err != nil {
			return s.partErr(err)
		}
	}
	// The server's read and write timeouts are for small requests; a
	// part has its own, and its answer comes after its body.
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(s.cfg.BlobTransferTimeout)
	rc.SetReadDeadline(deadline)
	rc.SetWriteDeadline(deadline.Add(time.Minute))
	yr := &yieldReader{r: http.MaxBytesReader(w, r.Body, want), sending: &s.sending, slots: s.uploadSlots, pace: s.uploadPace, left: want, yields: s.metrics.uploadYields}
	defer yr.release()
	body := &blobReader{r: yr}
	state, err := s.cfg.Blobs.WritePart(r.Context(), b.ID, b.State, n, body, want)
	if err != nil {
		if body.err != nil || errors.Is(err, io.ErrUnexpectedEOF) {
			return s.refuse(problem(http.StatusBadRequest, CodeBadPart, fmt.Sprintf("part %d: the body ended before its %d bytes", n, want), err))
		}
		if errors.Is(err, blob.ErrNotFound) {
			// Completed, deleted or collected meanwhile.
			return errNoBlob
		}
		return s.blobErr(r, err)
	}
	if err := s.store.SetBlobPart(r.Context(), b.ID, n, true, state); err != nil {
		return s.partErr(err)
	}
	s.metrics.blobBytes.Add(float64(want))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) partErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNoBlob
	case errors.Is(err, store.ErrBlobComplete):
		return problem(http.StatusConflict, CodeBlobComplete, "the upload is complete", nil)
	}
	return err
}

func received(b *store.Blob) []int {
	out := []int{}
	for n := 0; n < b.Parts; n++ {
		if b.HasPart(n) {
			out = append(out, n)
		}
	}
	return out
}

func (s *Server) blobUpload(w http.ResponseWriter, r *http.Request, c *call) error {
	b, err := s.ownBlob(r, c)
	if err != nil {
		return err
	}
	got := received(&b)
	s.writeJSON(w, http.StatusOK, blobInfo{Blob: b.ID, Size: b.Size, PartSize: blob.PartSize, Parts: b.Parts, ExpiresAt: b.ExpiresAt,
		Received: &got, Complete: &b.Complete})
	return nil
}

// incompleteProblem is blob_incomplete with the missing parts, as numbers.
type incompleteProblem struct {
	*Problem
	Missing []int `json:"missing"`
}

func (s *Server) completeBlob(w http.ResponseWriter, r *http.Request, c *call) error {
	b, err := s.ownBlob(r, c)
	if err != nil {
		return err
	}
	if !b.Complete {
		if missing := b.Missing(); len(missing) > 0 {
			p := problem(http.StatusConflict, CodeBlobIncomplete, fmt.Sprintf("%d of %d parts are missing", len(missing), b.Parts), nil)
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(p.Status)
			json.NewEncoder(w).Encode(incompleteProblem{p, missing})
			return nil
		}
		if err := s.cfg.Blobs.Commit(r.Context(), b.ID, b.State, b.Parts, b.Size); err != nil {
			if errors.Is(err, blob.ErrNotFound) {
				return errNoBlob
			}
			return s.blobErr(r, err)
		}
		now := s.cfg.Now()
		if err := s.store.CompleteBlob(r.Context(), b.ID, now.UnixMilli(), now.Add(BlobRefTTL).UnixMilli()); err != nil {
			if errors.Is(err, store.ErrBlobIncomplete) {
				return problem(http.StatusConflict, CodeBlobIncomplete, "a part is being written again", err)
			}
			return s.partErr(err)
		}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"blob": b.ID, "size": b.Size})
	return nil
}

func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.cfg.Blobs == nil {
		return blobsOff
	}
	id := r.PathValue("blob")
	if !validBlobID(id) {
		return errNoBlob
	}
	b, err := s.store.DeleteBlob(r.Context(), id, c.user())
	if errors.Is(err, store.ErrNotFound) {
		return errNoBlob
	}
	if err != nil {
		return err
	}
	// The row is a tombstone now, never served: the object goes next,
	// then the row. Should either fail, collection does it again.
	if s.purge(r.Context(), b) {
		s.metrics.blobsCollected.WithLabelValues("deleted").Inc()
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// byteRange is one satisfiable range of a blob: [off, off+n).
type byteRange struct{ off, n int64 }

// parseRange reads a Range header against a blob of size bytes. ok is
// false for no range (or one in another unit: the whole blob is served);
// an unsatisfiable, malformed or multiple range is an error (416).
func parseRange(h string, size int64) (br byteRange, ok bool, err error) {
	if h == "" {
		return byteRange{0, size}, false, nil
	}
	spec, isBytes := strings.CutPrefix(h, "bytes=")
	if !isBytes {
		return byteRange{0, size}, false, nil
	}
	bad := errors.New("one range of bytes within the blob, as bytes=first-last, bytes=first- or bytes=-suffix")
	if strings.Contains(spec, ",") {
		return br, false, bad
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return br, false, bad
	}
	num := func(s string) (int64, bool) {
		v, err := strconv.ParseInt(s, 10, 64)
		return v, err == nil && v >= 0 && s != "" && s[0] != '+'
	}
	if first == "" { // the last n bytes
		n, okN := num(last)
		if !okN || n == 0 {
			return br, false, bad
		}
		n = min(n, size)
		return byteRange{size - n, n}, true, nil
	}
	a, okA := num(first)
	if !okA || a >= size {
		return br, false, bad
	}
	b := size - 1
	if last != "" {
		var okB bool
		if b, okB = num(last); !okB || b < a {
			return br, false, bad
		}
		b = min(b, size-1)
	}
	return byteRange{a, b - a + 1}, true, nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.cfg.Blobs == nil {
		return blobsOff
	}
	id := r.PathValue("blob")
	if !validBlobID(id) {
		return errNoBlob
	}
	b, err := s.store.Blob(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errNoBlob
	}
	if err != nil {
		return err
	}
	// Served only whole, live, and to a current member of its
	// conversation (as history reads are); anyone else learns nothing.
	if !b.Complete || b.Deleted || s.expired(&b) {
		return errNoBlob
	}
	if _, err := s.memberOf(r, c, b.Conversation); err != nil {
		return errNoBlob
	}
	br, partial, err := parseRange(r.Header.Get("Range"), b.Size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", b.Size))
		return problem(http.StatusRequestedRangeNotSatisfiable, CodeBadRange, err.Error(), nil)
	}
	rd, err := s.cfg.Blobs.Open(r.Context(), b.ID, br.off, br.n)
	if errors.Is(err, blob.ErrNotFound) {
		return errNoBlob
	}
	if err != nil {
		return err
	}
	defer rd.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(br.n, 10))
	h.Set("Cache-Control", "private, no-store")
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", br.off, br.off+br.n-1, b.Size))
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.BlobTransferTimeout))
	w.WriteHeader(status)
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	if _, err := io.CopyBuffer(w, rd, *buf); err != nil {
		// The status is sent: the client sees a short body.
		s.log.Debug("blob: download cut short", "blob", b.ID, "err", err)
	}
	return nil
}

// blobRefs checks the blobs field of a send: at most MaxMessageBlobs ids,
// each once (the store checks the rest in the send's transaction).
func blobRefs(ids []string) error {
	if len(ids) > MaxMessageBlobs {
		return problem(http.StatusBadRequest, CodeBadBlob, fmt.Sprintf("a message references at most %d blobs", MaxMessageBlobs), nil)
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !validBlobID(id) || seen[id] {
			return problem(http.StatusBadRequest, CodeBadBlob, "blobs are distinct blob ids", nil)
		}
		seen[id] = true
	}
	return nil
}

// BlobPingTTL is how long /readyz reuses its last check of the blob
// store: the probe answers anyone, and a flood of probes must not become
// a flood of requests to the object store, nor of log lines.
const BlobPingTTL = time.Second

// blobPingTimeout bounds a check of the blob store. An object store that
// is down does not refuse at once (its client retries until the
// deadline), and a probe that times out (Kubernetes' default: after 1 s)
// takes the node out of service, which a blob store down must not do.
const blobPingTimeout = 500 * time.Millisecond

// blobPing is /readyz's last check of the blob store. Probes arriving
// while a check runs wait for it and take its answer.
type blobPing struct {
	mu  sync.Mutex
	at  time.Time // when err was found
	err error
}

// check returns the blob store's answer to a Ping made less than
// BlobPingTTL ago, pinging it again if there is none (nil for a store
// that cannot be pinged).
func (b *blobPing) check(ctx context.Context, s *Server) error {
	p, ok := s.cfg.Blobs.(blob.Pinger)
	if !ok {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if now := s.cfg.Now(); !now.Before(b.at.Add(BlobPingTTL)) || now.Before(b.at) {
		// Not the probe's own context: a prober that hangs up must not
		// make the store look down to the probes after it.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), blobPingTimeout)
		b.err = p.Ping(ctx)
		cancel()
		b.at = s.cfg.Now()
		if b.err != nil {
			s.log.Warn("readiness: blob store unreachable", "err", b.err)
		}
	}
	return b.err
}

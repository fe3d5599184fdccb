// Package blobtest is the conformance suite of blob.Store: every
// implementation (the file system, S3) runs it and must pass it whole.
//
// It writes a few parts of blob.PartSize at most per test, so it stays
// within a few tens of MiB of traffic.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"sandi.dev/internal/blob"
)

// Opener returns a new, empty store for t, removed when t ends.
type Opener func(t *testing.T) blob.Store

// Run runs the suite, each test on a store of its own from open.
func Run(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, blob.Store)
	}{
		{"TwoPartsOutOfOrder", testTwoPartsOutOfOrder},
		{"Ranges", testRanges},
		{"Rewrite", testRewrite},
		{"ShortReader", testShortReader},
		{"WrongCommit", testWrongCommit},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"Concurrent", testConcurrent},
		{"ConcurrentCommit", testConcurrentCommit},
		{"Cancel", testCancel},
		{"BadID", testBadID},
		{"Walk", testWalk},
		{"Ping", testPing},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, open(t)) })
	}
}

// Walker is a store that can list what it holds, for the sweep of objects
// and uploads no database row names (both implementations can).
type Walker interface {
	// Walk calls fn with the id of every object and upload older than
	// before (an id may come twice); fn's error stops the walk.
	Walk(ctx context.Context, before time.Time, fn func(id string) error) error
}

// NewID returns a random object id of the form the store expects.
func NewID() string { return hex.EncodeToString(randomBytes(16)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// content returns n bytes made from seed, so that each test writes bytes
// of its own and a part landing in the wrong place shows.
func content(seed uint64, n int64) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 's', 'a', 'n', 'd', 'i'})
	r.Read(b)
	return b
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// part returns part n of data as the store expects it.
func part(data []byte, n int) []byte {
	end := min(int64(n+1)*blob.PartSize, int64(len(data)))
	return data[int64(n)*blob.PartSize : end]
}

func parts(size int64) int { return int((size + blob.PartSize - 1) / blob.PartSize) }

// writePart writes part n of data and fails t on an error.
func writePart(t *testing.T, ctx context.Context, s blob.Store, id, state string, data []byte, n int) string {
	t.Helper()
	p := part(data, n)
	st, err := s.WritePart(ctx, id, state, n, bytes.NewReader(p), int64(len(p)))
	if err != nil {
		t.Fatalf("WritePart(part %d, %d bytes): %v", n, len(p), err)
	}
	return st
}

// upload begins id, writes every part of data in the order given (all in
// order if none) and commits it.
func upload(t *testing.T, ctx context.Context, s blob.Store, id string, data []byte, order ...int) string {
	t.Helper()
	state, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if order == nil {
		for n := range parts(int64(len(data))) {
			order = append(order, n)
		}
	}
	for _, n := range order {
		state = writePart(t, ctx, s, id, state, data, n)
	}
	if err := s.Commit(ctx, id, state, parts(int64(len(data))), int64(len(data))); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return state
}

// commit commits id, whose parts hold data, and fails t (saying what)
// unless it then reads as data.
func commit(t *testing.T, ctx context.Context, s blob.Store, id, state string, data []byte, what string) {
	t.Helper()
	if err := s.Commit(ctx, id, state, parts(int64(len(data))), int64(len(data))); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	wantContent(t, ctx, s, id, data)
}

// read returns bytes [off, off+length) of object id (length < 0: to the end).
func read(ctx context.Context, s blob.Store, id string, off, length int64) ([]byte, error) {
	rc, err := s.Open(ctx, id, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// wantContent fails t unless object id reads as want, whole.
func wantContent(t *testing.T, ctx context.Context, s blob.Store, id string, want []byte) {
	t.Helper()
	got, err := read(ctx, s, id, 0, -1)
	if err != nil {
		t.Fatalf("Open(%s) after Commit: %v", id, err)
	}
	if g, w := sha256.Sum256(got), sha256.Sum256(want); g != w {
		t.Fatalf("object %s reads %d bytes of SHA-256 %x, want %d bytes of %x", id, len(got), g[:8], len(want), w[:8])
	}
}

// wantNotFound fails t unless Open of id is ErrNotFound.
func wantNotFound(t *testing.T, ctx context.Context, s blob.Store, id, when string) {
	t.Helper()
	if _, err := read(ctx, s, id, 0, -1); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open %s = %v, want ErrNotFound", when, err)
	}
}

// testTwoPartsOutOfOrder writes an object of PartSize+1 bytes last part
// first, which cannot be read until committed and then reads back
// byte-identical; committing it again changes nothing.
func testTwoPartsOutOfOrder(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	data := content(1, blob.PartSize+1)
	id := NewID()
	state, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	wantNotFound(t, ctx, s, id, "of a begun upload")
	state = writePart(t, ctx, s, id, state, data, 1)
	state = writePart(t, ctx, s, id, state, data, 0)
	wantNotFound(t, ctx, s, id, "with every part written but before Commit")
	commit(t, ctx, s, id, state, data, "Commit")
	if err := s.Commit(ctx, id, state, 2, int64(len(data))); err != nil {
		t.Fatalf("Commit of a committed object again: %v, want nil", err)
	}
	wantContent(t, ctx, s, id, data)
}

// testRanges reads parts of a committed object: from an offset for a
// length, across the boundary between two parts, and to the end.
func testRanges(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	data := content(2, blob.PartSize+1000)
	id := NewID()
	upload(t, ctx, s, id, data)
	size := int64(len(data))
	for _, r := range []struct{ off, length int64 }{
		{0, 1},
		{0, 100},
		{17, 4096},
		{blob.PartSize - 10, 20},   // across the two parts
		{blob.PartSize, 1000},      // the last part exactly
		{blob.PartSize + 999, 1},   // the last byte
		{blob.PartSize - 1, -1},    // to the end
		{5, -1},                    // nearly all
		{size - 1, -1},             // the last byte, to the end
		{0, size},                  // all, by length
		{blob.PartSize + 500, 500}, // the end, by length
	} {
		got, err := read(ctx, s, id, r.off, r.length)
		if err != nil {
			t.Fatalf("Open(off %d, length %d): %v", r.off, r.length, err)
		}
		end := size
		if r.length >= 0 {
			end = r.off + r.length
		}
		if !bytes.Equal(got, data[r.off:end]) {
			t.Fatalf("Open(off %d, length %d) read %d bytes, not bytes %d to %d of the object", r.off, r.length, len(got), r.off, end)
		}
	}
}

// testRewrite writes a part twice: the second write is what the object
// holds.
func testRewrite(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	first, second := content(3, 5000), content(4, 5000)
	id := NewID()
	state, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	state = writePart(t, ctx, s, id, state, first, 0)
	state = writePart(t, ctx, s, id, state, second, 0)
	commit(t, ctx, s, id, state, second, "Commit")
}

// shortReader gives fewer bytes than were announced, then EOF.
type shortReader struct{ r io.Reader }

func (s shortReader) Read(p []byte) (int, error) { return s.r.Read(p) }

// testShortReader: a part whose reader ends early is an error and is not
// a part: the upload cannot be committed with it, and once it is written
// whole the object holds the whole part.
func testShortReader(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	data := content(5, blob.PartSize+300)
	id := NewID()
	state, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Part 0 with one byte missing, then with half of it.
	for _, n := range []int64{blob.PartSize - 1, blob.PartSize / 2} {
		st, err := s.WritePart(ctx, id, state, 0, shortReader{bytes.NewReader(data[:n])}, blob.PartSize)
		if err == nil {
			t.Fatalf("WritePart of %d bytes announced as %d succeeded", n, blob.PartSize)
		}
		if st != "" {
			state = st
		}
		if err := s.Commit(ctx, id, state, 2, int64(len(data))); err == nil {
			t.Fatal("Commit succeeded with part 0 written short")
		}
		wantNotFound(t, ctx, s, id, "after a refused Commit")
	}
	state = writePart(t, ctx, s, id, state, data, 1)
	state = writePart(t, ctx, s, id, state, data, 0)
	commit(t, ctx, s, id, state, data, "Commit once part 0 is whole")
}

// testWrongCommit: Commit refuses parts that are missing or do not add up
// to the size it is given, and makes nothing readable.
func testWrongCommit(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	data := content(6, blob.PartSize+3000)
	size := int64(len(data))
	id := NewID()
	state, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, id, state, 2, size); err == nil {
		t.Fatal("Commit of an upload with no part succeeded")
	}
	wantNotFound(t, ctx, s, id, "after Commit of an upload with no part")
	state = writePart(t, ctx, s, id, state, data, 0)
	if err := s.Commit(ctx, id, state, 2, size); err == nil {
		t.Fatal("Commit of an upload without its last part succeeded")
	}
	wantNotFound(t, ctx, s, id, "after Commit of an upload without its last part")
	state = writePart(t, ctx, s, id, state, data, 1)
	for _, c := range []struct {
		parts int
		size  int64
	}{{2, size - 1}, {2, size + 1}, {3, size + blob.PartSize}, {1, 3000}} {
		if err := s.Commit(ctx, id, state, c.parts, c.size); err == nil {
			t.Fatalf("Commit(%d parts, %d bytes) of parts of %d and 3000 bytes succeeded", c.parts, c.size, blob.PartSize)
		}
		wantNotFound(t, ctx, s, id, fmt.Sprintf("after Commit(%d parts, %d bytes) was refused", c.parts, c.size))
	}
	commit(t, ctx, s, id, state, data, "Commit")
}

// testNotFound: an object never written is ErrNotFound.
func testNotFound(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	wantNotFound(t, ctx, s, NewID(), "of an object never written")
	if _, err := s.Open(ctx, NewID(), 10, 5); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open of a range of an object never written = %v, want ErrNotFound", err)
	}
}

// testDelete deletes an upload, an object and nothing.
func testDelete(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	data := content(7, 4000)

	// An upload with a part written: gone, it cannot be committed.
	up := NewID()
	state, err := s.Begin(ctx, up)
	if err != nil {
		t.Fatal(err)
	}
	state = writePart(t, ctx, s, up, state, data, 0)
	if err := s.Delete(ctx, up, state); err != nil {
		t.Fatalf("Delete of an upload: %v", err)
	}
	if err := s.Commit(ctx, up, state, 1, int64(len(data))); err == nil {
		t.Fatal("Commit of a deleted upload succeeded")
	}
	wantNotFound(t, ctx, s, up, "of a deleted upload")

	// A committed object, and another that stays.
	obj, keep := NewID(), NewID()
	state = upload(t, ctx, s, obj, data)
	upload(t, ctx, s, keep, data[:1000])
	if err := s.Delete(ctx, obj, state); err != nil {
		t.Fatalf("Delete of an object: %v", err)
	}
	wantNotFound(t, ctx, s, obj, "of a deleted object")
	wantContent(t, ctx, s, keep, data[:1000])

	// What does not exist (any more).
	if err := s.Delete(ctx, obj, state); err != nil {
		t.Fatalf("Delete of a deleted object: %v, want nil", err)
	}
	if err := s.Delete(ctx, up, state); err != nil {
		t.Fatalf("Delete of a deleted upload: %v, want nil", err)
	}
	if err := s.Delete(ctx, NewID(), ""); err != nil {
		t.Fatalf("Delete of an object never written: %v, want nil", err)
	}
}

// testConcurrent uploads several objects at once, each of its own size
// and content.
func testConcurrent(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	const n = 6
	ids := make([]string, n)
	datas := make([][]byte, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		ids[i], datas[i] = NewID(), content(uint64(100+i), int64(200_000+i*1000))
		wg.Go(func() {
			state, err := s.Begin(ctx, ids[i])
			if err == nil {
				state, err = s.WritePart(ctx, ids[i], state, 0, bytes.NewReader(datas[i]), int64(len(datas[i])))
			}
			if err == nil {
				err = s.Commit(ctx, ids[i], state, 1, int64(len(datas[i])))
			}
			if err != nil {
				errs <- fmt.Errorf("upload %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		wantContent(t, ctx, s, ids[i], datas[i])
	}
}

// testConcurrentCommit commits one upload from several goroutines at once
// (two servers finishing the same upload): each Commit succeeds.
func testConcurrentCommit(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	data := content(10, 70_000)
	id := NewID()
	state, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	state = writePart(t, ctx, s, id, state, data, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			if err := s.Commit(ctx, id, state, 1, int64(len(data))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("one of 4 concurrent Commits: %v", err)
	}
	wantContent(t, ctx, s, id, data)
}

// stallReader gives its bytes, then blocks until ctx is done and returns
// its error, as a client that stops sending mid-part.
type stallReader struct {
	r       io.Reader
	ctx     context.Context
	stalled chan struct{}
	once    sync.Once
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.once.Do(func() { close(s.stalled) })
		<-s.ctx.Done()
		return 0, s.ctx.Err()
	}
	return n, err
}

// testCancel cancels a part half written: WritePart returns, the part is
// not kept, and the upload goes on.
func testCancel(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	data := content(8, 1<<20)
	id := NewID()
	state, err := s.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(ctx)
	sr := &stallReader{r: bytes.NewReader(data[:len(data)/2]), ctx: pctx, stalled: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := s.WritePart(pctx, id, state, 0, sr, int64(len(data)))
		done <- err
	}()
	select {
	case <-sr.stalled:
	case err := <-done:
		t.Fatalf("WritePart returned before its reader ran dry: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("WritePart cancelled mid-part = %v, want context.Canceled", err)
		}
	case <-ctx.Done():
		t.Fatal("WritePart did not return after its context was cancelled")
	}
	if err := s.Commit(ctx, id, state, 1, int64(len(data))); err == nil {
		t.Fatal("Commit succeeded with its only part cancelled half-way")
	}
	wantNotFound(t, ctx, s, id, "after a cancelled part")
	state = writePart(t, ctx, s, id, state, data, 0)
	commit(t, ctx, s, id, state, data, "Commit")
}

// testBadID: ids that are not 32 lowercase hex digits are refused by every
// method (they could name something else in the storage: a path, a key
// prefix).
func testBadID(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	good := NewID()
	for _, id := range []string{"", "..", "../" + good[3:], good[:31], good + "0", "/" + good[1:], good[:31] + "/", good[:30] + "..", good[:31] + "G", good[:31] + "A"} {
		if _, err := s.Begin(ctx, id); err == nil {
			t.Errorf("Begin(%q) succeeded", id)
		}
		if _, err := s.WritePart(ctx, id, "x", 0, bytes.NewReader([]byte("x")), 1); err == nil {
			t.Errorf("WritePart(%q) succeeded", id)
		}
		if err := s.Commit(ctx, id, "x", 1, 1); err == nil {
			t.Errorf("Commit(%q) succeeded", id)
		}
		if rc, err := s.Open(ctx, id, 0, -1); err == nil {
			rc.Close()
			t.Errorf("Open(%q) succeeded", id)
		}
		if err := s.Delete(ctx, id, ""); err == nil {
			t.Errorf("Delete(%q) succeeded", id)
		}
	}
}

// testPing: a store that serves answers its readiness check.
func testPing(t *testing.T, s blob.Store) {
	p, ok := s.(blob.Pinger)
	if !ok {
		t.Fatalf("%T has no Ping method: the readiness probe needs one", s)
	}
	if err := p.Ping(ctxFor(t)); err != nil {
		t.Fatalf("Ping of a store that serves: %v", err)
	}
}

// testWalk: Walk lists the objects and uploads older than its time, and
// Delete with no state removes an upload found so.
func testWalk(t *testing.T, s blob.Store) {
	w, ok := s.(Walker)
	if !ok {
		t.Fatalf("%T has no Walk method: the sweep of orphan objects needs one", s)
	}
	ctx := ctxFor(t)
	data := content(9, 2000)
	obj, up := NewID(), NewID()
	upload(t, ctx, s, obj, data)
	state, err := s.Begin(ctx, up)
	if err != nil {
		t.Fatal(err)
	}
	writePart(t, ctx, s, up, state, data, 0)
	walk := func(before time.Time) map[string]bool {
		t.Helper()
		seen := map[string]bool{}
		if err := w.Walk(ctx, before, func(id string) error { seen[id] = true; return nil }); err != nil {
			t.Fatalf("Walk: %v", err)
		}
		return seen
	}
	if seen := walk(time.Now().Add(time.Hour)); len(seen) != 2 || !seen[obj] || !seen[up] {
		t.Fatalf("Walk(an hour ahead) = %v, want the object %s and the upload %s", seen, obj, up)
	}
	if seen := walk(time.Now().Add(-time.Hour)); len(seen) != 0 {
		t.Fatalf("Walk(an hour ago) = %v, want nothing", seen)
	}
	stop := errors.New("stop")
	n := 0
	if err := w.Walk(ctx, time.Now().Add(time.Hour), func(string) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Walk whose fn fails = %v after %d calls, want its error after 1", err, n)
	}
	// The sweep deletes what it finds with no state.
	if err := s.Delete(ctx, up, ""); err != nil {
		t.Fatalf("Delete(upload, no state): %v", err)
	}
	if err := s.Commit(ctx, up, state, 1, int64(len(data))); err == nil {
		t.Fatal("Commit of an upload deleted with no state succeeded")
	}
	if err := s.Delete(ctx, obj, ""); err != nil {
		t.Fatalf("Delete(object, no state): %v", err)
	}
	wantNotFound(t, ctx, s, obj, "of an object deleted with no state")
	if seen := walk(time.Now().Add(time.Hour)); len(seen) != 0 {
		t.Fatalf("Walk after deleting both = %v, want nothing", seen)
	}
}

package server

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzParseRange: a Range header is untrusted. Whatever it holds, a range
// parseRange accepts lies within the blob and is not empty, and written
// back as bytes=first-last it parses to itself.
func FuzzParseRange(f *testing.F) {
	for _, h := range []string{"", "bytes=0-9", "bytes=5-", "bytes=-3", "bytes=0-1,4-5", "bytes=9-3", "bytes=-0", "items=1-2", "bytes= 1-2", "bytes=+1-2", "bytes=99999999999999999999-"} {
		f.Add(h, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 1 {
			return
		}
		br, partial, err := parseRange(h, size)
		if err != nil {
			return
		}
		if br.off < 0 || br.n < 1 || br.off+br.n > size || br.off+br.n < br.off {
			t.Fatalf("parseRange(%q, %d) = %+v, outside the blob", h, size, br)
		}
		if !partial {
			if br.off != 0 || br.n != size {
				t.Fatalf("parseRange(%q, %d) = %+v, not partial but not the whole blob", h, size, br)
			}
			return
		}
		again, partial, err := parseRange(fmt.Sprintf("bytes=%d-%d", br.off, br.off+br.n-1), size)
		if err != nil || !partial || again != br {
			t.Fatalf("parseRange(%q) = %+v, written back: %+v, %v", h, br, again, err)
		}
	})
}

// TestYieldReader: an upload's read waits while a message send is in its
// handler, at most yieldMax, and not at all without one; what it reads is
// the body, whole.
func TestYieldReader(t *testing.T) {
	var sending atomic.Int64
	var slept time.Duration
	y := &yieldReader{r: strings.NewReader("part bytes"), sending: &sending, sleep: func(d time.Duration) { slept += d }}
	buf, buf2 := make([]byte, 4), make([]byte, 4)
	if _, err := y.Read(buf); err != nil || slept != 0 {
		t.Fatalf("no send: read %v, waited %v", err, slept)
	}
	sending.Add(1)
	if _, err := y.Read(buf2); err != nil || slept != yieldMax {
		t.Fatalf("a send in progress: read %v, waited %v, want %v", err, slept, yieldMax)
	}
	// The send ends during the wait: the read goes on at once.
	slept = 0
	y.sleep = func(d time.Duration) { slept += d; sending.Add(-1) }
	rest, err := io.ReadAll(y)
	if got := string(buf) + string(buf2) + string(rest); err != nil || got != "part bytes" || slept != yieldStep {
		t.Fatalf("read %q (%v), waited %v; want the body after one step", got, err, slept)
	}
}

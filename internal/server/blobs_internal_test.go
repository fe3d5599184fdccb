package server

import (
	"fmt"
	"io"
	"slices"
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

// TestYieldReaderSlots: a read that returns bytes holds one of the slots
// until the next read begins; the last read of a body keeps none; a read
// waiting on its client holds none.
func TestYieldReaderSlots(t *testing.T) {
	var sending atomic.Int64
	slots := make(chan struct{}, 1)
	pr, pw := io.Pipe()
	a := &yieldReader{r: pr, sending: &sending, slots: slots, left: 10}
	b := &yieldReader{r: strings.NewReader("0123456789"), sending: &sending, slots: slots, left: 10}
	go pw.Write([]byte("abc"))
	buf := make([]byte, 4)
	if n, err := a.Read(buf); n != 3 || err != nil || len(slots) != 1 {
		t.Fatalf("a read %d bytes (%v); slots taken %d, want 1", n, err, len(slots))
	}
	// b has bytes in hand but waits for the slot a holds.
	got := make(chan int)
	go func() {
		n, _ := b.Read(buf[:4])
		got <- n
	}()
	select {
	case n := <-got:
		t.Fatalf("b read %d bytes while a held the only slot", n)
	case <-time.After(50 * time.Millisecond):
	}
	// a reads again and waits on its client: the slot goes to b.
	aDone := make(chan error)
	go func() {
		_, err := a.Read(make([]byte, 7))
		aDone <- err
	}()
	select {
	case n := <-got:
		if n != 4 {
			t.Fatalf("b read %d bytes, want 4", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b still waits for the slot while a waits on its client")
	}
	// b's last read keeps no slot; its earlier one gives its slot back.
	rest, err := io.ReadAll(b)
	if err != nil || string(rest) != "456789" || len(slots) != 0 || b.held {
		t.Fatalf("b's rest %q (%v), slots taken %d", rest, err, len(slots))
	}
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if err := <-aDone; err != io.ErrUnexpectedEOF || len(slots) != 0 {
		t.Fatalf("a's cut read: %v, slots taken %d", err, len(slots))
	}
}

// TestUploadPacer: within the window after a send, reads wait their turn
// at the pace, first come first served, and the waits add up to the bytes
// over the rate; outside it, and without a pace, nothing waits.
func TestUploadPacer(t *testing.T) {
	if p := newUploadPacer(0, time.Second, nil); p != nil || p.delay(1<<20, time.Now()) != 0 {
		t.Fatal("a pace of 0 paces")
	}
	p := newUploadPacer(1<<20, 250*time.Millisecond, nil)
	now := p.start.Add(time.Hour)
	if d := p.delay(1<<20, now); d != 0 {
		t.Fatalf("a read with no send made waits %v", d)
	}
	p.lastSend.Store(int64(time.Hour - 100*time.Millisecond)) // a send began 100 ms ago
	var waits []time.Duration
	for range 3 {
		waits = append(waits, p.delay(512<<10, now))
	}
	if want := []time.Duration{0, 500 * time.Millisecond, time.Second}; !slices.Equal(waits, want) {
		t.Fatalf("three reads of 512 KiB at 1 MiB/s wait %v, want %v", waits, want)
	}
	// Later reads queue behind the ones granted, not behind now.
	if d := p.delay(1, now.Add(100*time.Millisecond)); d != 1400*time.Millisecond {
		t.Fatalf("a read 100 ms later waits %v, want 1.4 s", d)
	}
	// Over 250 ms after the send: no longer paced.
	if d := p.delay(1<<20, now.Add(150*time.Millisecond+time.Nanosecond)); d != 0 {
		t.Fatalf("a read after the window waits %v", d)
	}
}

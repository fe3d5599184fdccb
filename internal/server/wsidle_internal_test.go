package server

import "testing"

// Wake-ups that come while a socket works merge into its next read: it
// reads up to the newest event they name, or, if one of them names none,
// as a wake-up naming none (a head settled after the read begins). A read
// up to an older event could stop short of a newer commit's events, which
// no further wake-up announces; events of other kinds leave the merge
// alone.
func TestWakeMerge(t *testing.T) {
	for _, c := range []struct {
		wakes []int64
		want  int64
	}{
		{[]int64{5}, 5},
		{[]int64{5, 9}, 9},
		{[]int64{9, 5}, 9},
		{[]int64{5, 0, 9}, 0},
		{[]int64{0, 5}, 0},
		{[]int64{9, 0}, 0},
	} {
		k := &liveSocket{running: true} // a goroutine works: posting only records
		for i, at := range c.wakes {
			if k.postAt(evWake, at) {
				t.Fatal("a post started a second goroutine")
			}
			if i == 0 {
				k.post(evTyping)
			}
		}
		if k.pending != evWake|evTyping || k.wokenFor != c.want {
			t.Errorf("wake-ups for %v: pending %b, read for event %d; want %d", c.wakes, k.pending, k.wokenFor, c.want)
		}
		// The work takes them (as work does); the next wake-up starts afresh.
		k.pending, k.wokenFor = 0, 0
		k.postAt(evWake, 3)
		if k.wokenFor != 3 {
			t.Errorf("after %v was read: a wake-up for 3 reads for %d", c.wakes, k.wokenFor)
		}
	}
}

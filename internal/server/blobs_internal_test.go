package server

import (
	"fmt"
	"testing"
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

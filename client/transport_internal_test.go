//go:build !js

package client

import (
	"net/url"
	"testing"
)

// FuzzQueryEscape checks queryEscape against net/url's QueryEscape, which
// it replaces in the browser build.
func FuzzQueryEscape(f *testing.F) {
	for _, s := range []string{"", "alice", "a b+c&d=e/f?g#h%i", "~-._", "ünï\x00\xff", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := queryEscape(s), url.QueryEscape(s); got != want {
			t.Fatalf("queryEscape(%q) = %q, want %q", s, got, want)
		}
	})
}

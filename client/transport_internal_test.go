//go:build !js

package client

import (
	"errors"
	"net/url"
	"strings"
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

// TestMalformedURLNotRetried: a request that cannot be made (a malformed
// server URL) fails at once with the reason, as net/http gives it, instead
// of being tried again as an unreachable server would be.
func TestMalformedURLNotRetried(t *testing.T) {
	a := &api{base: "http://[::1", http: &httpClient{}}
	err := a.do(t.Context(), "GET", "/api/me", nil, nil)
	var ue *url.Error
	if !errors.As(err, &ue) || strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("a malformed URL: %v, want net/url's error alone", err)
	}
	c := &Client{api: a}
	if _, _, err := c.fetchArchive(t.Context(), "x"); !errors.As(err, &ue) || strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("an archive at a malformed URL: %v, want net/url's error alone", err)
	}
}

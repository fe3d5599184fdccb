package main

import (
	"testing"
	"time"
)

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes(" 127.0.0.1, 10.1.2.3/8,,::1, fd00::/8, ::ffff:192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8", "192.0.2.1/32"}
	if len(got) != len(want) {
		t.Fatalf("parsePrefixes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("parsePrefixes = %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "localhost", "::ffff:10.0.0.0/104", "1.2.3"} {
		if _, err := parsePrefixes(bad); err == nil {
			t.Errorf("parsePrefixes(%q): no error", bad)
		}
	}
}

func TestParseIdle(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "720h": 720 * time.Hour, " 0 ": -1, "1m": time.Minute} {
		if got, err := parseIdle(in); err != nil || got != want {
			t.Errorf("parseIdle(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1d", "0d", "d", "1.5d", "30s", "-5h", "never", "99999d"} {
		if got, err := parseIdle(bad); err == nil {
			t.Errorf("parseIdle(%q) = %v, want an error", bad, got)
		}
	}
}

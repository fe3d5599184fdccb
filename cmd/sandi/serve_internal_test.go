package main

import "testing"

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

package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"sandi.dev/client"
)

// TestReadLines: the line chat's input is cut at line feeds (a CR before
// one dropped), a last line without one counts, and a line longer than a
// message is reported with its number and its length in bytes, however
// long, without ending the input.
func TestReadLines(t *testing.T) {
	longest := strings.Repeat("m", client.MaxText)
	in := "one\r\n\n" + strings.Repeat("x", client.MaxText+1) + "\r\n  " + longest + "  \n" +
		strings.Repeat("y", 5*client.MaxText) + "\nlast"
	lines := make(chan inputLine)
	go readLines(strings.NewReader(in), lines)
	var got []string
	for l := range lines {
		var long *longLineError
		switch {
		case errors.As(l.err, &long):
			got = append(got, fmt.Sprintf("line %d: %d bytes", long.line, long.size))
		case l.err != nil:
			t.Fatal(l.err)
		case l.text == longest:
			got = append(got, "the longest message")
		default:
			got = append(got, l.text)
		}
	}
	want := []string{"one", "", fmt.Sprintf("line 3: %d bytes", client.MaxText+1), "the longest message", fmt.Sprintf("line 5: %d bytes", 5*client.MaxText), "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", got, want)
	}
}

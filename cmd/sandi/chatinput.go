package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"sandi.dev/client"
)

// inputLine is one line of the line-mode chat's standard input, or why it
// is not sent.
type inputLine struct {
	text string
	err  error
}

// longLineError is a line of input longer than a message may be.
type longLineError struct {
	line, size int
}

func (e *longLineError) Error() string {
	return fmt.Sprintf("line %d has %d bytes, more than a message may have (%d bytes): not sent", e.line, e.size, client.MaxText)
}

// maxLine is the most of a line the chat keeps in memory: a longer line is
// measured and skipped, never sent, whatever its spaces.
const maxLine = 4 * client.MaxText

// readLines sends each line of r to lines, then closes it. A line that
// cannot be a message (more than client.MaxText bytes once its surrounding
// spaces are trimmed) arrives as a *longLineError naming its number and
// the limit, and reading goes on with the next line: neither it nor the
// lines after it are dropped in silence.
func readLines(r io.Reader, lines chan<- inputLine) {
	defer close(lines)
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		var buf []byte
		size := 0
		var err error
		var before, last byte // the last two bytes read
		for {
			var part []byte
			part, err = br.ReadSlice('\n')
			for _, b := range part[max(0, len(part)-2):] {
				before, last = last, b
			}
			size += len(part)
			if len(buf) <= maxLine {
				buf = append(buf, part...)
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if size == 0 && err != nil {
			return
		}
		if err == nil { // the line ends with a line feed, maybe after a CR
			size--
			if before == '\r' {
				size--
			}
		}
		if text := strings.TrimSpace(string(buf)); size > maxLine || len(text) > client.MaxText {
			lines <- inputLine{err: &longLineError{line: n, size: size}}
		} else {
			lines <- inputLine{text: text}
		}
		if err != nil {
			return
		}
	}
}

// unsentError is the line chat's result once its input ends: nil, or an
// error counting the lines that were messages and were not sent (each was
// told when it happened), so that a script sees a non-zero exit status.
func unsentError(n int) error {
	switch n {
	case 0:
		return nil
	case 1:
		return errors.New("1 line of standard input was not sent")
	}
	return fmt.Errorf("%d lines of standard input were not sent", n)
}

// Package testproc holds what the test helpers that run a server process
// of their own (testpg: PostgreSQL, tests3: versitygw) share: waiting for
// the process to answer, and quoting its log when it does not.
package testproc

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Await calls ready, with 2 s to answer, every 50 ms until it succeeds,
// the process ends (done receives its exit error, which Await puts back)
// or timeout passes. Its errors name the process and quote the end of
// its log. The caller stops the process after a timeout.
func Await(name string, done chan error, logPath string, timeout time.Duration, ready func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case werr := <-done:
			done <- werr
			return fmt.Errorf("%s exited (%v); its log:\n%s", name, werr, Tail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v (%v); its log:\n%s", name, timeout, err, Tail(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Tail returns the last 30 lines of the file at path.
func Tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

//go:build !js

package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkBackupSegment: an account whose device holds 10,000 messages
// (SANDI_BENCH_MESSAGES changes the count) makes its whole backup; then
// bob sends 100 messages, alice receives them, and one operation is the
// backup that follows: a segment of what changed. It reports the bytes
// the server stored for the whole backup and for the segment, and the
// whole backup's time;
// docs/performance.md has the figures.
func BenchmarkBackupSegment(b *testing.B) {
	blobDir := b.TempDir()
	// The earlier history lies above the sequence numbers to come.
	_, alice, bob, conv, _ := benchHistory(b, blobDir, 1_000_000)
	ctx := context.Background()
	if _, err := bob.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	stored := func() int64 {
		var total int64
		for _, o := range blobObjectsTB(b, blobDir) {
			total += int64(len(o))
		}
		return total
	}
	start := time.Now()
	if _, err := alice.EnableBackup(ctx); err != nil {
		b.Fatal(err)
	}
	wholeTime := time.Since(start)
	whole := stored()
	var segments int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		before := stored()
		for j := range 100 {
			if _, err := bob.Send(ctx, conv, fmt.Sprintf("new message %d.%d, about as long as a chat line is", i, j)); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := alice.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := alice.BackupNow(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		segments += stored() - before
		b.StartTimer()
	}
	b.ReportMetric(float64(whole), "whole-B")
	b.ReportMetric(float64(wholeTime.Milliseconds()), "whole-ms")
	b.ReportMetric(float64(segments)/float64(b.N), "segment-B")
}

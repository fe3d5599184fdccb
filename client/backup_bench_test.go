//go:build !js

package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/blob/fsblob"
	"sandi.dev/internal/server"
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
	bs, err := fsblob.New(blobDir)
	if err != nil {
		b.Fatal(err)
	}
	n := startNode(b, b.TempDir()+"/sandi.db", server.Config{Blobs: bs})
	ctx := context.Background()
	count := envInt("SANDI_BENCH_MESSAGES", 10_000)
	st := client.NewMemStorage()
	alice, err := client.Open(client.Options{Server: n.url(), Storage: st, HTTPClient: &http.Client{Timeout: time.Minute}})
	if err != nil {
		b.Fatal(err)
	}
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		b.Fatal(err)
	}
	bob := register(b, n, "bob")
	conv, err := alice.CreateConversation(ctx, "bench", "bob")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bob.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	// The earlier history as a device stores it, written directly (as in
	// BenchmarkHistoryTransfer), above the sequence numbers to come.
	var lines []byte
	for i := range count {
		m := client.Message{Conversation: conv, Seq: uint64(1_000_000 + i), Sender: "bob", SenderID: bob.UserID(), Device: bob.DeviceID(), Type: client.ContentText, Epoch: 1,
			Text: fmt.Sprintf("message %d of the history, about as long as a chat line is", i), SentAt: int64(i), ReceivedAt: int64(i)}
		l, err := json.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		lines = append(append(lines, l...), '\n')
	}
	if err := st.Append("history/"+conv.String(), lines); err != nil {
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

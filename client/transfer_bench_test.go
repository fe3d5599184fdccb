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

// BenchmarkHistoryTransfer links a new device with a history of 10,000
// messages transferred (SANDI_BENCH_MESSAGES changes the count): the
// approver builds, encrypts and uploads the archive, the new device
// downloads it twice (check, then import), checks the digest and imports.
// One operation is one whole link; docs/performance.md has the figures.
func BenchmarkHistoryTransfer(b *testing.B) {
	bs, err := fsblob.New(b.TempDir())
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
	// The history as a device stores it (the title is conversation state,
	// not a message; seq 1 is left to it as before), written directly:
	// sending 10,000 messages would measure sending.
	var lines []byte
	for i := range count {
		m := client.Message{Conversation: conv, Seq: uint64(i + 2), Sender: "bob", SenderID: bob.UserID(), Device: bob.DeviceID(), Type: client.ContentText, Epoch: 1,
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
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		phone := newClient(b, n, "")
		if err := phone.Login(ctx, "alice", "password of alice"); err != nil {
			b.Fatal(err)
		}
		code, err := phone.StartLink(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := alice.ApproveLinkWith(ctx, code, client.LinkHistory{Transfer: true}); err != nil {
			b.Fatal(err)
		}
		if err := phone.WaitLink(ctx, 5*time.Millisecond); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if h, err := phone.History(conv); err != nil || len(h) != count {
			b.Fatalf("the new device holds %d messages (%v), want %d", len(h), err, count)
		}
		phone.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(count)*float64(b.N)/b.Elapsed().Seconds(), "messages/s")
}

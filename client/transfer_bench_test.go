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
	"sandi.dev/protocol"
)

// BenchmarkHistoryTransfer links a new device with a history of 10,000
// messages transferred (SANDI_BENCH_MESSAGES changes the count): the
// approver builds, encrypts and uploads the archive, the new device
// downloads it twice (check, then import), checks the digest and imports.
// One operation is one whole link; docs/performance.md has the figures.
func BenchmarkHistoryTransfer(b *testing.B) {
	// The history starts at seq 2, as before the title became conversation
	// state rather than a message.
	n, alice, _, conv, count := benchHistory(b, b.TempDir(), 2)
	ctx := context.Background()
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

// benchHistory starts a node keeping blobs in blobDir, registers alice
// and bob, makes their conversation and writes into alice's storage a
// history of SANDI_BENCH_MESSAGES (default 10,000) messages from bob, as
// a device stores it, from sequence number first on: written directly,
// since sending them would measure sending.
func benchHistory(b *testing.B, blobDir string, first uint64) (n *node, alice, bob *client.Client, conv protocol.ConversationID, count int) {
	n = startNode(b, b.TempDir()+"/sandi.db", blobConfigIn(b, blobDir))
	ctx := context.Background()
	count = envInt("SANDI_BENCH_MESSAGES", 10_000)
	st := client.NewMemStorage()
	alice, err := client.Open(client.Options{Server: n.url(), Storage: st, HTTPClient: &http.Client{Timeout: time.Minute}})
	if err != nil {
		b.Fatal(err)
	}
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		b.Fatal(err)
	}
	bob = register(b, n, "bob")
	if conv, err = alice.CreateConversation(ctx, "bench", "bob"); err != nil {
		b.Fatal(err)
	}
	var lines []byte
	for i := range count {
		m := client.Message{Conversation: conv, Seq: first + uint64(i), Sender: "bob", SenderID: bob.UserID(), Device: bob.DeviceID(), Type: client.ContentText, Epoch: 1,
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
	return n, alice, bob, conv, count
}

package client

import (
	"fmt"
	"testing"

	"sandi.dev/protocol"
)

// BenchmarkFoldReceipts: History's cost of receipts on a conversation of
// 10,000 messages with a delivered and a read receipt of each of two
// other accounts every 10 messages (docs/performance.md).
func BenchmarkFoldReceipts(b *testing.B) {
	alice, bob, carol := protocol.UserID{1}, protocol.UserID{2}, protocol.UserID{3}
	var hist []Message
	seq := uint64(0)
	for i := range 10_000 {
		seq++
		ref := fmt.Sprintf("%016d", i)
		hist = append(hist, Message{Seq: seq, Type: ContentText, Text: "hello", SenderID: alice, Sender: "alice", Ref: ref})
		if i%10 == 9 {
			for _, u := range []protocol.UserID{bob, carol} {
				for _, kind := range []string{ReceiptDelivered, ReceiptRead} {
					seq++
					hist = append(hist, Message{Seq: seq, Type: ContentReceipt, Text: kind, Target: ref, SenderID: u, Sender: u.String()})
				}
			}
		}
	}
	view := make([]Message, len(hist))
	b.ReportAllocs()
	for b.Loop() {
		copy(view, hist)
		out := foldReceipts(view, alice)
		if len(out) != 10_000 || len(out[0].ReadBy) != 2 {
			b.Fatalf("%d messages, first read by %v", len(out), out[0].ReadBy)
		}
	}
}

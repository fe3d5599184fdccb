package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// BenchmarkSendOne measures durable sends through the group commit with 64
// concurrent senders, on SQLite (synchronous=FULL) and PostgreSQL (fsync
// on): all in one conversation, and each sender in a conversation of its
// own (64 conversations, as the load tool's closed loop), where a batch
// writes one index page per conversation in each index by conversation.
//
//	go test -run '^$' -bench SendOne ./internal/store/sqlstore/
func BenchmarkSendOne(b *testing.B) {
	for _, convs := range []int{1, 64} {
		b.Run(fmt.Sprintf("sqlite/conversations=%d", convs), func(b *testing.B) {
			benchSendOne(b, filepath.Join(b.TempDir(), "bench.db"), convs)
		})
		b.Run(fmt.Sprintf("postgres/conversations=%d", convs), func(b *testing.B) {
			benchSendOne(b, testpgURL(b), convs)
		})
	}
}

func benchSendOne(b *testing.B, url string, nconv int) {
	ctx := context.Background()
	s, err := Open(ctx, url, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	type sender struct {
		user protocol.UserID
		dev  protocol.DeviceID
		conv protocol.ConversationID
	}
	senders := make([]sender, nconv)
	for i := range senders {
		user, dev := protocol.NewUserID(), protocol.NewDeviceID()
		must(s.CreateUser(ctx, store.User{ID: user, Username: fmt.Sprintf("bench%d", i), PasswordHash: "h"},
			store.Device{ID: dev, User: user, Name: "d"}, []byte(fmt.Sprintf("token%d", i))))
		must(s.PutBundle(ctx, store.BundleUpload{User: user, Device: dev, Identity: protocol.IdentityKey{1}, SignedPreKey: []byte("spk"), LastResort: []byte("lr")}))
		conv := protocol.NewConversationID()
		must(s.CreateConversation(ctx, store.NewConversation{
			ID: conv, Genesis: store.RecordRow{Encoded: []byte("genesis")},
			Members: []store.MemberRow{{User: user, Role: protocol.RoleAdmin}},
			Session: store.Session{Conversation: conv, Epoch: 1, Creator: dev, Encoded: []byte("dist"),
				Keys: []store.SessionKey{{Device: dev, User: user, InitiatorEphemeral: []byte("enc"), Ciphertext: []byte("ct")}}},
		}))
		senders[i] = sender{user, dev, conv}
	}
	envelope := make([]byte, 249) // the load tool's 100-byte messages
	var n atomic.Int64
	b.SetParallelism(32) // 64 senders on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			sd := senders[int(i)%len(senders)]
			_, err := s.SendOne(ctx, store.Send{Conversation: sd.conv, Sender: sd.dev, SenderUser: sd.user,
				ClientID: fmt.Sprintf("%016x", i), Epoch: 1, Envelope: envelope, Now: i})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

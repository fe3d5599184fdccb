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
// on). One commit per message manages about 2–3k commits/s on this kind of
// disk; measured here (2 cores, the PostgreSQL server on the same machine):
// SQLite ≈ 9–14k msgs/s in batches of ≈ 30, PostgreSQL ≈ 4k msgs/s.
//
//	go test -run '^$' -bench SendOne ./internal/store/sqlstore/
func BenchmarkSendOne(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchSendOne(b, filepath.Join(b.TempDir(), "bench.db"))
	})
	b.Run("postgres", func(b *testing.B) {
		benchSendOne(b, testpgURL(b))
	})
}

func benchSendOne(b *testing.B, url string) {
	ctx := context.Background()
	s, err := Open(ctx, url, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	user, dev := protocol.NewUserID(), protocol.NewDeviceID()
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(s.CreateUser(ctx, store.User{ID: user, Username: "bench", PasswordHash: "h"}, store.Device{ID: dev, User: user, Name: "d"}, []byte("token")))
	must(s.PutBundle(ctx, store.BundleUpload{User: user, Device: dev, Identity: protocol.IdentityKey{1}, SignedPreKey: []byte("spk"), LastResort: []byte("lr")}))
	conv := protocol.NewConversationID()
	must(s.CreateConversation(ctx, store.NewConversation{
		ID: conv, Genesis: store.RecordRow{Encoded: []byte("genesis")},
		Members: []store.MemberRow{{User: user, Role: protocol.RoleAdmin}},
		Session: store.Session{Conversation: conv, Epoch: 1, Creator: dev, Encoded: []byte("dist"),
			Keys: []store.SessionKey{{Device: dev, User: user, InitiatorEphemeral: []byte("enc"), Ciphertext: []byte("ct")}}},
	}))
	envelope := make([]byte, 512)
	var n atomic.Int64
	b.SetParallelism(32) // 64 senders on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			_, err := s.SendOne(ctx, store.Send{Conversation: conv, Sender: dev, SenderUser: user,
				ClientID: fmt.Sprint(i), Epoch: 1, Envelope: envelope, Now: i})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

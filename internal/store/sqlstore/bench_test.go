package sqlstore

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
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

// BenchmarkSendSerial measures one sender's sends, one after the other,
// each its own batch and transaction: the writer's fixed cost per batch,
// which is what a lightly loaded server (the load tool's live phase)
// pays for almost every message. The database is on /dev/shm where there
// is one, so that the figure is the writer's CPU and not the disk's
// flushes.
//
//	go test -run '^$' -bench SendSerial ./internal/store/sqlstore/
func BenchmarkSendSerial(b *testing.B) {
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "sandi-bench")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	s, senders := benchStore(b, filepath.Join(dir, "bench.db"), 64)
	defer s.Close()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.SendOne(context.Background(), senders[i%len(senders)].send(int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func benchSendOne(b *testing.B, url string, nconv int) {
	s, senders := benchStore(b, url, nconv)
	defer s.Close()
	var n atomic.Int64
	b.SetParallelism(32) // 64 senders on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := s.SendOne(context.Background(), senders[int(i)%len(senders)].send(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

type benchSender struct {
	user protocol.UserID
	dev  protocol.DeviceID
	conv protocol.ConversationID
}

// benchEnvelope is the size of the load tool's 100-byte messages.
var benchEnvelope = make([]byte, 249)

// send is the sender's i-th message (a fresh client id each time).
func (sd benchSender) send(i int64) store.Send {
	return store.Send{Conversation: sd.conv, Sender: sd.dev, SenderUser: sd.user,
		ClientID: fmt.Sprintf("%016x", i), Epoch: 1, Envelope: benchEnvelope, Now: i}
}

// benchStore opens a store with nconv senders, each alone in a
// conversation of its own.
func benchStore(b testing.TB, url string, nconv int) (*Store, []benchSender) {
	return benchStoreWith(b, url, nconv, Options{})
}

func benchStoreWith(b testing.TB, url string, nconv int, opts Options) (*Store, []benchSender) {
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		b.Fatal(err)
	}
	senders := make([]benchSender, nconv)
	for i := range senders {
		sd, err := benchUser(s, fmt.Sprintf("bench%d", i), []byte(fmt.Sprintf("token%d", i)))
		if err == nil {
			sd.conv, err = benchConversation(s, sd)
		}
		if err != nil {
			s.Close()
			b.Fatal(err)
		}
		senders[i] = sd
	}
	return s, senders
}

// benchUser creates a user with one device whose keys are uploaded.
func benchUser(s *Store, name string, token []byte) (benchSender, error) {
	ctx := context.Background()
	user, dev := protocol.NewUserID(), protocol.NewDeviceID()
	if err := s.CreateUser(ctx, store.User{ID: user, Username: name, PasswordHash: "h"},
		store.Device{ID: dev, User: user, Name: "d"}, token); err != nil {
		return benchSender{}, err
	}
	err := s.PutBundle(ctx, store.BundleUpload{User: user, Device: dev, Identity: testIdentity(), SignedPreKey: []byte("spk"), LastResort: []byte("lr")})
	return benchSender{user: user, dev: dev}, err
}

// benchNewConversation is a new conversation of the users (the first its
// admin), with a key for each one's device.
func benchNewConversation(users ...benchSender) store.NewConversation {
	conv := protocol.NewConversationID()
	nc := store.NewConversation{ID: conv, Genesis: store.RecordRow{Encoded: []byte("genesis")},
		Session: store.Session{Conversation: conv, Epoch: 1, Creator: users[0].dev, Encoded: []byte("dist")}}
	for i, u := range users {
		role := protocol.RoleMember
		if i == 0 {
			role = protocol.RoleAdmin
		}
		nc.Members = append(nc.Members, store.MemberRow{User: u.user, Role: role})
		nc.Session.Keys = append(nc.Session.Keys, store.SessionKey{Device: u.dev, User: u.user, InitiatorEphemeral: []byte("enc"), Ciphertext: []byte("ct")})
	}
	return nc
}

// benchConversation creates a conversation of the users.
func benchConversation(s *Store, users ...benchSender) (protocol.ConversationID, error) {
	nc := benchNewConversation(users...)
	return nc.ID, s.CreateConversation(context.Background(), nc)
}

// BenchmarkSendSerialPostgres is BenchmarkSendSerial on PostgreSQL (the
// test cluster, fsync on): one sender's sends one after the other, each
// its own batch, transaction and commit flush. Its time per message is
// the store's share of a send's latency at one sender.
//
//	go test -run '^$' -bench SendSerialPostgres ./internal/store/sqlstore/
func BenchmarkSendSerialPostgres(b *testing.B) {
	s, senders := benchStore(b, testpgURL(b), 1)
	defer s.Close()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.SendOne(context.Background(), senders[0].send(int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSendCheckedPostgres is BenchmarkSendSerialPostgres with the
// server's signature verification (Ed25519 over a 249-byte envelope) in
// each send, as sendMessage does it: "first" verifies and then sends (the
// handler before the check overlapped the store's round trip), "checked"
// starts the verification and sends with it as the Check, so that the
// store's statements run meanwhile.
//
//	go test -run '^$' -bench SendCheckedPostgres/checked -benchtime 3000x ./internal/store/sqlstore/
func BenchmarkSendCheckedPostgres(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	sig := ed25519.Sign(priv, benchEnvelope)
	verify := func() error {
		if !ed25519.Verify(pub, benchEnvelope, sig) {
			return errors.New("bad signature")
		}
		return nil
	}
	for _, mode := range []string{"first", "checked"} {
		b.Run(mode, func(b *testing.B) {
			s, senders := benchStore(b, testpgURL(b), 1)
			defer s.Close()
			b.ResetTimer()
			for i := range b.N {
				m := senders[0].send(int64(i))
				if mode == "first" {
					if err := verify(); err != nil {
						b.Fatal(err)
					}
				} else {
					done := make(chan error, 1)
					go func() { done <- verify() }()
					m.Check = sync.OnceValue(func() error { return <-done })
				}
				if _, err := s.SendOne(context.Background(), m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkBlockAtCap: blocks by an account whose list holds 10,000
// accounts, the default cap: of one more account (refused: the store
// counts the list), and of an account on the list already (held: the
// same transaction without the count). Neither writes a row, so the
// figures hold however many times a client repeats them. The figures are
// in docs/performance.md.
//
//	go test -run '^$' -bench BlockAtCap -benchtime 2000x -count 3 ./internal/store/sqlstore/
func BenchmarkBlockAtCap(b *testing.B) {
	const max = 10_000
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			url := filepath.Join(b.TempDir(), "bench.db")
			if db == "postgres" {
				url = testpgURL(b)
			}
			s, owner, listed, last := benchBlockList(b, url, max)
			ctx := context.Background()
			b.Run("refused", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if err := s.Block(ctx, owner, last, int64(i), max); !errors.Is(err, store.ErrTooManyBlocks) {
						b.Fatalf("a block past the cap: %v", err)
					}
				}
			})
			b.Run("held", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if err := s.Block(ctx, owner, listed, int64(i), max); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// benchTwo opens a store at url, closed when the benchmark ends, with two
// accounts of one device each.
func benchTwo(b *testing.B, url string) (*Store, benchSender, benchSender) {
	s, senders := benchStore(b, url, 2)
	b.Cleanup(func() { s.Close() })
	return s, senders[0], senders[1]
}

// benchBlockList opens a store at url with an account (owner) whose block
// list holds n accounts, one of them listed, and one more account (last),
// not blocked.
func benchBlockList(b *testing.B, url string, n int) (s *Store, owner, listed, last protocol.UserID) {
	ctx := context.Background()
	s, o, l := benchTwo(b, url)
	others := make([]protocol.UserID, n)
	for i := range others {
		others[i] = protocol.NewUserID()
	}
	for part := range slices.Chunk(others, 1000) {
		err := s.write(ctx, "bench blocks", func(t *wtx) error {
			for _, id := range part {
				if _, err := t.exec(`INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, 'h', 0)`, idArg(id), "u"+id.String()); err != nil {
					return err
				}
				if _, err := t.exec(`INSERT INTO blocks (user_id, blocked_id, created_at) VALUES (?, ?, 0)`, idArg(o.user), idArg(id)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return s, o.user, others[0], l.user
}

// BenchmarkDevicesAtLogin times what a login adds to the store's work
// since devices are capped (Store.PurgeDevices, then Store.AddDevice with
// the cap), for an account at the default cap (100 devices not revoked)
// that also keeps revoked devices, each named by an epoch (a session) it
// made of a conversation (the last of the tests PurgeDevices makes), on a
// server whose sessions and blobs tables hold rows of many other
// devices (the two tables indexed by device in migration 00017):
// "purge" finds nothing to delete (every revoked device is named),
// "refused" is a login at the cap. With -noindex the two indexes of 00017
// are dropped first (measured for docs/performance.md, not a setting).
//
//	go test -run '^$' -bench DevicesAtLogin -benchtime 2000x -count 3 ./internal/store/sqlstore/
func BenchmarkDevicesAtLogin(b *testing.B) {
	const active, revoked, sessions = 100, 1000, 100_000
	for _, db := range []string{"sqlite", "postgres"} {
		for _, indexed := range []bool{true, false} {
			name := db
			if !indexed {
				name += "/noindex"
			}
			b.Run(name, func(b *testing.B) {
				url := filepath.Join(b.TempDir(), "bench.db")
				if db == "postgres" {
					url = testpgURL(b)
				}
				s, owner := benchDevices(b, url, active, revoked, sessions)
				ctx := context.Background()
				if !indexed {
					for _, q := range []string{`DROP INDEX sessions_creator`, `DROP INDEX blobs_device`} {
						if err := s.write(ctx, "drop index", func(t *wtx) error { _, err := t.exec(q); return err }); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.Run("purge", func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						if n, err := s.PurgeDevices(ctx, owner); err != nil || n != 0 {
							b.Fatalf("purge: %d, %v", n, err)
						}
					}
				})
				b.Run("refused", func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						d := store.Device{ID: protocol.NewDeviceID(), User: owner, Name: "more"}
						if err := s.AddDevice(ctx, d, []byte(fmt.Sprint("tok", i)), active); !errors.Is(err, store.ErrTooManyDevices) {
							b.Fatalf("a login at the cap: %v", err)
						}
					}
				})
			})
		}
	}
}

// benchDevices opens a store at url with an account (owner) of active
// devices not revoked and revoked ones, each revoked one the creator of a
// session, and sessions sessions of another account's conversations.
func benchDevices(b *testing.B, url string, active, revoked, sessions int) (*Store, protocol.UserID) {
	ctx := context.Background()
	s, o, other := benchTwo(b, url)
	conv, err := benchConversation(s, o, other)
	if err != nil {
		b.Fatal(err)
	}
	err = s.write(ctx, "bench devices", func(t *wtx) error {
		for i := range active - 1 + revoked {
			dev := protocol.NewDeviceID()
			gone := i >= active-1
			if _, err := t.exec(`INSERT INTO devices (id, user_id, name, created_at, revoked) VALUES (?, ?, 'd', 0, ?)`, idArg(dev), idArg(o.user), gone); err != nil {
				return err
			}
			if gone { // the creator of an epoch of conv: every test but the last finds nothing
				if _, err := t.exec(`INSERT INTO sessions (conversation_id, epoch, chain_seq, creator, encoded, created_at) VALUES (?, ?, 0, ?, 'dist', 0)`,
					idArg(conv), i+2, idArg(dev)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for start := 0; start < sessions; start += 1000 {
		err := s.write(ctx, "bench sessions", func(t *wtx) error {
			for i := start; i < min(start+1000, sessions); i++ {
				if i%10 == 0 {
					c := protocol.NewConversationID()
					if _, err := t.exec(`INSERT INTO conversations (id, created_at, chain_seq, chain_head, epoch, epoch_started_at) VALUES (?, 0, 0, 'h', 10, 0)`, idArg(c)); err != nil {
						return err
					}
					for e := range 10 {
						if _, err := t.exec(`INSERT INTO sessions (conversation_id, epoch, chain_seq, creator, encoded, created_at) VALUES (?, ?, 0, ?, 'dist', 0)`, idArg(c), e+1, idArg(other.dev)); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return s, o.user
}

package secret

// Benchmarks of the protocol's costly operations. The figures are recorded in
// docs/performance.md ("Protocol"), made with
//
//	go test -run '^$' -bench '^Benchmark(BundleVerify|BundleParse|Distribution|Encrypt|Decrypt|Primitives)$' \
//		-benchtime 2s -count 3 ./protocol/secret
//
// which takes about a minute per count on 2 cores. A single figure at 1000
// devices (about half a second an op) is quicker with -benchtime 20x.
//
// Fixtures that are slow to make (X-Wing key pairs) are built once per
// process and shared by every run of a benchmark function: the testing
// package calls each function several times with growing b.N.

import (
	"fmt"
	"sync"
	"testing"

	"sandi.dev/protocol"
)

// benchBundleWith returns a verified bundle with n one-time pre-keys.
func benchBundleWith(b *testing.B, n int) *protocol.Bundle {
	b.Helper()
	id, user, dev := NewIdentity(), protocol.NewUserID(), protocol.NewDeviceID()
	bundle, _, err := NewBundle(id, user, dev, 1, n, testNow)
	if err != nil {
		b.Fatal(err)
	}
	if err := bundle.Verify(); err != nil {
		b.Fatal(err)
	}
	return bundle
}

// BenchmarkBundleVerify measures Bundle.Verify: one Ed25519 verification per
// pre-key, plus the shape checks. "full" is an uploaded bundle (signed,
// last-resort and MaxOneTimePerUpload one-time pre-keys, 102 signatures);
// "claimed" is what the server's claim returns (one one-time key, 3
// signatures). ns/prekey is ns/op divided by the number of pre-keys.
func BenchmarkBundleVerify(b *testing.B) {
	full := benchBundleWith(b, protocol.MaxOneTimePerUpload)
	claimed := *full
	claimed.OneTime = full.OneTime[:1]
	for _, c := range []struct {
		name   string
		bundle *protocol.Bundle
	}{
		{fmt.Sprintf("full/onetime=%d", len(full.OneTime)), full},
		{"claimed/onetime=1", &claimed},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.bundle.Verify(); err != nil {
					b.Fatal(err)
				}
			}
			reportPer(b, 2+len(c.bundle.OneTime), "ns/prekey")
		})
	}
}

// BenchmarkBundleParse measures ParseBundle on the encoding of the same
// bundles: a client parses what the server hands it before verifying it.
// Parsing checks every pre-key's X-Wing public key (ML-KEM encapsulation key
// decoding and the X25519 small-order check) but no signature.
func BenchmarkBundleParse(b *testing.B) {
	full := benchBundleWith(b, protocol.MaxOneTimePerUpload)
	claimed := *full
	claimed.OneTime = full.OneTime[:1]
	for _, c := range []struct {
		name   string
		bundle *protocol.Bundle
	}{
		{fmt.Sprintf("full/onetime=%d", len(full.OneTime)), full},
		{"claimed/onetime=1", &claimed},
	} {
		enc := c.bundle.Marshal()
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				if _, err := protocol.ParseBundle(enc); err != nil {
					b.Fatal(err)
				}
			}
			reportPer(b, 2+len(c.bundle.OneTime), "ns/prekey")
		})
	}
}

// benchConv is a conversation of n devices, one per member (n is at most
// protocol.MaxMembers): the creator's device first. claimed[i] is device i's
// bundle as a claim returns it (its one one-time key). NewDistribution does
// not consume keys, so every iteration reuses the same claimed bundles.
type benchConv struct {
	parties []*party
	chain   *protocol.Chain
	claimed []*protocol.Bundle
	devices []protocol.DeviceRef
}

var (
	benchConvMu    sync.Mutex
	benchConvCache = map[int]*benchConv{}
)

func benchConversation(b *testing.B, n int) *benchConv {
	b.Helper()
	benchConvMu.Lock()
	defer benchConvMu.Unlock()
	if c := benchConvCache[n]; c != nil {
		return c
	}
	c := &benchConv{}
	for range n {
		id, user, dev := NewIdentity(), protocol.NewUserID(), protocol.NewDeviceID()
		bundle, privs, err := NewBundle(id, user, dev, 1, 1, testNow)
		if err != nil {
			b.Fatal(err)
		}
		p := &party{id: id, ref: protocol.DeviceRef{User: user, Device: dev}, bundle: bundle, prekeys: privs}
		c.parties = append(c.parties, p)
		c.claimed = append(c.claimed, bundle) // exactly one one-time key already
		c.devices = append(c.devices, p.ref)
	}
	_, c.chain = genesis(b, c.parties[0], c.parties[1:]...)
	benchConvCache[n] = c
	return c
}

var benchDeviceCounts = []int{2, 10, 100, 1000}

// BenchmarkDistribution measures a new epoch for n recipient devices.
//
// "new" is NewDistribution: per recipient, Bundle.Verify of the claimed bundle
// (3 Ed25519 verifications) and an HPKE seal (X-Wing encapsulation); then one
// signature over the whole distribution and the self-check d.Verify.
//
// "open" is OpenDistribution at one (non-creator) recipient: Distribution.Verify
// (one Ed25519 verification over the whole encoding), the exact recipient-set
// check against the n devices, and one HPKE open (X-Wing decapsulation).
//
// ns/recipient is ns/op divided by n; wire-bytes is the size of the
// distribution's encoding.
func BenchmarkDistribution(b *testing.B) {
	b.Run("new", func(b *testing.B) {
		for _, n := range benchDeviceCounts {
			b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
				c := benchConversation(b, n)
				creator := c.parties[0]
				req := EpochRequest{Chain: c.chain, Epoch: 1, Creator: creator.ref, Time: testNow * 1000, Bundles: c.claimed}
				var d *protocol.Distribution
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if d, _, err = NewDistribution(creator.id, req); err != nil {
						b.Fatal(err)
					}
				}
				reportPer(b, n, "ns/recipient")
				b.ReportMetric(float64(len(d.Marshal())), "wire-bytes")
			})
		}
	})
	b.Run("open", func(b *testing.B) {
		for _, n := range benchDeviceCounts {
			b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
				c := benchConversation(b, n)
				creator := c.parties[0]
				d, want, err := NewDistribution(creator.id, EpochRequest{Chain: c.chain, Epoch: 1, Creator: creator.ref, Time: testNow * 1000, Bundles: c.claimed})
				if err != nil {
					b.Fatal(err)
				}
				self := c.parties[n-1]
				req := OpenRequest{Distribution: d, Chain: c.chain, Devices: c.devices, Self: self.ref, PreKey: self.preKey}
				b.ReportAllocs()
				for b.Loop() {
					s, err := OpenDistribution(req)
					if err != nil {
						b.Fatal(err)
					}
					if !s.Equal(want) {
						b.Fatal("opened another epoch secret")
					}
				}
				reportPer(b, n, "ns/recipient")
				b.ReportMetric(float64(len(d.Marshal())), "wire-bytes")
			})
		}
	})
}

var benchMessageSizes = []struct {
	name string
	size int
}{
	{"100B", 100},
	{"4KiB", 4 << 10},
}

// benchEpochs opens one epoch between two devices and returns the sender's
// and the receiver's state.
func benchEpochs(b *testing.B) (alice, bob *party, ea, eb *Epoch) {
	b.Helper()
	alice, bob = newParty(b, nil, protocol.UserID{}), newParty(b, nil, protocol.UserID{})
	_, chain := genesis(b, alice, bob)
	d, _ := distribute(b, alice, chain, 1, alice, bob)
	devs := refs(alice, bob)
	return alice, bob, openEpoch(b, alice, d, chain, devs), openEpoch(b, bob, d, chain, devs)
}

// BenchmarkEncrypt measures Epoch.Encrypt: one chain step (two HKDF-Expand),
// padding, ChaCha20-Poly1305 and an Ed25519 signature over header and
// ciphertext. The sender's chain simply advances by one message per op.
func BenchmarkEncrypt(b *testing.B) {
	for _, m := range benchMessageSizes {
		b.Run(m.name, func(b *testing.B) {
			alice, _, ea, _ := benchEpochs(b)
			msg := make([]byte, m.size)
			protocol.Random(msg)
			b.SetBytes(int64(m.size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ea.Encrypt(alice.id, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchDecryptBatch is how many envelopes BenchmarkDecrypt encrypts at a time
// with the timer stopped.
const benchDecryptBatch = 512

// BenchmarkDecrypt measures Epoch.Decrypt of the next in-order message:
// Ed25519 verification, one chain step, ChaCha20-Poly1305 open and unpadding.
//
// Method: a receiver can decrypt each counter only once, so every op needs a
// fresh envelope. The sender encrypts them in batches of benchDecryptBatch
// with the timer stopped (so memory stays bounded whatever b.N is); the
// receiver then decrypts them in order, one per op, with the timer running.
// Every op is therefore exactly one verify+decrypt on the in-order path (no
// skipped keys), and the allocations of the batches are not counted.
func BenchmarkDecrypt(b *testing.B) {
	for _, m := range benchMessageSizes {
		b.Run(m.name, func(b *testing.B) {
			alice, _, ea, eb := benchEpochs(b)
			msg := make([]byte, m.size)
			protocol.Random(msg)
			sender := alice.id.Public()
			batch := make([]*protocol.Envelope, 0, benchDecryptBatch)
			refill := func() {
				batch = batch[:0]
				for range benchDecryptBatch {
					env, err := ea.Encrypt(alice.id, msg)
					if err != nil {
						b.Fatal(err)
					}
					batch = append(batch, env)
				}
			}
			b.SetBytes(int64(m.size))
			b.ReportAllocs()
			refill()
			b.ResetTimer()
			next := 0
			for i := 0; i < b.N; i++ {
				if next == len(batch) {
					b.StopTimer()
					refill()
					next = 0
					b.StartTimer()
				}
				pt, err := eb.Decrypt(batch[next], sender)
				if err != nil {
					b.Fatal(err)
				}
				if len(pt) != m.size {
					b.Fatalf("decrypted %d bytes, want %d", len(pt), m.size)
				}
				next++
			}
		})
	}
}

// BenchmarkPrimitives measures the building blocks the operations above are
// made of, to tell which one dominates.
func BenchmarkPrimitives(b *testing.B) {
	id := NewIdentity()
	kem := NewKEMKey()
	pub := kem.Public()
	info := []byte("sandi bench info")
	msg := make([]byte, 100)
	var es EpochSecret
	protocol.Random(es[:])

	b.Run("ed25519-sign/100B", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			id.Sign(msg)
		}
	})
	sig := id.Sign(msg)
	b.Run("ed25519-verify/100B", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := id.Public().Verify(msg, sig[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("xwing-seal", func(b *testing.B) { // public-key decoding + encapsulation + AEAD
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := seal(pub, info, es[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	enc, ct, err := seal(pub, info, es[:])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("xwing-open", func(b *testing.B) { // decapsulation + AEAD
		b.ReportAllocs()
		for b.Loop() {
			if _, err := kem.open(info, enc, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("xwing-keygen", func(b *testing.B) { // what a device pays per pre-key
		b.ReportAllocs()
		for b.Loop() {
			NewKEMKey()
		}
	})
	b.Run("KEMPublicKey.HPKE", func(b *testing.B) { // the decoding seal repeats for every recipient
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pub.HPKE(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseKEMPublicKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := protocol.ParseKEMPublicKey(pub.Bytes()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckX25519Point", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := protocol.CheckX25519Point(pub.Bytes()[1184:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// reportPer adds ns/op divided by n under unit.
func reportPer(b *testing.B, n int, unit string) {
	if b.N > 0 && n > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), unit)
	}
}

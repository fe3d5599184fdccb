package secret

// FuzzEpochDecrypt: the receive state machine (Epoch.Decrypt, §8.3-8.4)
// over sequences of envelopes the fuzz input picks from a fixed pool:
// genuine envelopes of two senders (counters 0-7 and 40 of one, 0-3 of the
// other, and jumps to MaxSkip+1, MaxSkip+8 and MaxSkip), and forgeries (a
// bad signature, a valid signature over a tampered ciphertext, header or
// counter, another epoch, an unknown sender, a counter past MaxCounter).
// Each input byte delivers one envelope (bits 0-6 pick it; bit 7 first
// stores and reloads the state, as the client does between pages), at most
// 12 per input. A model of what the receiver must hold (per sender: the
// next counter and the skipped counters) predicts each outcome, and the
// target checks: never a panic; a genuine envelope is accepted exactly when
// the model says, with its plaintext; a duplicate is never accepted twice
// (ErrDuplicate); a forgery never; a refused envelope changes nothing; no
// chain keeps more than MaxSkip skipped keys; a jump past the bound, alone
// or with the keys already skipped, is ErrTooFarAhead.

import (
	"errors"
	"fmt"
	"maps"
	"testing"

	"sandi.dev/protocol"
)

// poolEnvelope is one envelope the fuzz input can deliver.
type poolEnvelope struct {
	env     *protocol.Envelope
	key     protocol.IdentityKey // the sender identity the receiver checks with
	genuine bool                 // made by Encrypt and checked with its signer's key
	text    string
}

type decryptFixture struct {
	secret   EpochSecret
	conv     protocol.ConversationID
	self     protocol.DeviceRef
	devices  []protocol.DeviceRef
	pool     []poolEnvelope
	cheap    int // pool[:cheap] never makes Decrypt derive many keys
	maxSteps int // envelopes delivered per input, to keep an execution short
}

// pick returns the envelope an input byte names (bits 0-6).
func (fx *decryptFixture) pick(b byte) poolEnvelope {
	i := int(b & 0x7f)
	if i >= len(fx.pool) {
		i %= fx.cheap
	}
	return fx.pool[i]
}

// senderAt returns the epoch of sender with its sending chain moved to
// counter n, without sending (chain keys are derived as Decrypt does).
func (fx *decryptFixture) senderAt(tb testing.TB, sender protocol.DeviceRef, n uint32) *Epoch {
	tb.Helper()
	e, err := NewEpoch(&fx.secret, fx.conv, 9, sender, fx.devices)
	if err != nil {
		tb.Fatal(err)
	}
	c := e.chains[sender]
	for i := uint32(0); i < n; i++ {
		if _, c.key, err = step(&c.key, i); err != nil {
			tb.Fatal(err)
		}
	}
	c.next = n
	return e
}

func newDecryptFixture(tb testing.TB) *decryptFixture {
	tb.Helper()
	fx := &decryptFixture{maxSteps: 8}
	copy(fx.secret[:], fuzzSeed("decrypt epoch secret"))
	copy(fx.conv[:], fuzzSeed("decrypt conversation"))
	a, b, c, stranger := fuzzRef("a"), fuzzRef("b"), fuzzRef("c"), fuzzRef("stranger")
	fx.self, fx.devices = b, []protocol.DeviceRef{a, b, c}
	ida, idc := fuzzIdentity(tb, "a"), fuzzIdentity(tb, "c")
	ids := map[protocol.DeviceRef]*IdentityPrivateKey{a: ida, c: idc}
	genuine := func(sender protocol.DeviceRef, n uint32) {
		text := fmt.Sprintf("%x says %d", sender.Device[:2], n)
		env, err := fx.senderAt(tb, sender, n).Encrypt(ids[sender], []byte(text))
		if err != nil {
			tb.Fatal(err)
		}
		fx.pool = append(fx.pool, poolEnvelope{env: env, key: ids[sender].Public(), genuine: true, text: text})
	}
	for n := range uint32(8) {
		genuine(a, n) // 0-7
	}
	genuine(a, 40) // 8
	for n := range uint32(4) {
		genuine(c, n) // 9-12
	}
	// Forgeries (13-20), each signed so that only the check it targets
	// refuses it.
	forge := func(from poolEnvelope, id *IdentityPrivateKey, edit func(*protocol.Envelope)) {
		env := *from.env
		env.Ciphertext = append([]byte(nil), from.env.Ciphertext...)
		edit(&env)
		env.Signature = id.Sign(env.SignedData())
		fx.pool = append(fx.pool, poolEnvelope{env: &env, key: id.Public()})
	}
	forge(fx.pool[1], ida, func(e *protocol.Envelope) { e.Ciphertext[3] ^= 1 })
	forge(fx.pool[2], ida, func(e *protocol.Envelope) { e.Counter = 3 })
	forge(fx.pool[2], ida, func(e *protocol.Envelope) { e.Epoch++ })
	forge(fx.pool[2], ida, func(e *protocol.Envelope) { e.Sender = stranger })
	forge(fx.pool[2], ida, func(e *protocol.Envelope) { e.Sender = c }) // c's chain, a's signature
	forge(fx.pool[2], ida, func(e *protocol.Envelope) { e.Counter = MaxCounter + 1 })
	forge(fx.pool[0], ida, func(e *protocol.Envelope) { e.Ciphertext = e.Ciphertext[:len(e.Ciphertext)-1] })
	forge(fx.pool[0], ida, func(e *protocol.Envelope) {})
	fx.pool[len(fx.pool)-1].genuine = true // a re-signature of a genuine envelope is that envelope
	fx.pool[len(fx.pool)-1].text = fx.pool[0].text
	// Genuine envelopes checked with another sender's key (21, 22).
	fx.pool = append(fx.pool, poolEnvelope{env: fx.pool[3].env, key: idc.Public()})
	fx.pool = append(fx.pool, poolEnvelope{env: fx.pool[9].env, key: ida.Public()})
	// Jumps to the bound (23-25). Accepting one derives up to MaxSkip
	// keys, milliseconds of work, so input bytes past the pool name only
	// the cheaper envelopes (see pick).
	fx.cheap = len(fx.pool)
	genuine(a, MaxSkip+1)
	genuine(a, MaxSkip+8)
	genuine(c, MaxSkip)
	if len(fx.pool) > 0x80 {
		tb.Fatal("pool too large for one byte")
	}
	return fx
}

// senderModel is what the receiver must hold for one sender.
type senderModel struct {
	next     uint32
	skipped  map[uint32]bool
	accepted map[uint32]bool
}

// chainSnapshot is one chain's state, to check that a refusal changed
// nothing.
type chainSnapshot struct {
	next    uint32
	key     [chainKeySize]byte
	skipped map[uint32]messageKey
}

func snapshot(e *Epoch) map[protocol.DeviceRef]chainSnapshot {
	out := make(map[protocol.DeviceRef]chainSnapshot, len(e.chains))
	for ref, c := range e.chains {
		out[ref] = chainSnapshot{next: c.next, key: c.key, skipped: maps.Clone(c.skipped)}
	}
	return out
}

func sameState(e *Epoch, s map[protocol.DeviceRef]chainSnapshot) bool {
	if len(e.chains) != len(s) {
		return false
	}
	for ref, c := range e.chains {
		o, ok := s[ref]
		if !ok || c.next != o.next || c.key != o.key || !maps.Equal(c.skipped, o.skipped) {
			return false
		}
	}
	return true
}

func FuzzEpochDecrypt(f *testing.F) {
	fx := newDecryptFixture(f)
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})              // in order
	f.Add([]byte{7, 0, 3, 3, 1, 0x80 | 2, 6, 5})       // out of order, duplicates, a reload
	f.Add([]byte{9, 10, 11, 12, 0, 9, 0x80 | 25})      // two senders, a jump of MaxSkip-4
	f.Add([]byte{23, 5, 23, 24, 25})                   // past the bound, then at it
	f.Add([]byte{7, 24})                               // skipped keys and the jump together past the bound
	f.Add([]byte{13, 14, 15, 16, 17, 18, 19, 20})      // forgeries
	f.Add([]byte{21, 22, 1, 2, 0, 0x80, 20, 1 | 0x80}) // the wrong keys, a re-signature
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := NewEpoch(&fx.secret, fx.conv, 9, fx.self, fx.devices)
		if err != nil {
			t.Fatal(err)
		}
		model := map[protocol.DeviceRef]*senderModel{}
		for _, d := range fx.devices {
			model[d] = &senderModel{skipped: map[uint32]bool{}, accepted: map[uint32]bool{}}
		}
		for i, b := range in[:min(len(in), fx.maxSteps)] {
			if b&0x80 != 0 {
				state, err := e.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				back, err := UnmarshalEpoch(state)
				if err != nil || !back.equal(e) {
					t.Fatalf("step %d: the stored state does not load back: %v", i, err)
				}
				e = back
			}
			p := fx.pick(b)
			before := snapshot(e)
			pt, err := e.Decrypt(p.env, p.key)

			// What the model says must happen.
			want, wantErr := false, error(nil)
			m := model[p.env.Sender]
			n := p.env.Counter
			if p.genuine && m != nil {
				switch gap := int64(n) - int64(m.next); {
				case gap < 0 && m.skipped[n]:
					want = true
				case gap < 0:
					wantErr = ErrDuplicate
				case gap > MaxSkip || len(m.skipped)+int(gap) > MaxSkip:
					wantErr = ErrTooFarAhead
				default:
					want = true
				}
			}
			if err != nil {
				if pt != nil {
					t.Fatalf("step %d: refused (%v) with a plaintext", i, err)
				}
				if want {
					t.Fatalf("step %d: genuine envelope %d of %x refused: %v", i, n, p.env.Sender.Device[:2], err)
				}
				if wantErr != nil && !errors.Is(err, wantErr) {
					t.Fatalf("step %d: refused with %v, want %v", i, err, wantErr)
				}
				if !sameState(e, before) {
					t.Fatalf("step %d: a refused envelope (%v) changed the state", i, err)
				}
				continue
			}
			if !want {
				t.Fatalf("step %d: envelope %d of %x accepted (genuine %v, model wants %v)", i, n, p.env.Sender.Device[:2], p.genuine, wantErr)
			}
			if string(pt) != p.text {
				t.Fatalf("step %d: plaintext %q, sent %q", i, pt, p.text)
			}
			if m.accepted[n] {
				t.Fatalf("step %d: counter %d of %x accepted twice", i, n, p.env.Sender.Device[:2])
			}
			m.accepted[n] = true
			if n < m.next {
				delete(m.skipped, n)
			} else {
				for j := m.next; j < n; j++ {
					m.skipped[j] = true
				}
				m.next = n + 1
			}
			for ref, c := range e.chains {
				if ref == e.Self {
					continue
				}
				mm := model[ref]
				if len(c.skipped) > MaxSkip || c.next != mm.next || len(c.skipped) != len(mm.skipped) {
					t.Fatalf("step %d: chain of %x at %d with %d skipped keys; model: %d, %d", i, ref.Device[:2], c.next, len(c.skipped), mm.next, len(mm.skipped))
				}
				for j := range c.skipped {
					if !mm.skipped[j] {
						t.Fatalf("step %d: chain of %x keeps a key for counter %d", i, ref.Device[:2], j)
					}
				}
			}
		}
	})
}

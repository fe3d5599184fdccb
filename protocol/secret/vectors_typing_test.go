package secret

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"sandi.dev/protocol"
)

// ---- typing.json ----

const vecTypingDescription = `Typing notices (protocol.md §13.9). All byte strings hex. ` +
	`typing_key = HKDF-SHA256(ikm = state_key, salt = none, info = "sandi v1 typing key", L = 32), state_key as in state.json (§7.6). ` +
	`plaintext = state (u8: 1 typing, 0 stopped) || time (u64, Unix ms). ` +
	`header = 0x01 || conversation (16) || epoch (u64) || sender user (16) || sender device (16) || nonce (24); ` +
	`ad = "sandi v1 typing data" || header; ciphertext = XChaCha20-Poly1305(key = typing_key, nonce, plaintext, ad), 25 bytes; ` +
	`signed_data = "sandi v1 typing signature" || header || ciphertext; signature = Ed25519 signature of signed_data by the identity seed; ` +
	`encoded = header || ciphertext || signature (170 bytes). ` +
	`invalid holds encodings that a decoder MUST refuse, each with the rule it breaks. Everything is implementation-independent.`

type vecTypingFile struct {
	vecHeader
	Conversation protocol.ConversationID `json:"conversation"`
	User         protocol.UserID         `json:"sender_user"`
	Device       protocol.DeviceID       `json:"sender_device"`
	IdentitySeed vecHex                  `json:"identity_seed"`
	Identity     vecHex                  `json:"identity_public"`
	Vectors      []vecTyping             `json:"vectors"`
	Invalid      []vecInvalidEncoding    `json:"invalid"`
}

func (f *vecTypingFile) sizes() map[string]int {
	return map[string]int{"notices": len(f.Vectors), "invalid encodings": len(f.Invalid)}
}

type vecTyping struct {
	StateKey   vecHex `json:"state_key"`
	Epoch      uint64 `json:"epoch"`
	Typing     bool   `json:"typing"`
	Time       int64  `json:"time"`
	Nonce      vecHex `json:"nonce"`
	TypingKey  vecHex `json:"typing_key"`
	Plaintext  vecHex `json:"plaintext"`
	AD         vecHex `json:"ad"`
	Ciphertext vecHex `json:"ciphertext"`
	SignedData vecHex `json:"signed_data"`
	Signature  vecHex `json:"signature"`
	Encoded    vecHex `json:"encoded"`
}

func vecGenTyping(t *testing.T) *vecTypingFile {
	id := vecIdentity(t, "alice")
	f := &vecTypingFile{vecHeader: vecHeader{vecTypingDescription}, Conversation: vecConversation("typing"), User: vecUser("alice"),
		Device: vecDevice("alice laptop"), IdentitySeed: id.Seed(), Identity: vecPub(id)}
	for i, v := range []struct {
		epoch  uint64
		typing bool
	}{{1, true}, {1, false}, {2, true}} {
		sk := StateKey(vecData(fmt.Sprintf("typing state key %d", v.epoch), protocol.StateKeySize))
		k, err := DeriveTypingKey(&sk)
		if err != nil {
			t.Fatal(err)
		}
		h := protocol.TypingHeader{Conversation: f.Conversation, Epoch: v.epoch, Sender: protocol.DeviceRef{User: f.User, Device: f.Device},
			Nonce: [protocol.TypingNonceSize]byte(vecData(fmt.Sprintf("typing nonce %d", i), protocol.TypingNonceSize))}
		ms := vecNowMS + int64(i)*3_000
		n, err := sealTyping(id, &k, h, v.typing, ms)
		if err != nil {
			t.Fatal(err)
		}
		pt := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0}
		if v.typing {
			pt[0] = 1
		}
		for j := range 8 {
			pt[1+j] = byte(uint64(ms) >> (56 - 8*j))
		}
		f.Vectors = append(f.Vectors, vecTyping{StateKey: sk[:], Epoch: v.epoch, Typing: v.typing, Time: ms, Nonce: h.Nonce[:], TypingKey: k[:],
			Plaintext: pt, AD: h.AssociatedData(), Ciphertext: n.Ciphertext[:], SignedData: n.SignedData(), Signature: n.Signature[:], Encoded: n.Marshal()})
	}
	good := f.Vectors[0].Encoded
	mut := func(reason string, m func(b []byte) []byte) {
		f.Invalid = append(f.Invalid, vecInvalidEncoding{Reason: reason, Encoded: m(bytes.Clone(good))})
	}
	mut("version 2", func(b []byte) []byte { b[0] = 2; return b })
	mut("zero conversation id", func(b []byte) []byte { clear(b[1:17]); return b })
	mut("epoch 0", func(b []byte) []byte { clear(b[17:25]); return b })
	mut("zero sender user", func(b []byte) []byte { clear(b[25:41]); return b })
	mut("zero sender device", func(b []byte) []byte { clear(b[41:57]); return b })
	mut("signature S not below the group order", func(b []byte) []byte { b[len(b)-1] = 0xff; return b })
	mut("trailing byte", func(b []byte) []byte { return append(b, 0) })
	mut("truncated signature", func(b []byte) []byte { return b[:len(b)-1] })
	return f
}

func vecReplayTyping(t *testing.T, f *vecTypingFile) {
	id, err := IdentityFromSeed(f.IdentitySeed)
	if err != nil {
		t.Fatal(err)
	}
	vecEq(t, "identity_public", vecPub(id), f.Identity)
	for i, v := range f.Vectors {
		what := fmt.Sprintf("notice %d", i)
		sk := StateKey(v.StateKey)
		k, err := DeriveTypingKey(&sk)
		if err != nil {
			t.Fatal(err)
		}
		vecEq(t, what+" typing_key", k[:], v.TypingKey)
		h := protocol.TypingHeader{Conversation: f.Conversation, Epoch: v.Epoch, Sender: protocol.DeviceRef{User: f.User, Device: f.Device},
			Nonce: [protocol.TypingNonceSize]byte(v.Nonce)}
		vecEq(t, what+" ad", h.AssociatedData(), v.AD)
		// The AEAD from its definition, apart from sealTyping.
		a, err := chacha20poly1305.NewX(v.TypingKey)
		if err != nil {
			t.Fatal(err)
		}
		vecEq(t, what+" ciphertext", a.Seal(nil, v.Nonce, v.Plaintext, v.AD), v.Ciphertext)
		n, err := protocol.ParseTyping(v.Encoded)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		vecEq(t, what+" signed_data", n.SignedData(), v.SignedData)
		vecEq(t, what+" signature", n.Signature[:], v.Signature)
		vecEq(t, what+" encoded", n.Marshal(), v.Encoded)
		typing, ms, err := OpenTyping(&k, n, id.Public())
		if err != nil || typing != v.Typing || ms != v.Time {
			t.Errorf("%s: opens to %v at %d, %v", what, typing, ms, err)
		}
	}
	for _, v := range f.Invalid {
		if _, err := protocol.ParseTyping(v.Encoded); err == nil {
			t.Errorf("invalid encoding (%s) decodes", v.Reason)
		}
	}
}

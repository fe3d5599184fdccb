package secret

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"sandi.dev/protocol"
)

// ---- state.json ----

const vecStateDescription = `Conversation state records (protocol.md §7.6). All byte strings hex. ` +
	`state_key = HKDF-SHA256(ikm = epoch_secret, salt = none, info = "sandi v1 state key" || 0x01 || conversation (16) || epoch (u64), L = 32). ` +
	`plaintext = title length (u16) || title || description length (u16) || description || timer (u32, seconds); padded = plaintext padded as an envelope's (§9.3). ` +
	`header = 0x01 || conversation || epoch (u64) || state version (u64) || signer user || signer device || time (u64, Unix ms) || nonce (24); ` +
	`ad = "sandi v1 state data" || header; ciphertext = XChaCha20-Poly1305(key = state_key, nonce, padded, ad); ` +
	`signed_data = "sandi v1 state signature" || header || ciphertext length (u16) || ciphertext; signature = Ed25519 signature of signed_data by the identity seed; ` +
	`encoded = header || ciphertext length (u16) || ciphertext || signature. ` +
	`The records show a first state (version 1), a change (version 2) and its re-publication under the next epoch (version 2, epoch 3). ` +
	`invalid holds encodings that a decoder MUST refuse, each with the rule it breaks. Everything is implementation-independent.`

type vecStateFile struct {
	vecHeader
	Conversation protocol.ConversationID `json:"conversation"`
	User         protocol.UserID         `json:"signer_user"`
	Device       protocol.DeviceID       `json:"signer_device"`
	IdentitySeed vecHex                  `json:"identity_seed"`
	Identity     vecHex                  `json:"identity_public"`
	Vectors      []vecState              `json:"vectors"`
	Invalid      []vecInvalidEncoding    `json:"invalid"`
}

func (f *vecStateFile) sizes() map[string]int {
	return map[string]int{"states": len(f.Vectors), "invalid encodings": len(f.Invalid)}
}

type vecState struct {
	EpochSecret  vecHex `json:"epoch_secret"`
	Epoch        uint64 `json:"epoch"`
	StateVersion uint64 `json:"state_version"`
	Time         int64  `json:"time"`
	Title        string `json:"title"`
	Description  string `json:"description"`
	Timer        uint32 `json:"timer"`
	Nonce        vecHex `json:"nonce"`
	StateKey     vecHex `json:"state_key"`
	Plaintext    vecHex `json:"plaintext"`
	AD           vecHex `json:"ad"`
	Ciphertext   vecHex `json:"ciphertext"`
	SignedData   vecHex `json:"signed_data"`
	Signature    vecHex `json:"signature"`
	Encoded      vecHex `json:"encoded"`
}

func vecGenState(t *testing.T) *vecStateFile {
	id := vecIdentity(t, "alice")
	f := &vecStateFile{vecHeader: vecHeader{vecStateDescription}, Conversation: vecConversation("state"), User: vecUser("alice"),
		Device: vecDevice("alice laptop"), IdentitySeed: id.Seed(), Identity: vecPub(id)}
	for i, v := range []struct {
		epoch, version uint64
		c              protocol.StateContent
	}{
		{1, 1, protocol.StateContent{Title: "Lunch"}},
		{2, 2, protocol.StateContent{Title: "Trip to Lyon", Description: "Who brings what.", Timer: 604800}},
		{3, 2, protocol.StateContent{Title: "Trip to Lyon", Description: "Who brings what.", Timer: 604800}},
	} {
		s := EpochSecret(vecData(fmt.Sprintf("state epoch %d", v.epoch), 32))
		k, err := DeriveStateKey(&s, f.Conversation, v.epoch)
		if err != nil {
			t.Fatal(err)
		}
		h := protocol.StateHeader{Conversation: f.Conversation, Epoch: v.epoch, StateVersion: v.version,
			Signer: protocol.DeviceRef{User: f.User, Device: f.Device}, Time: vecNowMS + int64(i)*60_000,
			Nonce: [protocol.StateNonceSize]byte(vecData(fmt.Sprintf("state nonce %d", i), protocol.StateNonceSize))}
		rec, err := sealState(id, &k, h, v.c)
		if err != nil {
			t.Fatal(err)
		}
		f.Vectors = append(f.Vectors, vecState{EpochSecret: s[:], Epoch: v.epoch, StateVersion: v.version, Time: h.Time,
			Title: v.c.Title, Description: v.c.Description, Timer: v.c.Timer, Nonce: h.Nonce[:], StateKey: k[:],
			Plaintext: v.c.Marshal(), AD: h.AssociatedData(), Ciphertext: rec.Ciphertext, SignedData: rec.SignedData(),
			Signature: rec.Signature[:], Encoded: rec.Marshal()})
	}
	good := f.Vectors[1].Encoded
	mut := func(reason string, m func(b []byte) []byte) {
		f.Invalid = append(f.Invalid, vecInvalidEncoding{Reason: reason, Encoded: m(bytes.Clone(good))})
	}
	const ctLen = protocol.StateHeaderSize // offset of the ciphertext length
	mut("version 2", func(b []byte) []byte { b[0] = 2; return b })
	mut("zero conversation id", func(b []byte) []byte { clear(b[1:17]); return b })
	mut("epoch 0", func(b []byte) []byte { clear(b[17:25]); return b })
	mut("state version 0", func(b []byte) []byte { clear(b[25:33]); return b })
	mut("zero signer device", func(b []byte) []byte { clear(b[49:65]); return b })
	mut("ciphertext length over 4096", func(b []byte) []byte { binary.BigEndian.PutUint16(b[ctLen:], 4097); return b })
	mut("signature S not below the group order", func(b []byte) []byte { b[len(b)-1] = 0xff; return b })
	mut("trailing byte", func(b []byte) []byte { return append(b, 0) })
	mut("truncated signature", func(b []byte) []byte { return b[:len(b)-1] })
	return f
}

func vecReplayState(t *testing.T, f *vecStateFile) {
	id, err := IdentityFromSeed(f.IdentitySeed)
	if err != nil {
		t.Fatal(err)
	}
	vecEq(t, "identity_public", vecPub(id), f.Identity)
	for i, v := range f.Vectors {
		what := fmt.Sprintf("state %d", i)
		s := EpochSecret(v.EpochSecret)
		k, err := DeriveStateKey(&s, f.Conversation, v.Epoch)
		if err != nil {
			t.Fatal(err)
		}
		vecEq(t, what+" state_key", k[:], v.StateKey)
		c := protocol.StateContent{Title: v.Title, Description: v.Description, Timer: v.Timer}
		vecEq(t, what+" plaintext", c.Marshal(), v.Plaintext)
		h := protocol.StateHeader{Conversation: f.Conversation, Epoch: v.Epoch, StateVersion: v.StateVersion,
			Signer: protocol.DeviceRef{User: f.User, Device: f.Device}, Time: v.Time, Nonce: [protocol.StateNonceSize]byte(v.Nonce)}
		vecEq(t, what+" ad", h.AssociatedData(), v.AD)
		// The AEAD from its definition, apart from sealState.
		a, err := chacha20poly1305.NewX(v.StateKey)
		if err != nil {
			t.Fatal(err)
		}
		vecEq(t, what+" ciphertext", a.Seal(nil, v.Nonce, Pad(v.Plaintext), v.AD), v.Ciphertext)
		rec, err := protocol.ParseStateRecord(v.Encoded)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		vecEq(t, what+" signed_data", rec.SignedData(), v.SignedData)
		vecEq(t, what+" signature", rec.Signature[:], v.Signature)
		got, err := OpenState(&k, rec, id.Public())
		if err != nil || got != c {
			t.Errorf("%s: opens to %+v, %v", what, got, err)
		}
	}
	for _, v := range f.Invalid {
		if _, err := protocol.ParseStateRecord(v.Encoded); err == nil {
			t.Errorf("invalid encoding (%s) decodes", v.Reason)
		}
	}
}

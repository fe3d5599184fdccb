package protocol_test

import (
	"bytes"
	"errors"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// stateSeeds returns valid state records (§7.6) sealed under a fixed key.
func stateSeeds(tb testing.TB) [][]byte {
	id := fixedIdentity(tb, "alice")
	var k secret.StateKey
	copy(k[:], fixedBytes("state key", len(k)))
	var out [][]byte
	for i, c := range []protocol.StateContent{{Title: "lunch"}, {Title: "trip", Description: "who brings what", Timer: 86400}, {}} {
		h := protocol.StateHeader{Conversation: fixedConversation("c"), Epoch: uint64(i + 1), StateVersion: uint64(i + 1),
			Signer: protocol.DeviceRef{User: fixedUser("alice"), Device: fixedDevice("alice")}, Time: fixNow * 1000}
		rec, err := secret.SealState(id, &k, h, c)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, rec.Marshal())
	}
	return out
}

func FuzzParseStateRecord(f *testing.F) {
	for _, s := range stateSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{protocol.Version})
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecoder(t, in, protocol.ParseStateRecord, (*protocol.StateRecord).Marshal)
	})
}

// FuzzParseStateContent: the decrypted plaintext of a state record decodes
// strictly, and what decodes encodes back to the same bytes.
func FuzzParseStateContent(f *testing.F) {
	for _, c := range []protocol.StateContent{{Title: "lunch"}, {Title: "trip", Description: "who brings what", Timer: 86400}, {}} {
		f.Add(c.Marshal())
	}
	f.Add([]byte{0, 1, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := protocol.ParseStateContent(bytes.Clone(in))
		if err != nil {
			if !errors.Is(err, protocol.ErrBadState) {
				t.Fatalf("error does not wrap ErrBadState: %v", err)
			}
			return
		}
		if out := c.Marshal(); !bytes.Equal(out, in) {
			t.Fatalf("Marshal(decode(x)) != x\n   x: %x\n got: %x", in, out)
		}
	})
}

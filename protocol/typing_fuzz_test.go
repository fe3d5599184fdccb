package protocol_test

import (
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// FuzzParseTyping: a typing notice (§13.9) decodes strictly, and what
// decodes encodes back to the same bytes.
func FuzzParseTyping(f *testing.F) {
	id := fixedIdentity(f, "alice")
	var sk secret.StateKey
	copy(sk[:], fixedBytes("state key", len(sk)))
	k, err := secret.DeriveTypingKey(&sk)
	if err != nil {
		f.Fatal(err)
	}
	for i, typing := range []bool{true, false} {
		h := protocol.TypingHeader{Conversation: fixedConversation("c"), Epoch: uint64(i + 1),
			Sender: protocol.DeviceRef{User: fixedUser("alice"), Device: fixedDevice("alice")}}
		n, err := secret.SealTyping(id, &k, h, typing, fixNow*1000)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(n.Marshal())
	}
	f.Add([]byte{protocol.Version})
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecoder(t, in, protocol.ParseTyping, (*protocol.Typing).Marshal)
	})
}

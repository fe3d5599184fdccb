package secret

import (
	"errors"
	"testing"

	"sandi.dev/protocol"
)

// A typing notice opens only under its sender's identity and its epoch's
// key, and only unaltered.
func TestTypingTamper(t *testing.T) {
	alice, mallory := NewIdentity(), NewIdentity()
	var sk, other StateKey
	other[0] = 1
	k, err := DeriveTypingKey(&sk)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := DeriveTypingKey(&other)
	if err != nil {
		t.Fatal(err)
	}
	h := protocol.TypingHeader{Conversation: protocol.NewConversationID(), Epoch: 3,
		Sender: protocol.DeviceRef{User: protocol.UserID{1}, Device: protocol.DeviceID{2}}}
	n, err := SealTyping(alice, &k, h, true, 1780000000000)
	if err != nil {
		t.Fatal(err)
	}
	if on, at, err := OpenTyping(&k, n, alice.Public()); err != nil || !on || at != 1780000000000 {
		t.Fatalf("opens to %v %d %v", on, at, err)
	}
	if _, _, err := OpenTyping(&k, n, mallory.Public()); !errors.Is(err, protocol.ErrBadSignature) {
		t.Fatalf("another identity: %v", err)
	}
	if _, _, err := OpenTyping(&wrong, n, alice.Public()); !errors.Is(err, ErrTypingOpen) {
		t.Fatalf("another epoch's key: %v", err)
	}
	// Mallory re-signs alice's notice under another sender: the
	// ciphertext is bound to the header it was sealed with.
	forged := *n
	forged.Sender.Device = protocol.DeviceID{9}
	forged.Signature = mallory.Sign(forged.SignedData())
	if _, _, err := OpenTyping(&k, &forged, mallory.Public()); !errors.Is(err, ErrTypingOpen) {
		t.Fatalf("a re-signed notice under another sender: %v", err)
	}
	flipped := *n
	flipped.Ciphertext[0] ^= 1
	if _, _, err := OpenTyping(&k, &flipped, alice.Public()); err == nil {
		t.Fatal("an altered notice opens")
	}
}

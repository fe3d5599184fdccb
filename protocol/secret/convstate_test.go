package secret

import (
	"bytes"
	"errors"
	"testing"

	"sandi.dev/protocol"
)

func stateFixture(t testing.TB) (*IdentityPrivateKey, StateKey, protocol.StateHeader) {
	id, err := IdentityFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := EpochSecret(bytes.Repeat([]byte{9}, 32))
	conv := protocol.ConversationID{1}
	k, err := DeriveStateKey(&s, conv, 3)
	if err != nil {
		t.Fatal(err)
	}
	h := protocol.StateHeader{Conversation: conv, Epoch: 3, StateVersion: 2, Signer: protocol.DeviceRef{User: protocol.UserID{2}, Device: protocol.DeviceID{3}}, Time: 1}
	return id, k, h
}

// TestStateTamper: a state record opens only with its epoch's key, under
// its signer's key, with every header field as sealed.
func TestStateTamper(t *testing.T) {
	id, k, h := stateFixture(t)
	rec, err := SealState(id, &k, h, protocol.StateContent{Title: "lunch", Timer: 60})
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenState(&k, rec, id.Public())
	if err != nil || c.Title != "lunch" || c.Timer != 60 {
		t.Fatalf("open: %+v %v", c, err)
	}
	other := NewIdentity()
	if _, err := OpenState(&k, rec, other.Public()); !errors.Is(err, protocol.ErrBadSignature) {
		t.Errorf("another signer's key: %v", err)
	}
	s2 := EpochSecret(bytes.Repeat([]byte{8}, 32))
	k2, err := DeriveStateKey(&s2, h.Conversation, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenState(&k2, rec, id.Public()); !errors.Is(err, ErrStateOpen) {
		t.Errorf("another epoch's key: %v", err)
	}
	// A header changed and re-signed by the signer (a member replaying its
	// own state into another epoch): the AEAD refuses it.
	moved := *rec
	moved.Epoch = 4
	moved.Signature = id.Sign(moved.SignedData())
	if _, err := OpenState(&k, &moved, id.Public()); !errors.Is(err, ErrStateOpen) {
		t.Errorf("header moved to another epoch: %v", err)
	}
	if _, err := SealState(id, &k, h, protocol.StateContent{Title: string(bytes.Repeat([]byte{'a'}, protocol.MaxTitle+1))}); err == nil {
		t.Error("a title over the limit sealed")
	}
}

// FuzzOpenState: any record opens or fails with a classified error, never
// panics; what opens is what was sealed.
func FuzzOpenState(f *testing.F) {
	id, k, h := stateFixture(f)
	for _, c := range []protocol.StateContent{{Title: "lunch"}, {Description: "d", Timer: 5}} {
		rec, err := SealState(id, &k, h, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec.Marshal())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rec, err := protocol.ParseStateRecord(in)
		if err != nil {
			return
		}
		c, err := OpenState(&k, rec, id.Public())
		if err != nil {
			if !errors.Is(err, protocol.ErrBadSignature) && !errors.Is(err, ErrStateOpen) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if err := c.Check(); err != nil {
			t.Fatalf("opened content does not check: %v", err)
		}
	})
}

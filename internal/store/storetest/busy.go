package storetest

import (
	"errors"
	"fmt"
	"testing"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Reader is a device whose event stream Busy filled.
type Reader struct {
	User   protocol.UserID
	Device protocol.DeviceID
}

// Busy fills s with a stream of every kind of event, interleaved: several
// conversations with overlapping members, messages in each, members
// removed and added back, new epochs, rotation required by policy, an
// identity reset, new devices and low one-time keys. It returns every
// device that has an event stream, for tests of an implementation's own
// ways of reading it (for example several query plans that must agree).
func Busy(t *testing.T, s store.Store) []Reader {
	return BusyChecked(t, s, nil)
}

// BusyChecked is Busy, calling check, if not nil, after every write of
// the stream with the devices that have a stream so far (for tests of
// what an implementation keeps up to date as the stream grows).
func BusyChecked(t *testing.T, s store.Store, check func([]Reader)) []Reader {
	f := newFixture(t, s)
	alice, bob, carol, dave := f.user(2, true), f.user(2, true), f.user(1, true), f.user(1, true)
	readers := func() []Reader {
		var out []Reader
		for _, a := range []*acct{alice, bob, carol, dave} {
			for _, d := range a.Devs {
				out = append(out, Reader{User: a.ID, Device: d})
			}
		}
		return out
	}
	wrote := func() {
		if check != nil {
			check(readers())
		}
	}
	c1 := f.conversation(alice, bob)
	c2 := f.conversation(bob, carol, dave)
	c3 := f.conversation(alice, carol)
	epochs := map[protocol.ConversationID]uint64{c1: 1, c2: 1, c3: 1}
	n := 0
	send := func(conv protocol.ConversationID, a *acct, dev int) {
		t.Helper()
		n++
		m := f.msg(conv, a, dev, fmt.Sprintf("busy-%04d", n), epochs[conv])
		m.RotateAfterMessages = 40
		// Refusals are part of the mix: sends after a removal, or while
		// a new epoch is required.
		if _, err := s.SendOne(f.ctx, m); err != nil && !errors.Is(err, store.ErrStaleEpoch) && !errors.Is(err, store.ErrNotMember) {
			t.Fatalf("send: %v", err)
		}
		wrote()
	}
	round := func(k int) {
		for i := range k {
			send(c1, alice, i%2)
			send(c2, carol, 0)
			send(c1, bob, i%2)
			send(c3, carol, 0)
			send(c2, dave, 0)
		}
	}
	round(10)
	f.change(c2, bob, carol) // dave leaves c2
	wrote()
	epochs[c2] = f.rotate(c2, bob, bob, carol)
	wrote()
	round(10)
	f.change(c1, alice, bob, carol) // carol joins c1
	wrote()
	epochs[c1] = f.rotate(c1, alice, alice, bob, carol)
	wrote()
	round(10)
	f.device(dave, true) // a new device
	wrote()
	f.change(c2, bob, carol, dave) // dave is back
	wrote()
	epochs[c2] = f.rotate(c2, bob, bob, carol, dave)
	wrote()
	if _, err := s.Claim(f.ctx, []protocol.DeviceID{carol.Devs[0], dave.Devs[1]}, 20, f.tick()); err != nil {
		t.Fatalf("claim: %v", err)
	}
	wrote()
	round(10)
	// A rotation every 40 messages by policy: catch up on the epochs.
	for _, conv := range []protocol.ConversationID{c1, c2, c3} {
		if f.conv(conv).RotationRequired {
			var members []*acct
			switch conv {
			case c1:
				members = []*acct{alice, bob, carol}
			case c2:
				members = []*acct{bob, carol, dave}
			default:
				members = []*acct{alice, carol}
			}
			epochs[conv] = f.rotate(conv, members[0], members...)
			wrote()
		}
	}
	// bob resets his identity: his second device is revoked, his contacts
	// told, every shared conversation needs a new epoch.
	reset := f.bundleUpload(bob, bob.Devs[0], newIdentity(), 5)
	reset.Reset = true
	if err := s.PutBundle(f.ctx, reset); err != nil {
		t.Fatalf("reset: %v", err)
	}
	bob.Key = reset.Identity
	wrote()
	epochs[c1] = f.rotate(c1, alice, alice, bob, carol)
	wrote()
	epochs[c2] = f.rotate(c2, carol, bob, carol, dave)
	wrote()
	for range 10 {
		send(c1, bob, 0)
		send(c2, dave, 1)
		send(c3, alice, 1)
	}
	return readers()
}

package server_test

import (
	"fmt"
	"slices"
	"testing"

	"sandi.dev/internal/server"
)

type convAnswer struct {
	Epoch            uint64 `json:"epoch"`
	RotationRequired bool   `json:"rotationRequired"`
	RotationReason   string `json:"rotationReason"`
}

// A member account that adds a device (login, then a bundle with the
// account's identity) makes its conversations need a new epoch: members
// are told, sends on the old epoch are refused, and the next epoch covers
// the new device, which reads what is sent in it.
func TestNewDeviceRequiresRotation(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		other, err := carol.create([]*device{alice}) // bob is not in it
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.send(conv, 1, "before the new device"); err != nil {
			t.Fatal(err)
		}
		if got, _, err := bob.syncAll(); err != nil || len(got) != 1 {
			t.Fatalf("bob: %+v %v", got, err)
		}
		for _, d := range []*device{alice, carol} {
			d.events(500)
		}
		state := func(d *device, c fmt.Stringer) convAnswer {
			t.Helper()
			var ca convAnswer
			d.must("GET", "/api/conversations/"+c.String(), nil, &ca)
			return ca
		}
		if s := state(alice, conv); s.RotationRequired || s.Epoch != 1 {
			t.Fatalf("before: %+v", s)
		}

		// A login alone adds no usable device: nothing changes.
		e.login("bob", nil)
		if s := state(alice, conv); s.RotationRequired {
			t.Fatalf("a device without keys required a rotation: %+v", s)
		}

		bob2 := e.login("bob", bob.id) // uploads a bundle with bob's identity
		if s := state(alice, conv); !s.RotationRequired || s.RotationReason != "device" || s.Epoch != 1 {
			t.Fatalf("after bob's new device: %+v", s)
		}
		if s := state(carol, other); s.RotationRequired {
			t.Fatalf("a conversation without bob needs rotation: %+v", s)
		}
		// Every member device is told, with the reason, and learns of the
		// device; carol, who shares nothing with bob, is not.
		for _, d := range []*device{alice, bob, bob2} {
			evs := d.events(500)
			rot := slices.IndexFunc(evs, func(ev eventAnswer) bool {
				return ev.Kind == "rotation_required" && ev.Conversation != nil && *ev.Conversation == conv
			})
			if rot < 0 || evs[rot].Reason != "device" || evs[rot].Epoch != 1 {
				t.Fatalf("%s: events %v, want rotation_required (device) for the conversation", d.name, kindsOf(evs))
			}
			if d == bob2 {
				continue
			}
			dev := slices.IndexFunc(evs, func(ev eventAnswer) bool {
				return ev.Kind == "device" && ev.User != nil && *ev.User == bob.user
			})
			if dev < 0 {
				t.Fatalf("%s: events %v, want a device event for bob", d.name, kindsOf(evs))
			}
		}
		if evs := carol.events(500); slices.ContainsFunc(evs, func(ev eventAnswer) bool {
			return ev.Kind == "rotation_required" || ev.User != nil && *ev.User == bob.user
		}) {
			t.Fatalf("carol: %v", kindsOf(evs))
		}

		// Sends on the old epoch are refused, from either side.
		for _, d := range []*device{alice, bob} {
			_, err := d.send(conv, 1, "stale")
			a := wantCode(t, err, 409, server.CodeRotationRequired)
			if a.CurrentEpoch == nil || *a.CurrentEpoch != 1 {
				t.Fatalf("currentEpoch %v", a.CurrentEpoch)
			}
		}
		// The new device has no key for the old epoch, and a next epoch
		// that leaves it out is refused.
		wantCode(t, bob2.do("GET", fmt.Sprintf("/api/conversations/%s/sessions/1/initial-session", conv), nil, nil), 404, server.CodeNotFound)
		a := wantCode(t, alice.rotate(conv, 2, bob2.dev), 409, server.CodeSessionCoverage)
		if !slices.Equal(a.Missing, []string{bob2.dev.String()}) {
			t.Fatalf("missing %v", a.Missing)
		}
		if err := alice.rotate(conv, 2); err != nil {
			t.Fatal(err)
		}
		if s := state(bob2, conv); s.RotationRequired || s.Epoch != 2 {
			t.Fatalf("after the rotation: %+v", s)
		}
		if _, err := alice.send(conv, 2, "after the rotation"); err != nil {
			t.Fatal(err)
		}
		got, kinds, err := bob2.syncAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].text != "after the rotation" || !slices.Contains(kinds, "session") {
			t.Fatalf("bob's new device read %+v, events %v", got, kinds)
		}
		if _, err := bob2.send(conv, 2, "from the new device"); err != nil {
			t.Fatal(err)
		}
		for _, d := range []*device{alice, bob} {
			got, _, err := d.syncAll()
			if err != nil {
				t.Fatal(err)
			}
			var texts []string
			for _, r := range got {
				texts = append(texts, r.text)
			}
			want := []string{"after the rotation", "from the new device"}
			if d == alice {
				want = want[1:] // her own message is skipped
			}
			if !slices.Equal(texts, want) {
				t.Fatalf("%s read %q, want %q", d.name, texts, want)
			}
		}
	})
}

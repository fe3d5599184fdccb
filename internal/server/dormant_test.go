package server_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// rotateAt is rotate with the sealer's clock at t (its distribution's time),
// which may differ from the server's.
func (d *device) rotateAt(conv protocol.ConversationID, epoch uint64, t time.Time) error {
	chain, err := d.fetchChain(conv)
	if err != nil {
		return err
	}
	var users []protocol.UserID
	for _, m := range chain.Members() {
		users = append(users, m.User)
	}
	bundles, err := d.claim(users...)
	if err != nil {
		return err
	}
	dist, _, err := secret.NewDistribution(d.id, secret.EpochRequest{Chain: chain, Epoch: epoch, Creator: d.ref(), Time: t.UnixMilli(), Bundles: bundles})
	if err != nil {
		return err
	}
	return d.do("POST", "/api/conversations/"+conv.String()+"/sessions", map[string]string{"session": b64(dist.Marshal())}, nil)
}

// TestDormantDevices: a device whose signed pre-key and last-resort key are
// both past their maximum age is dormant (protocol.md §5.3). Sealers leave
// it out of new epochs and the server's coverage check agrees by the same
// rule on the bundle's public times, so a conversation never waits for it;
// an epoch sealed to it anyway (by a sealer whose clock is more than
// DormancySlack behind) is refused; within DormancySlack of the boundary
// either is accepted. A new bundle wakes the device: its conversations need
// a new epoch, which must cover it.
func TestDormantDevices(t *testing.T) {
	const day = 24 * time.Hour
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		bob2 := e.login("bob", bob.id) // a second device of bob that then stops running
		e.clock.now = e.clock.now.Add(92 * day)
		for _, d := range []*device{alice, bob} { // the running devices rotate their keys
			if err := d.uploadBundle(false); err != nil {
				t.Fatal(err)
			}
		}
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatalf("a conversation with a dormant device: %v", err)
		}
		wantCode(t, bob2.do("GET", fmt.Sprintf("/api/conversations/%s/sessions/1/initial-session", conv), nil, nil), 404, server.CodeNotFound)
		if got, _, err := bob.syncAll(); err != nil || len(got) != 0 {
			t.Fatalf("bob: %+v %v", got, err)
		}

		// A sealer whose clock is 3 days behind still sees bob2 awake (89
		// days) and seals to him: the server, for which he is dormant even a
		// day ago, refuses the key as extra.
		a := wantCode(t, alice.rotateAt(conv, 2, e.clock.now.Add(-3*day)), 409, server.CodeSessionCoverage)
		if !slices.Equal(a.Extra, []string{bob2.dev.String()}) || len(a.Missing) != 0 {
			t.Fatalf("extra %v missing %v", a.Extra, a.Missing)
		}

		// bob2 runs again: a new bundle. The conversation needs a new epoch,
		// and one that leaves bob2 out is refused.
		if err := bob2.uploadBundle(false); err != nil {
			t.Fatal(err)
		}
		var ca convAnswer
		alice.must("GET", "/api/conversations/"+conv.String(), nil, &ca)
		if !ca.RotationRequired {
			t.Fatalf("a woken device did not make the conversation need a new epoch: %+v", ca)
		}
		a = wantCode(t, alice.rotate(conv, 2, bob2.dev), 409, server.CodeSessionCoverage)
		if !slices.Equal(a.Missing, []string{bob2.dev.String()}) {
			t.Fatalf("missing %v", a.Missing)
		}
		if err := alice.rotate(conv, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.send(conv, 2, "welcome back"); err != nil {
			t.Fatal(err)
		}
		if got, _, err := bob2.syncAll(); err != nil || len(got) != 1 || got[0].text != "welcome back" {
			t.Fatalf("bob2 read %+v, %v", got, err)
		}

		// Near the boundary: bob2's keys are 90.5 days old. At the server's
		// time he is dormant, a day earlier he is not: an epoch may cover
		// him or leave him out.
		e.clock.now = e.clock.now.Add(90*day + 12*time.Hour)
		for _, d := range []*device{alice, bob} {
			if err := d.uploadBundle(false); err != nil {
				t.Fatal(err)
			}
		}
		if err := alice.rotate(conv, 3); err != nil {
			t.Fatalf("an epoch leaving out a device at its dormancy time: %v", err)
		}
		if err := alice.rotateAt(conv, 4, e.clock.now.Add(-day)); err != nil {
			t.Fatalf("an epoch covering a device at its dormancy time: %v", err)
		}
		wantCode(t, bob2.do("GET", fmt.Sprintf("/api/conversations/%s/sessions/3/initial-session", conv), nil, nil), 404, server.CodeNotFound)
		bob2.must("GET", fmt.Sprintf("/api/conversations/%s/sessions/4/initial-session", conv), nil, nil)
	})
}

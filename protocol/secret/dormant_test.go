package secret

import (
	"testing"

	"sandi.dev/protocol"
)

// TestTargetAges: the key a sealer picks by the ages of a device's keys
// (§5.3), at the boundaries: a signed pre-key up to SignedPreKeyMaxAge, then
// the last-resort key up to LastResortMaxAge, then none (dormant), even when
// a one-time key is left.
func TestTargetAges(t *testing.T) {
	const now = int64(1_780_000_000)
	id := NewIdentity()
	user, dev := protocol.NewUserID(), protocol.NewDeviceID()
	bundle := func(signed, lastResort int64, oneTime bool) *protocol.Bundle {
		b := &protocol.Bundle{User: user, Device: dev, Identity: id.Public()}
		_, b.Signed = NewPreKey(id, user, dev, protocol.SignedPreKey, 1, now-signed)
		_, b.LastResort = NewPreKey(id, user, dev, protocol.LastResortPreKey, 2, now-lastResort)
		if oneTime {
			var k protocol.PreKey
			_, k = NewPreKey(id, user, dev, protocol.OneTimePreKey, 3, now-lastResort)
			b.OneTime = []protocol.PreKey{k}
		}
		return b
	}
	const sMax, lMax = protocol.SignedPreKeyMaxAge, protocol.LastResortMaxAge
	for _, c := range []struct {
		signed, lastResort int64
		oneTime            bool
		want               protocol.PreKeyKind // 0: dormant
	}{
		{0, 0, true, protocol.OneTimePreKey},
		{0, 0, false, protocol.SignedPreKey},
		{sMax, sMax, false, protocol.SignedPreKey},
		{sMax + 1, sMax + 1, false, protocol.LastResortPreKey},
		{sMax + 1, lMax, false, protocol.LastResortPreKey},
		{sMax + 1, lMax, true, protocol.OneTimePreKey},
		{sMax + 1, lMax + 1, false, 0},
		{sMax + 1, lMax + 1, true, 0}, // a one-time key does not wake a dormant device
		{lMax + 1, lMax + 1, false, 0},
		{10, lMax + 1, false, protocol.SignedPreKey}, // a fresh signed pre-key is enough
	} {
		b := bundle(c.signed, c.lastResort, c.oneTime)
		got := b.Target(now)
		if b.Dormant(now) != (c.want == 0) || protocol.Dormant(now-c.signed, now-c.lastResort, now) != (c.want == 0) {
			t.Errorf("ages %d/%d: dormant %v, want %v", c.signed, c.lastResort, b.Dormant(now), c.want == 0)
		}
		switch {
		case c.want == 0 && got != nil:
			t.Errorf("ages %d/%d one-time %v: target %s, want none (dormant)", c.signed, c.lastResort, c.oneTime, got.Kind)
		case c.want != 0 && (got == nil || got.Kind != c.want):
			t.Errorf("ages %d/%d one-time %v: target %v, want %s", c.signed, c.lastResort, c.oneTime, got, c.want)
		}
	}
}

// TestDistributionLeavesOutDormant: a new epoch seals nothing to a dormant
// device and covers the others; a creator whose own device is dormant is
// told to upload a new bundle first.
func TestDistributionLeavesOutDormant(t *testing.T) {
	const now = int64(1_780_000_000)
	alice, bob := NewIdentity(), NewIdentity()
	au, bu := protocol.NewUserID(), protocol.NewUserID()
	genesis := &protocol.Record{Op: protocol.OpCreate, Conversation: protocol.NewConversationID(), Time: now * 1000, Author: au,
		Members: []protocol.Member{{User: au, Identity: alice.Public(), Role: protocol.RoleAdmin}, {User: bu, Identity: bob.Public(), Role: protocol.RoleMember}}}
	SignRecord(alice, genesis)
	chain, err := protocol.Genesis(genesis)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(id *IdentityPrivateKey, u protocol.UserID, created int64) *protocol.Bundle {
		b, _, err := NewBundle(id, u, protocol.NewDeviceID(), 1, 0, created)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old := now - protocol.LastResortMaxAge - 1
	aliceDev, bobPhone, bobOld := mk(alice, au, now), mk(bob, bu, now-3600), mk(bob, bu, old)
	creator := protocol.DeviceRef{User: au, Device: aliceDev.Device}
	d, _, err := NewDistribution(alice, EpochRequest{Chain: chain, Epoch: 1, Creator: creator, Time: now * 1000,
		Bundles: []*protocol.Bundle{aliceDev, bobPhone, bobOld}})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Recipients) != 2 || d.Entry(protocol.DeviceRef{User: bu, Device: bobOld.Device}) != nil || d.Entry(protocol.DeviceRef{User: bu, Device: bobPhone.Device}) == nil {
		t.Fatalf("recipients %v: want alice's device and bob's phone, not his dormant device", d.Devices())
	}
	aliceOld := mk(alice, au, old)
	_, _, err = NewDistribution(alice, EpochRequest{Chain: chain, Epoch: 1, Creator: protocol.DeviceRef{User: au, Device: aliceOld.Device}, Time: now * 1000,
		Bundles: []*protocol.Bundle{aliceOld, bobPhone}})
	if err == nil {
		t.Fatal("a dormant creator made an epoch")
	}
}

package client

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"sandi.dev/protocol"
)

// memberDevices returns the devices of every member of chain that the
// device can verify (§7.4 step 6): for each member, the devices the
// server lists whose signed pre-key verifies under the identity key the
// chain records for that member, for that device. A device the server
// lists with a pre-key another key signed is left out, so an epoch that
// covers it has an extra recipient.
//
// This is the one place that says which devices a member has. When the
// member's account has a signed device list (§12), only the devices it
// names count.
//
// A device that is dormant (§5.3) by the keys verified for it, at this
// device's time plus protocol.DormancySlack, is not a member device: an
// epoch need not cover it. It is returned in dormant instead, as an epoch
// made while it was awake (or by a sealer whose clock is behind) may still
// cover it. Dormancy only grows while a device keeps its keys, so a device
// awake now was awake when the epoch was made.
func (c *Client) memberDevices(ctx context.Context, chain *protocol.Chain) (out map[protocol.UserID][]protocol.DeviceID, dormant map[protocol.DeviceRef]bool, err error) {
	out = map[protocol.UserID][]protocol.DeviceID{}
	dormant = map[protocol.DeviceRef]bool{}
	now := c.now().Unix() + protocol.DormancySlack
	for _, m := range chain.Members() {
		var u userInfo
		if err := c.api.do(ctx, "GET", "/api/users/"+m.User.String(), nil, &u); err != nil {
			if IsCode(err, "not_found") {
				out[m.User] = nil // no account, no device
				continue
			}
			return nil, nil, fmt.Errorf("devices of %s: %w", m.User, err)
		}
		if u.ID != m.User {
			return nil, nil, fmt.Errorf("%w: asked for user %s, got %s", ErrServerMisbehaved, m.User, u.ID)
		}
		devs := []protocol.DeviceID{}
		for _, d := range u.Devices {
			k, err := protocol.ParsePreKey(d.SignedPreKey)
			if err != nil || k.Kind != protocol.SignedPreKey || k.Verify(m.Identity, m.User, d.ID) != nil {
				continue
			}
			// Without a last-resort key that verifies, the signed pre-key's
			// time stands for both.
			lastResort := k.Created
			if lr, err := protocol.ParsePreKey(d.LastResort); err == nil && lr.Kind == protocol.LastResortPreKey && lr.Verify(m.Identity, m.User, d.ID) == nil {
				lastResort = lr.Created
			}
			if protocol.Dormant(k.Created, lastResort, now) {
				dormant[protocol.DeviceRef{User: m.User, Device: d.ID}] = true
				continue
			}
			if !slices.Contains(devs, d.ID) {
				devs = append(devs, d.ID)
			}
		}
		// An account with a signed device list (§12) has the devices it
		// names, whatever else the server lists.
		listed, err := c.deviceList(ctx, m.User, m.Identity)
		if err != nil {
			return nil, nil, err
		}
		for ref := range dormant {
			if ref.User == m.User && listed != nil && !slices.Contains(listed, ref.Device) {
				delete(dormant, ref)
			}
		}
		if listed != nil {
			devs = slices.DeleteFunc(devs, func(d protocol.DeviceID) bool { return !slices.Contains(listed, d) })
		}
		out[m.User] = devs
	}
	return out, dormant, nil
}

// coverage compares an epoch's recipients with the member devices: the
// devices missing from the epoch, and the recipients that are not member
// devices, each in canonical order.
func coverage(want map[protocol.UserID][]protocol.DeviceID, have []protocol.DeviceRef) (missing, extra []protocol.DeviceRef) {
	in := make(map[protocol.DeviceRef]bool, len(have))
	for _, d := range have {
		in[d] = true
	}
	wanted := map[protocol.DeviceRef]bool{}
	for u, ds := range want {
		for _, d := range ds {
			ref := protocol.DeviceRef{User: u, Device: d}
			wanted[ref] = true
			if !in[ref] {
				missing = append(missing, ref)
			}
		}
	}
	for _, d := range have {
		if !wanted[d] {
			extra = append(extra, d)
		}
	}
	order := func(a, b protocol.DeviceRef) int {
		if c := bytes.Compare(a.User[:], b.User[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.Device[:], b.Device[:])
	}
	slices.SortFunc(missing, order)
	slices.SortFunc(extra, order)
	return missing, extra
}

package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Device lists (protocol.md §12): an account's devices are the ones its
// identity key signed into its latest list. A sealer wraps epoch secrets
// only for listed devices; the device remembers, per account, the latest
// list it accepted (storage key devicelist/USER) and refuses an older one,
// an unsigned or forged one, a bundle for a device the list does not name,
// and a missing list for an account that had one.

// heldList is the latest device list this device accepted for an account,
// with the identity key it was verified under. A list of another identity
// key says nothing about the current one (an identity reset starts the
// account's lists again).
type heldList struct {
	Identity protocol.IdentityKey `json:"identity"`
	List     b64                  `json:"list"`
}

func deviceListKey(u protocol.UserID) string { return "devicelist/" + u.String() }

// heldDeviceList returns the list held for user under identity, or nil.
func (c *Client) heldDeviceList(user protocol.UserID, identity protocol.IdentityKey) (*protocol.DeviceList, error) {
	b, err := c.st.Get(deviceListKey(user))
	if errors.Is(err, ErrNoValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var h heldList
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("stored device list of %s: %w", user, err)
	}
	if !h.Identity.Equal(identity) {
		return nil, nil
	}
	l, err := protocol.ParseDeviceList(h.List)
	if err != nil {
		return nil, fmt.Errorf("stored device list of %s: %w", user, err)
	}
	return l, nil
}

func (c *Client) holdDeviceList(identity protocol.IdentityKey, l *protocol.DeviceList) error {
	b, err := json.Marshal(heldList{Identity: identity, List: l.Marshal()})
	if err != nil {
		return err
	}
	return c.st.Put(deviceListKey(l.User), b)
}

// listAlarm records a device-list check that failed because of the server
// and returns the error wrapping ErrServerMisbehaved.
func (c *Client) listAlarm(user protocol.UserID, conv protocol.ConversationID, detail string) error {
	a := Alarm{Kind: AlarmDeviceList, User: user, Conversation: conv, Detail: detail}
	if user == c.acct.User {
		a.Severity = SeverityCritical // this account's own devices
	}
	err := fmt.Errorf("%w: %s", ErrServerMisbehaved, detail)
	if aerr := c.raise(a); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

// acceptDeviceList checks the list the server served for user (enc, nil if
// it served none) against identity, the key the caller trusts for user,
// and against the list held for that account (§12.2). It returns the list
// (nil when the account has none yet and this device never saw one) and
// holds it if it is newer. conv, if not zero, is the conversation an alarm
// concerns.
func (c *Client) acceptDeviceList(user protocol.UserID, identity protocol.IdentityKey, enc []byte, conv protocol.ConversationID) (*protocol.DeviceList, error) {
	held, err := c.heldDeviceList(user, identity)
	if err != nil {
		return nil, err
	}
	if enc == nil {
		if held != nil {
			return nil, c.listAlarm(user, conv, fmt.Sprintf("the server withholds the device list of %s (this device holds list %d)", user, held.Seq))
		}
		return nil, nil
	}
	l, err := protocol.ParseDeviceList(enc)
	if err == nil {
		err = l.Verify(user, identity)
	}
	if err != nil {
		return nil, c.listAlarm(user, conv, fmt.Sprintf("the device list of %s does not verify: %v", user, err))
	}
	if err := l.Follows(held); err != nil {
		return nil, c.listAlarm(user, conv, fmt.Sprintf("the device list of %s: %v", user, err))
	}
	if held == nil || l.Seq > held.Seq {
		if err := c.holdDeviceList(identity, l); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// fetchDeviceList fetches user's latest list and accepts it.
func (c *Client) fetchDeviceList(ctx context.Context, user protocol.UserID, identity protocol.IdentityKey) (*protocol.DeviceList, error) {
	var a struct {
		User protocol.UserID `json:"user"`
		List b64             `json:"list"`
	}
	if err := c.api.do(ctx, "GET", "/api/users/"+user.String()+"/device-list", nil, &a); err != nil {
		return nil, err
	}
	if a.User != user {
		return nil, c.listAlarm(user, protocol.ConversationID{}, "the server answered with the device list of another account")
	}
	var enc []byte
	if a.List != nil {
		enc = a.List
	}
	return c.acceptDeviceList(user, identity, enc, protocol.ConversationID{})
}

// deviceList returns the devices of user's verified, rollback-checked
// device list, for identity (the key the caller's verified chain records
// for user). A nil slice with a nil error means the account has no list
// yet and this device never accepted one: until one exists, the served
// bundles are all there is (§12.4). An account whose list is empty gets an
// empty, non-nil slice. A list that does not verify, is older than the one
// held, or is missing although one was held is ErrServerMisbehaved, and an
// alarm.
func (c *Client) deviceList(ctx context.Context, user protocol.UserID, identity protocol.IdentityKey) ([]protocol.DeviceID, error) {
	l, err := c.fetchDeviceList(ctx, user, identity)
	if err != nil || l == nil {
		return nil, err
	}
	return append([]protocol.DeviceID{}, l.Devices...), nil
}

// checkClaim checks a claim answer's device lists against the identities
// the verified chain of conv records (idents) and refuses a bundle for a
// device its account's list does not name (§12.2). It runs before anything
// is sealed.
func (c *Client) checkClaim(ca *claimAnswer, idents map[protocol.UserID]protocol.IdentityKey, conv protocol.ConversationID) error {
	served := map[protocol.UserID][]byte{}
	for _, dl := range ca.DeviceLists {
		if _, ok := idents[dl.User]; !ok || served[dl.User] != nil || dl.List == nil {
			return c.listAlarm(dl.User, conv, "the server sent a device list that was not asked for")
		}
		served[dl.User] = dl.List
	}
	lists := map[protocol.UserID]*protocol.DeviceList{}
	for u, id := range idents {
		l, err := c.acceptDeviceList(u, id, served[u], conv)
		if err != nil {
			return err
		}
		lists[u] = l
	}
	for _, cb := range ca.Bundles {
		l := lists[cb.User]
		if l != nil && !l.Contains(cb.Device) {
			return c.listAlarm(cb.User, conv, fmt.Sprintf("the server serves device %s of %s, which its signed device list does not name", cb.Device, cb.User))
		}
	}
	if l := lists[c.acct.User]; l != nil && !l.Contains(c.acct.Device) {
		return fmt.Errorf("this device is not in its account's device list: it was removed")
	}
	return nil
}

// migrationDevices is the first list of an account that has none (§12.4):
// the devices whose bundles the server serves and whose signed pre-keys
// this account's identity key signed, and this device.
func (c *Client) migrationDevices(ctx context.Context) ([]protocol.DeviceID, error) {
	var u userInfo
	if err := c.api.do(ctx, "GET", "/api/users/"+c.acct.User.String(), nil, &u); err != nil {
		return nil, err
	}
	out := []protocol.DeviceID{c.acct.Device}
	for _, d := range u.Devices {
		pk, err := protocol.ParsePreKey(d.SignedPreKey)
		if err != nil || pk.Verify(c.id.Public(), c.acct.User, d.ID) != nil {
			continue // not a device this identity signed for
		}
		out = append(out, d.ID)
	}
	return protocol.SortDevices(out), nil
}

// publishDeviceList signs and sends the account's next device list: the
// devices change returns from the current ones (the latest list, or for
// an account without one the devices it has with valid bundles). It is
// sent to method path, with the list as {"list": …}; a concurrent change
// (stale_device_list) is retried on top of the new list.
func (c *Client) publishDeviceList(ctx context.Context, method, path string, change func([]protocol.DeviceID) []protocol.DeviceID) (*protocol.DeviceList, error) {
	for try := 0; ; try++ {
		cur, err := c.fetchDeviceList(ctx, c.acct.User, c.id.Public())
		if err != nil {
			return nil, err
		}
		next := &protocol.DeviceList{User: c.acct.User, Seq: 1, Time: c.now().UnixMilli()}
		var base []protocol.DeviceID
		if cur != nil {
			next.Seq, next.Prev, base = cur.Seq+1, cur.Hash(), cur.Devices
		} else if base, err = c.migrationDevices(ctx); err != nil {
			return nil, err
		}
		next.Devices = protocol.SortDevices(change(slices.Clone(base)))
		if len(next.Devices) > protocol.MaxDevices {
			return nil, fmt.Errorf("an account has at most %d devices", protocol.MaxDevices)
		}
		secret.SignDeviceList(c.id, next)
		err = c.api.do(ctx, method, path, map[string]b64{"list": next.Marshal()}, nil)
		if IsCode(err, "stale_device_list") && try < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return next, c.holdDeviceList(c.id.Public(), next)
	}
}

// addDevice publishes the account's list with dev added (a device linked).
func (c *Client) addDevice(ctx context.Context, dev protocol.DeviceID) error {
	_, err := c.publishDeviceList(ctx, "POST", "/api/devices/list", func(ds []protocol.DeviceID) []protocol.DeviceID {
		return append(ds, dev)
	})
	return err
}

// ensureDeviceList makes sure the account's device list names this device
// (§12.4): it gives an account without a list its first one, and adds this
// device when the list lacks it (a link whose approving device could not
// publish). It runs on Sync and costs nothing once this device holds a
// list that names it. A device that the list dropped cannot add itself
// back: dropping it revoked its token.
func (c *Client) ensureDeviceList(ctx context.Context) error {
	self := c.acct.Device
	if held, err := c.heldDeviceList(c.acct.User, c.id.Public()); err != nil || held != nil && held.Contains(self) {
		return err
	}
	cur, err := c.fetchDeviceList(ctx, c.acct.User, c.id.Public())
	if err != nil || cur != nil && cur.Contains(self) {
		return err
	}
	_, err = c.publishDeviceList(ctx, "POST", "/api/devices/list", func(ds []protocol.DeviceID) []protocol.DeviceID { return append(ds, self) })
	return err
}

// RemoveDevice removes another device of this account (by id, or by a
// unique prefix of its id as DeviceList shows it): it publishes the
// account's device list without it, and the server revokes it at once (its
// tokens, its keys, its live connections). Every conversation of the
// account then moves to a new epoch that does not include it. To remove
// this device, use Logout.
func (c *Client) RemoveDevice(ctx context.Context, idOrPrefix string) (protocol.DeviceID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return protocol.DeviceID{}, err
	}
	dev, err := c.resolveDevice(ctx, idOrPrefix)
	if err != nil {
		return dev, err
	}
	if dev == c.acct.Device {
		return dev, errors.New("that is this device: log out instead")
	}
	_, err = c.publishDeviceList(ctx, "DELETE", "/api/devices/"+dev.String(), func(ds []protocol.DeviceID) []protocol.DeviceID {
		return slices.DeleteFunc(ds, func(d protocol.DeviceID) bool { return d == dev })
	})
	return dev, err
}

// resolveDevice finds the device of this account that s names: a whole
// id, or a prefix of the id of exactly one device of the account's list
// or of the devices the server shows.
func (c *Client) resolveDevice(ctx context.Context, s string) (protocol.DeviceID, error) {
	if id, err := protocol.ParseDeviceID(s); err == nil {
		return id, nil
	}
	devs, err := c.devices(ctx)
	if err != nil {
		return protocol.DeviceID{}, err
	}
	var found []protocol.DeviceID
	for _, d := range devs {
		if len(s) >= 4 && len(s) <= 2*protocol.IDSize && d.ID.String()[:len(s)] == s {
			found = append(found, d.ID)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return protocol.DeviceID{}, fmt.Errorf("no device of this account has an id starting with %q (at least 4 characters)", s)
	}
	return protocol.DeviceID{}, fmt.Errorf("%q names %d devices: give more of the id", s, len(found))
}

// Device is one device of this account.
type Device struct {
	ID        protocol.DeviceID `json:"id"`
	Name      string            `json:"name"`
	CreatedAt int64             `json:"createdAt"`
	Current   bool              `json:"current"`
	// Listed reports that the account's signed device list names it: only
	// listed devices receive new epochs. An account without a list yet
	// (an old one, until one of its devices syncs) has none listed.
	Listed bool `json:"listed"`
	// Keys reports that the server serves its pre-keys.
	Keys bool `json:"keys"`
	// NameSigned reports that Name is the one the account's identity key
	// signed for it (§12.5); otherwise Name is as the server gave it.
	NameSigned bool `json:"nameSigned"`
}

// Devices lists this account's devices: those its signed device list
// names (verified with the account's identity key when this device holds
// it) and those the server shows with keys.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct.Token == "" {
		return nil, ErrNoAccount
	}
	return c.devices(ctx)
}

func (c *Client) devices(ctx context.Context) ([]Device, error) {
	var u struct {
		userInfo
		DeviceList b64 `json:"deviceList"`
	}
	if err := c.api.do(ctx, "GET", "/api/users/"+c.acct.User.String(), nil, &u); err != nil {
		return nil, err
	}
	var listed []protocol.DeviceID
	if c.id != nil {
		var enc []byte
		if u.DeviceList != nil {
			enc = u.DeviceList
		}
		l, err := c.acceptDeviceList(c.acct.User, c.id.Public(), enc, protocol.ConversationID{})
		if err != nil {
			return nil, err
		}
		if l != nil {
			listed = l.Devices
		}
	}
	out := make([]Device, 0, len(u.Devices)+len(listed))
	for _, d := range u.Devices {
		dev := Device{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt, Current: d.ID == c.acct.Device, Listed: slices.Contains(listed, d.ID), Keys: true}
		if err := c.checkDeviceName(&dev, d.NameRecord); err != nil {
			return nil, err
		}
		if dev.Current && !dev.NameSigned && c.id != nil {
			// This device's name was not signed when it signed in (the
			// server refused it): signed now, or left as it is.
			if c.signOwnName(ctx) == nil {
				if n, err := c.heldName(dev.ID); err == nil && n != nil {
					dev.Name, dev.NameSigned = n.Name, true
				}
			}
		}
		out = append(out, dev)
	}
	for _, id := range listed {
		if !slices.ContainsFunc(out, func(d Device) bool { return d.ID == id }) {
			out = append(out, Device{ID: id, Current: id == c.acct.Device, Listed: true})
		}
	}
	return out, nil
}

// logout revokes this device on the server: with the identity key, by
// publishing the account's device list without it; without (a device not
// linked yet), by its token alone. An already revoked token is not an
// error.
func (c *Client) logoutServer(ctx context.Context) error {
	if c.id == nil {
		return c.api.do(ctx, "POST", "/api/auth/logout", nil, nil)
	}
	self := c.acct.Device
	_, err := c.publishDeviceList(ctx, "POST", "/api/auth/logout", func(ds []protocol.DeviceID) []protocol.DeviceID {
		return slices.DeleteFunc(ds, func(d protocol.DeviceID) bool { return d == self })
	})
	return err
}

// forgetDevice erases this device's state after a logout: its keys, its
// conversations and history, its pending link. The alarm log stays (it is
// about the server, not the account), and so does the server URL, so the
// same storage can log in or register again.
//
// The device is logged out from the first write on: a mark says so and the
// account record loses its token before anything else is erased, so an
// erasure interrupted half-way (a crash, a full disk) leaves a device that
// is logged out, never one that still names the account; Open finishes the
// erasure (see finishLogout).
func (c *Client) forgetDevice() error {
	if err := c.st.Put(logoutMark, []byte("1")); err != nil {
		return err
	}
	server := c.acct.Server
	c.acct = account{Server: server}
	c.id = nil
	c.prekeys = map[uint32]*prekeyEntry{}
	c.convs = map[protocol.ConversationID]*convState{}
	c.pend = newPending()
	c.api.token = ""
	if err := c.saveAccount(); err != nil {
		return err
	}
	return c.finishLogout()
}

// logoutMark is the storage key present while a logout's erasure is not
// complete.
const logoutMark = "logout"

// finishLogout erases everything but the account record (logged out), the
// alarm log and, last, the logout mark.
func (c *Client) finishLogout() error {
	keys, err := c.st.List("")
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k == "alarms" || k == "account" || k == logoutMark {
			continue
		}
		if err := c.st.Delete(k); err != nil {
			return err
		}
	}
	return c.st.Delete(logoutMark)
}

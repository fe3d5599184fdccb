package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Device names (protocol.md §12.5). A device's name is signed by the
// account's identity key, so the server cannot rename a device unnoticed:
// this device shows the signed name, keeps the newest record it verified
// per device (storage key devname/ID), and raises an alarm when the server
// serves a name that is not the signed one, a record that does not verify,
// an older record, or none for a device it held one for.

func deviceNameKey(d protocol.DeviceID) string { return "devname/" + d.String() }

// heldName reads the newest name record this device verified for d.
func (c *Client) heldName(d protocol.DeviceID) (*protocol.DeviceName, error) {
	b, err := c.st.Get(deviceNameKey(d))
	if errors.Is(err, ErrNoValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var enc b64
	if err := json.Unmarshal(b, &enc); err != nil {
		return nil, fmt.Errorf("stored device name: %w", err)
	}
	return protocol.ParseDeviceName(enc)
}

func (c *Client) holdName(n *protocol.DeviceName) error {
	b, err := json.Marshal(b64(n.Marshal()))
	if err != nil {
		return err
	}
	return c.st.Put(deviceNameKey(n.Device), b)
}

// checkDeviceName sets dev.Name from the signed record the server served
// (enc, may be empty), as §12.5 says a device checks it.
func (c *Client) checkDeviceName(dev *Device, enc []byte) error {
	if c.id == nil {
		return nil // a device without keys cannot verify: names as served
	}
	held, err := c.heldName(dev.ID)
	if err != nil {
		return err
	}
	served := dev.Name
	alarm := func(what string) error {
		if held != nil {
			dev.Name, dev.NameSigned = held.Name, true
		}
		// Once per misbehaviour: the same answer again raises nothing.
		seen := []byte(what + "\x00" + served + "\x00" + string(enc))
		key := "devnamealarm/" + dev.ID.String()
		if b, err := c.st.Get(key); err == nil && string(b) == string(seen) {
			return nil
		}
		if err := c.raise(Alarm{Kind: AlarmDeviceList, User: c.acct.User,
			Detail: fmt.Sprintf("the server %s for device %s; this device shows the name the account signed", what, dev.ID)}); err != nil {
			return err
		}
		return c.st.Put(key, seen)
	}
	if len(enc) == 0 {
		if held != nil {
			return alarm("served no signed name")
		}
		return nil
	}
	n, err := protocol.ParseDeviceName(enc)
	if err == nil {
		err = n.Verify(c.acct.User, dev.ID, c.id.Public())
	}
	switch {
	case err != nil:
		return alarm("served a device name record that does not verify")
	case held != nil && n.Seq < held.Seq:
		return alarm("served an older name record")
	case held != nil && n.Seq == held.Seq && string(n.Marshal()) != string(held.Marshal()):
		return alarm("served two different name records with one number")
	case n.Name != dev.Name:
		dev.Name, dev.NameSigned = n.Name, true
		if err := c.holdName(n); err != nil {
			return err
		}
		return alarm(fmt.Sprintf("named the device %q, not the signed name", dev.Name))
	}
	dev.Name, dev.NameSigned = n.Name, true
	if held == nil || n.Seq > held.Seq {
		return c.holdName(n)
	}
	return nil
}

// RenameDevice gives a device of this account (its id, or 4+ characters
// of it) a new name, signed by the account's identity key (§12.5).
func (c *Client) RenameDevice(ctx context.Context, device, name string) (protocol.DeviceID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct.Token == "" {
		return protocol.DeviceID{}, ErrNoAccount
	}
	if c.id == nil {
		return protocol.DeviceID{}, errors.New("this device holds no keys yet: link it first")
	}
	if err := protocol.CheckDeviceName(name); err != nil {
		return protocol.DeviceID{}, err
	}
	id, err := c.resolveDevice(ctx, device)
	if err != nil {
		return id, err
	}
	devs, err := c.devices(ctx) // verifies what the server holds now
	if err != nil {
		return id, err
	}
	seq := uint64(1)
	if held, err := c.heldName(id); err != nil {
		return id, err
	} else if held != nil {
		if held.Seq >= 1<<63-1 {
			return id, fmt.Errorf("device %s cannot be renamed again: its name record has the largest number a record can hold (§12.5)", id)
		}
		seq = held.Seq + 1
	}
	known := false
	for _, d := range devs {
		known = known || d.ID == id
	}
	if !known {
		return id, fmt.Errorf("device %s is not a device of this account", id)
	}
	n := &protocol.DeviceName{User: c.acct.User, Device: id, Seq: seq, Time: c.now().UnixMilli(), Name: name}
	secret.SignDeviceName(c.id, n)
	if err := c.api.do(ctx, "PUT", "/api/devices/"+id.String()+"/name", map[string]any{"record": b64(n.Marshal())}, nil); err != nil {
		return id, err
	}
	return id, c.holdName(n)
}

// signOwnName signs this device's name under the account's current
// identity key (§12.5), unless this device holds a record of its own that
// verifies under it: the name it signed in with (its default name,
// recorded in its state at the sign-in, not the name a later program
// that opens the state would give a new device), so that no name is ever
// the server's alone; after an identity reset, the name it held, signed
// again under the new key. A name that a record cannot hold (control
// characters, over 64 bytes), or none recorded (state from before the
// name was), is left unsigned.
func (c *Client) signOwnName(ctx context.Context) error {
	self := c.acct.Device
	held, err := c.heldName(self)
	if err != nil {
		return err
	}
	if held != nil && held.Verify(c.acct.User, self, c.id.Public()) == nil {
		return nil
	}
	name, seq := c.acct.DeviceName, uint64(1)
	if held != nil {
		name, seq = held.Name, held.Seq+1
	}
	if protocol.CheckDeviceName(name) != nil {
		return nil
	}
	for try := 0; ; try++ {
		n := &protocol.DeviceName{User: c.acct.User, Device: self, Seq: seq, Time: c.now().UnixMilli(), Name: name}
		secret.SignDeviceName(c.id, n)
		err := c.api.do(ctx, "PUT", "/api/devices/"+self.String()+"/name", map[string]any{"record": b64(n.Marshal())}, nil)
		if err == nil {
			return c.holdName(n)
		}
		if !IsCode(err, "conflict") || try > 0 {
			return fmt.Errorf("sign this device's name: %w", err)
		}
		// The server holds a newer record: one another device of the
		// account signed (a rename, kept), or one under a replaced key
		// (signed over).
		served, err := c.servedOwnName(ctx)
		if err != nil {
			return err
		}
		if served.Verify(c.acct.User, self, c.id.Public()) == nil {
			return c.holdName(served)
		}
		seq = max(seq, served.Seq+1)
	}
}

// trySignOwnName is signOwnName at registration, a link and an identity
// reset, which a failure to sign does not undo: the name stays unsigned
// until this device next lists its account's devices (devices), which
// signs it then.
func (c *Client) trySignOwnName(ctx context.Context) {
	_ = c.signOwnName(ctx) // retried by devices
}

// servedOwnName is the name record the server serves for this device,
// decoded but not verified.
func (c *Client) servedOwnName(ctx context.Context) (*protocol.DeviceName, error) {
	var u userInfo
	if err := c.api.do(ctx, "GET", "/api/users/"+c.acct.User.String(), nil, &u); err != nil {
		return nil, err
	}
	for _, d := range u.Devices {
		if d.ID == c.acct.Device && len(d.NameRecord) > 0 {
			return protocol.ParseDeviceName(d.NameRecord)
		}
	}
	return nil, fmt.Errorf("%w: the server refuses this device's name record as older than its own, and serves none", ErrServerMisbehaved)
}

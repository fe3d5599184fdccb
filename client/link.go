package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Device linking (protocol.md §11): a device that logged in without the
// account's identity key shows a code; the user types it on a device that
// has the key, which seals the key to the new device through the server.

// linkState is the pending link of a new device (storage key "link").
type linkState struct {
	TmpSeed b64    `json:"tmpSeed"`
	Code    string `json:"code"`
}

// StartLink registers this new device's temporary key with the server and
// returns the code to type on another device of the account. Calling it
// again returns the same code until the link completes.
func (c *Client) StartLink(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct.Token == "" {
		return "", ErrNoAccount
	}
	if c.id != nil {
		return "", errors.New("this device already has the account's identity key")
	}
	var ls linkState
	if b, err := c.st.Get("link"); err == nil {
		if err := json.Unmarshal(b, &ls); err != nil {
			return "", err
		}
	} else {
		tmp := secret.NewKEMKey()
		ls = linkState{TmpSeed: tmp.Seed(), Code: secret.NewLinkSecret(tmp.Public()).Code()}
		b, err := json.Marshal(ls)
		if err != nil {
			return "", err
		}
		if err := c.st.Put("link", b); err != nil {
			return "", err
		}
	}
	tmp, err := secret.KEMKeyFromSeed(ls.TmpSeed)
	if err != nil {
		return "", err
	}
	if err := c.api.do(ctx, "POST", "/api/devices/link", map[string]b64{"publicKey": tmp.Public().Bytes()}, nil); err != nil {
		return "", err
	}
	return ls.Code, nil
}

// WaitLink waits until another device has confirmed the code, then takes
// the identity key and uploads this device's pre-keys. It polls every
// interval until ctx ends.
func (c *Client) WaitLink(ctx context.Context, interval time.Duration) error {
	for {
		done, err := c.tryCompleteLink(ctx)
		if done || err != nil {
			return err
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Client) tryCompleteLink(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := c.st.Get("link")
	if err != nil {
		return false, errors.New("no link started on this device: run StartLink first")
	}
	var ls linkState
	if err := json.Unmarshal(b, &ls); err != nil {
		return false, err
	}
	var ans struct {
		Sealed b64 `json:"sealed"`
	}
	if err := c.api.do(ctx, "GET", "/api/devices/link/self", nil, &ans); err != nil {
		return false, err
	}
	if len(ans.Sealed) == 0 {
		return false, nil
	}
	tmp, err := secret.KEMKeyFromSeed(ls.TmpSeed)
	if err != nil {
		return false, err
	}
	l, err := secret.ParseLinkSecret(ls.Code)
	if err != nil {
		return false, err
	}
	id, err := secret.OpenIdentity(tmp, ans.Sealed, c.acct.User, c.acct.Device, l)
	if err != nil {
		return false, fmt.Errorf("%w: the confirmed identity does not open: %v", ErrServerMisbehaved, err)
	}
	if err := c.st.Put("identity", id.Seed()); err != nil {
		return false, err
	}
	c.id = id
	if err := c.uploadBundle(ctx, false, c.batch); err != nil {
		return false, err
	}
	return true, c.st.Delete("link")
}

type linkRequest struct {
	Device    protocol.DeviceID `json:"device"`
	Name      string            `json:"name"`
	PublicKey b64               `json:"publicKey"`
	CreatedAt int64             `json:"createdAt"`
}

// ApproveLink confirms a new device of this account by the code it shows
// and seals the identity key to it. Only the device whose temporary key the
// code was made for can open it.
func (c *Client) ApproveLink(ctx context.Context, code string) (protocol.DeviceID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return protocol.DeviceID{}, err
	}
	l, err := secret.ParseLinkSecret(code)
	if err != nil {
		return protocol.DeviceID{}, fmt.Errorf("that is not a link code (20 letters and digits, as the new device shows it)")
	}
	var list struct {
		Requests []linkRequest `json:"requests"`
	}
	if err := c.api.do(ctx, "GET", "/api/devices/link", nil, &list); err != nil {
		return protocol.DeviceID{}, err
	}
	for _, r := range list.Requests {
		pub, err := protocol.ParseKEMPublicKey(r.PublicKey)
		if err != nil || !l.Selects(pub) {
			continue
		}
		sealed, err := secret.SealIdentity(c.id, pub, c.acct.User, r.Device, l)
		if err != nil {
			return protocol.DeviceID{}, err
		}
		if err := c.api.do(ctx, "POST", "/api/devices/link/"+r.Device.String(), map[string]b64{"sealed": sealed}, nil); err != nil {
			return protocol.DeviceID{}, err
		}
		if err := c.addDevice(ctx, r.Device); err != nil {
			return r.Device, fmt.Errorf("the device is linked, but the account's device list was not updated (the new device adds itself when it syncs): %w", err)
		}
		return r.Device, nil
	}
	return protocol.DeviceID{}, errors.New("no new device of this account shows that code; check it, or run 'sandi link' on the new device again")
}

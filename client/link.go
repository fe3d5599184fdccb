package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sandi.dev/protocol"
	"sandi.dev/protocol/archive"
	"sandi.dev/protocol/secret"
)

// Device linking (protocol.md §11): a device that logged in without the
// account's identity key shows a code; the user types it on a device that
// has the key, which seals the key to the new device through the server.

// Errors of device linking that callers branch on.
var (
	// ErrLinkExpired: the new device's link request passed its lifetime
	// (10 minutes) before a device approved it; start linking again.
	ErrLinkExpired = errors.New("the link code has expired: start linking again on the new device for a new code")
	// ErrLinkAmbiguous: more than one pending request answers the typed
	// code. Someone other than the new device has seen the code (or the
	// server duplicated a request); nothing was sealed.
	ErrLinkAmbiguous = errors.New("more than one device answers this link code: someone else has seen it, so nothing was sent; start linking again on the new device")
	// ErrLinkCode: the typed text is not a link code (wraps nothing else).
	ErrLinkCode = secret.ErrLinkCode
	// ErrNoLinkRequest: no pending request answers the typed code.
	ErrNoLinkRequest = errors.New("no new device of this account shows that code; check it, or start linking again on the new device (a code lasts 10 minutes)")
)

// linkState is the pending link of a new device (storage key "link").
type linkState struct {
	TmpSeed b64    `json:"tmpSeed"`
	Code    string `json:"code"`
}

// StartLink draws a temporary key and a link key, registers the request
// with the server (replacing this device's earlier one) and returns the
// code to type on another device of the account. The server keeps the
// request for 10 minutes (protocol.md §11).
func (c *Client) StartLink(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct.Token == "" {
		return "", ErrNoAccount
	}
	if c.id != nil {
		return "", errors.New("this device already has the account's identity key")
	}
	tmp, key := secret.NewKEMKey(), secret.NewLinkKey()
	b, err := json.Marshal(linkState{TmpSeed: tmp.Seed(), Code: key.Code()})
	if err != nil {
		return "", err
	}
	if err := c.st.Put("link", b); err != nil {
		return "", err
	}
	req := map[string]b64{"publicKey": tmp.Public().Bytes(), "tag": key.Tag(c.acct.User, c.acct.Device, tmp.Public())}
	if err := c.api.do(ctx, "POST", "/api/devices/link", req, nil); err != nil {
		return "", err
	}
	return key.Code(), nil
}

// WaitLink waits until another device has confirmed the code, then takes
// the identity key and uploads this device's pre-keys. It polls every
// interval until ctx ends; it returns ErrLinkExpired once the request
// expired unapproved.
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
	key, err := secret.ParseLinkCode(ls.Code)
	if err != nil {
		// A link started by a version with shorter codes: its request
		// has no tag and has expired on the server.
		if err := c.st.Delete("link"); err != nil {
			return false, err
		}
		return false, ErrLinkExpired
	}
	var ans struct {
		Sealed b64 `json:"sealed"`
	}
	if err := c.api.do(ctx, "GET", "/api/devices/link/self", nil, &ans); err != nil {
		if IsCode(err, "link_expired") {
			return false, ErrLinkExpired
		}
		return false, err
	}
	if len(ans.Sealed) == 0 {
		return false, nil
	}
	tmp, err := secret.KEMKeyFromSeed(ls.TmpSeed)
	if err != nil {
		return false, err
	}
	id, offer, err := secret.OpenIdentityWith(tmp, ans.Sealed, archive.OfferSize, c.acct.User, c.acct.Device, key)
	if err != nil {
		return false, fmt.Errorf("%w: the confirmed identity does not open: %v", ErrServerMisbehaved, err)
	}
	if offer != nil {
		// A history transfer (§14.5): kept until imported, so that an
		// interrupted import can be retried (ResumeTransfer).
		if _, err := archive.ParseOffer(offer); err != nil {
			return false, fmt.Errorf("the other device offered a history transfer this version cannot read: %w", err)
		}
		if err := c.st.Put(transferKey, offer); err != nil {
			return false, err
		}
	}
	if err := c.st.Put("identity", id.Seed()); err != nil {
		return false, err
	}
	c.id = id
	if err := c.uploadBundle(ctx, false, c.batch); err != nil {
		return false, err
	}
	c.trySignOwnName(ctx) // its default name, signed now that it holds the key (§12.5)
	if err := c.st.Delete("link"); err != nil {
		return false, err
	}
	if err := c.importTransfer(ctx); err != nil {
		return true, fmt.Errorf("%w (ResumeTransfer, or sandi link resume, tries again): %w", ErrTransfer, err)
	}
	return true, nil
}

type linkRequest struct {
	Device    protocol.DeviceID `json:"device"`
	Name      string            `json:"name"`
	PublicKey b64               `json:"publicKey"`
	Tag       b64               `json:"tag"`
	CreatedAt int64             `json:"createdAt"`
	ExpiresAt int64             `json:"expiresAt"`
}

// ApproveLink confirms a new device of this account by the code it shows
// and seals the identity key to it (protocol.md §11). Of the pending
// requests the server lists, exactly one must carry a tag that verifies
// under the code: none is ErrNoLinkRequest, more than one is
// ErrLinkAmbiguous (and an alarm). Only the device that drew the code's
// temporary key can open what is sealed.
func (c *Client) ApproveLink(ctx context.Context, code string) (protocol.DeviceID, error) {
	return c.ApproveLinkWith(ctx, code, LinkHistory{})
}

// ApproveLinkWith is ApproveLink that also transfers history: with
// h.Transfer it uploads an archive of this device's state (protocol.md
// §14) and seals its key and digest to the new device with the identity.
// Without, the archive holds only what the new device needs to tell
// message requests as this one does: the block list and the request state
// (protocol.md §16.1).
func (c *Client) ApproveLinkWith(ctx context.Context, code string, h LinkHistory) (protocol.DeviceID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return protocol.DeviceID{}, err
	}
	key, err := secret.ParseLinkCode(code)
	if err != nil {
		return protocol.DeviceID{}, fmt.Errorf("%w: the code has %d letters and digits (2 to 7), as the new device shows it", err, secret.LinkCodeLength)
	}
	var list struct {
		Requests []linkRequest `json:"requests"`
	}
	if err := c.api.do(ctx, "GET", "/api/devices/link", nil, &list); err != nil {
		return protocol.DeviceID{}, err
	}
	var match *linkRequest
	var pub protocol.KEMPublicKey
	n := 0
	for i, r := range list.Requests {
		p, err := protocol.ParseKEMPublicKey(r.PublicKey)
		if err != nil || !key.Verifies(c.acct.User, r.Device, p, r.Tag) {
			continue
		}
		n++
		match, pub = &list.Requests[i], p
	}
	switch {
	case n == 0:
		return protocol.DeviceID{}, ErrNoLinkRequest
	case n > 1:
		if err := c.raise(Alarm{Kind: AlarmServerData, Severity: SeverityCritical, User: c.acct.User,
			Detail: fmt.Sprintf("%d pending device links answered the link code typed on this device: someone who knows this account's password has seen the code, or the server duplicated a request; no device was linked", n)}); err != nil {
			return protocol.DeviceID{}, err
		}
		return protocol.DeviceID{}, ErrLinkAmbiguous
	}
	// Without history, the transfer holds the block list and the request
	// state only (§16.1). It goes with every link: a new device without
	// them would decide requests alone, and take as accepted a
	// conversation of an account the user blocked.
	offer, err := c.offerTransfer(ctx, h)
	if err != nil {
		if h.Transfer {
			return protocol.DeviceID{}, fmt.Errorf("no device was linked: the history transfer failed: %w", err)
		}
		return protocol.DeviceID{}, fmt.Errorf("no device was linked: the block list and message requests this device hands to the new one could not be uploaded: %w", err)
	}
	sealed, err := secret.SealIdentityWith(c.id, offer, pub, c.acct.User, match.Device, key)
	if err != nil {
		return protocol.DeviceID{}, err
	}
	if err := c.api.do(ctx, "POST", "/api/devices/link/"+match.Device.String(), map[string]b64{"sealed": sealed}, nil); err != nil {
		if IsCode(err, "link_expired") {
			return protocol.DeviceID{}, ErrLinkExpired
		}
		return protocol.DeviceID{}, err
	}
	if err := c.addDevice(ctx, match.Device); err != nil {
		return match.Device, fmt.Errorf("the device is linked, but the account's device list was not updated (the new device adds itself when it syncs): %w", err)
	}
	return match.Device, nil
}

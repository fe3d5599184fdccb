package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"sandi.dev/protocol"
)

// Session is one device signed in to this account, as the server lists
// it: with or without the account's keys.
type Session struct {
	Device    protocol.DeviceID `json:"device"`
	Name      string            `json:"name"`
	CreatedAt int64             `json:"createdAt"`
	// LastUsed is when its token was last used, to within an hour (0:
	// its tokens expired).
	LastUsed int64 `json:"lastUsed"`
	Current  bool  `json:"current"`
	// Keys: it holds the account's keys (it uploaded a bundle). Listed:
	// the account's signed device list names it.
	Keys   bool `json:"keys"`
	Listed bool `json:"listed"`
	// Keyless is a session that only signed in with the password: it
	// holds no keys and the list does not name it. It reads nothing of
	// the account's conversations, but it was made with the password.
	Keyless bool `json:"keyless"`
	// SignOut is whether SignOutSession can end it without a signed
	// list: it holds no keys, or the account's list does not name it.
	SignOut bool `json:"signOut"`
}

// Sessions lists the devices signed in to this account. A device that
// holds the account's keys sees every session; one that only signed in
// sees itself.
func (c *Client) Sessions(ctx context.Context) ([]Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct.Token == "" {
		return nil, ErrNoAccount
	}
	return c.sessions(ctx)
}

func (c *Client) sessions(ctx context.Context) ([]Session, error) {
	var a struct {
		Sessions []Session `json:"sessions"`
	}
	if err := c.api.do(ctx, "GET", "/api/sessions", nil, &a); err != nil {
		return nil, err
	}
	hasList := slices.ContainsFunc(a.Sessions, func(s Session) bool { return s.Listed })
	for i := range a.Sessions {
		s := &a.Sessions[i]
		s.Current = s.Device == c.acct.Device
		s.Keyless = !s.Keys && !s.Listed
		s.SignOut = !s.Current && (!s.Keys || hasList && !s.Listed)
	}
	return a.Sessions, nil
}

// FindSession returns the session of this account that idOrPrefix names
// (a whole id, or 4 or more of its first characters naming exactly one).
func (c *Client) FindSession(ctx context.Context, idOrPrefix string) (Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct.Token == "" {
		return Session{}, ErrNoAccount
	}
	return c.findSession(ctx, idOrPrefix)
}

func (c *Client) findSession(ctx context.Context, s string) (Session, error) {
	ss, err := c.sessions(ctx)
	if err != nil {
		return Session{}, err
	}
	var found []Session
	for _, x := range ss {
		id := x.Device.String()
		if len(s) >= 4 && len(s) <= len(id) && id[:len(s)] == s {
			found = append(found, x)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Session{}, fmt.Errorf("no session of this account has an id starting with %q (at least 4 characters)", s)
	}
	return Session{}, fmt.Errorf("%q names %d sessions: give more of the id", s, len(found))
}

// ErrSessionListed is signing out, without a signed list, a device that
// the account's signed device list names: use RemoveDevice.
var ErrSessionListed = errors.New("that device holds the account's keys: remove it with RemoveDevice (sandi devices remove)")

// SignOutSession ends a session of this account that its signed device
// list does not name (one that only signed in with the password, most
// often): the server revokes it at once. Only a device in the list may.
func (c *Client) SignOutSession(ctx context.Context, idOrPrefix string) (protocol.DeviceID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return protocol.DeviceID{}, err
	}
	s, err := c.findSession(ctx, idOrPrefix)
	if err != nil {
		return protocol.DeviceID{}, err
	}
	if s.Current {
		return s.Device, errors.New("that is this device: log out instead")
	}
	if !s.SignOut {
		return s.Device, ErrSessionListed
	}
	err = c.api.do(ctx, "DELETE", "/api/sessions/"+s.Device.String(), nil, nil)
	if IsCode(err, "device_listed") {
		return s.Device, ErrSessionListed
	}
	return s.Device, err
}

// ChangePassword replaces the account's password; oldPassword must be the
// current one. With signOutOthers, the server also ends every other
// session that the account's signed device list does not name, and
// ChangePassword returns them; devices in the list stay (remove them with
// RemoveDevice).
func (c *Client) ChangePassword(ctx context.Context, oldPassword, newPassword string, signOutOthers bool) ([]protocol.DeviceID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return nil, err
	}
	var a struct {
		Revoked []protocol.DeviceID `json:"revoked"`
	}
	err := c.api.do(ctx, "POST", "/api/auth/password", map[string]any{
		"oldPassword": oldPassword, "newPassword": newPassword, "signOutOthers": signOutOthers,
	}, &a)
	return a.Revoked, err
}

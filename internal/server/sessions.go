package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Sessions: every device signed in to an account, with or without keys.
//
// A device that only signed in with the password (a login that has not
// been linked, so it holds none of the account's keys) is a keyless
// session. It may link itself, upload its bundle (after linking, or to
// reset the account's identity, which every contact is shown), list its
// own session and log out; every other route answers it 403
// keys_required, so a password alone reveals nothing of the account's
// conversations. Each login is announced to the account's other devices
// (a session_added event), and a device holding the account's keys that
// its signed device list names may revoke any session the list does not
// name. Tokens expire after going unused for Config.SessionIdle.
//
// An account has at most Config.MaxDevices devices that are not revoked
// (signed in, linked or not, and those holding keys whose token expired):
// a login past it is refused with 409 too_many_devices, telling the user to
// remove one. A revoked device's row is deleted at the account's next login
// once nothing names it any more (store.PurgeDevices): a login/logout loop
// keeps one revoked row, not one per turn.

// DefaultSessionIdle is how long a token may go unused before it expires
// by default: 90 days.
const DefaultSessionIdle = 90 * 24 * time.Hour

// TokenTouchInterval is how stale a token's recorded last use may be: a
// use is written at most once per token in this interval, not on every
// request.
const TokenTouchInterval = time.Hour

// Problem codes of sessions (docs/api.md).
const (
	// CodeKeysRequired (403): the route needs a device that holds the
	// account's keys; the caller only signed in and is not linked.
	CodeKeysRequired = "keys_required"
	// CodeSessionExpired (401): the token went unused for longer than the
	// server's idle limit and is deleted; sign in again.
	CodeSessionExpired = "session_expired"
	// CodeDeviceListed (409): the device to sign out is in the account's
	// signed device list: it is removed only by a list without it.
	CodeDeviceListed = "device_listed"
	// CodeTooManyDevices (409): the account already has MaxDevices devices
	// that are not revoked; remove one, then sign in again.
	CodeTooManyDevices = "too_many_devices"
)

// DefaultMaxDevices is the default of Config.MaxDevices: as many as a
// signed device list may name (protocol.DeviceList), far above the phones,
// computers and browsers one person uses.
const DefaultMaxDevices = protocol.MaxDevices

var errKeysRequired = problem(http.StatusForbidden, CodeKeysRequired,
	"this device does not hold the account's keys: link it from another device first", nil)

// hasKeys reports whether the caller's device uploaded a bundle, which
// only a device holding the account's identity key can make.
func hasKeys(c *call) bool { return c != nil && c.device.SignedPreKey != nil }

// tokenUsed expires a token unused for longer than SessionIdle and
// records its use at most once per TokenTouchInterval.
func (s *Server) tokenUsed(ctx context.Context, d store.Device, h []byte) error {
	idle := s.cfg.SessionIdle
	if idle <= 0 {
		return nil
	}
	now := s.now()
	if d.TokenUsedAt != 0 && now-d.TokenUsedAt > idle.Milliseconds() {
		if err := s.store.DeleteToken(ctx, h); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if d.SignedPreKey == nil {
			// A keyless session has nothing else: it ends with its token.
			err := s.store.RevokeDevice(ctx, d.User, d.ID, now)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		s.revokeLive(d.User, d.ID)
		s.log.Info("token expired unused", "user", d.User, "device", d.ID, "keyless", d.SignedPreKey == nil, "lastUsed", d.TokenUsedAt)
		return problem(http.StatusUnauthorized, CodeSessionExpired, "the session expired after going unused: sign in again", nil)
	}
	if now-d.TokenUsedAt >= TokenTouchInterval.Milliseconds() {
		if err := s.store.TouchToken(ctx, h, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

type sessionInfo struct {
	Device    protocol.DeviceID `json:"device"`
	Name      string            `json:"name"`
	CreatedAt int64             `json:"createdAt"`
	// LastUsed is the last recorded use of its tokens (to within
	// TokenTouchInterval); 0 once they all expired.
	LastUsed int64 `json:"lastUsed"`
	Current  bool  `json:"current"`
	// Keys: it uploaded a bundle (it holds the account's keys). Listed:
	// the account's signed device list names it.
	Keys   bool `json:"keys"`
	Listed bool `json:"listed"`
}

// logins returns the account's sessions and whether it has a device list.
func (s *Server) logins(r *http.Request, c *call) ([]store.Login, bool, error) {
	ls, err := s.store.Logins(r.Context(), c.user())
	if err != nil {
		return nil, false, err
	}
	_, err = s.store.DeviceList(r.Context(), c.user())
	if errors.Is(err, store.ErrNotFound) {
		return ls, false, nil
	}
	return ls, err == nil, err
}

// listed reports whether the account's list names l's device.
func listed(l store.Login, hasList bool) bool { return hasList && !l.Device.Unlisted }

// trusted reports whether the caller may sign out the account's other
// sessions: it holds the keys and, if the account has a list, is on it.
func trusted(c *call, ls []store.Login, hasList bool) bool {
	if !hasKeys(c) {
		return false
	}
	for _, l := range ls {
		if l.Device.ID == c.device.ID {
			return !hasList || listed(l, hasList)
		}
	}
	return false
}

// listSessions answers GET /api/sessions: every session of the account,
// for a device with keys; a keyless device sees only its own.
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, c *call) error {
	ls, hasList, err := s.logins(r, c)
	if err != nil {
		return err
	}
	out := make([]sessionInfo, 0, len(ls))
	for _, l := range ls {
		if !hasKeys(c) && l.Device.ID != c.device.ID {
			continue
		}
		out = append(out, sessionInfo{
			Device: l.Device.ID, Name: l.Device.Name, CreatedAt: l.Device.CreatedAt, LastUsed: l.LastUsed,
			Current: l.Device.ID == c.device.ID, Keys: l.Device.SignedPreKey != nil, Listed: listed(l, hasList),
		})
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
	return nil
}

// revokeSession answers DELETE /api/sessions/{device}: a session that the
// account's signed device list does not name is signed out (revoked: its
// tokens, bundle and one-time keys deleted, its connections ended). A
// listed device is removed only by a signed list (DELETE
// /api/devices/{device}).
func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request, c *call) error {
	dev, err := protocol.ParseDeviceID(r.PathValue("device"))
	if err != nil {
		return problem(http.StatusNotFound, CodeNotFound, "no such session", err)
	}
	if dev == c.device.ID {
		return badRequest("a device signs itself out by logging out", nil)
	}
	ls, hasList, err := s.logins(r, c)
	if err != nil {
		return err
	}
	if !trusted(c, ls, hasList) {
		return problem(http.StatusForbidden, CodeForbidden, "only a device in the account's signed device list signs out other sessions", nil)
	}
	for _, l := range ls {
		if l.Device.ID != dev {
			continue
		}
		if !signOutable(l, hasList) {
			return problem(http.StatusConflict, CodeDeviceListed, "that device holds the account's keys: remove it with a signed device list", nil)
		}
		if err := s.revoke(r, c.user(), dev); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return problem(http.StatusNotFound, CodeNotFound, "no such session of this account", nil)
}

// signOutable reports whether a session may be revoked without a signed
// list: it has no keys, or the account's list does not name it.
func signOutable(l store.Login, hasList bool) bool {
	return l.Device.SignedPreKey == nil || hasList && l.Device.Unlisted
}

func (s *Server) revoke(r *http.Request, user protocol.UserID, dev protocol.DeviceID) error {
	err := s.store.RevokeDevice(r.Context(), user, dev, s.now())
	if err != nil && !errors.Is(err, store.ErrNotFound) { // revoked meanwhile: done
		return err
	}
	s.revokeLive(user, dev)
	s.hub.NotifyAll()
	return nil
}

type passwordChange struct {
	OldPassword   string `json:"oldPassword"`
	NewPassword   string `json:"newPassword"`
	SignOutOthers bool   `json:"signOutOthers"`
}

// changePassword answers POST /api/auth/password, by a device in the
// account's signed device list that knows the current password. With
// signOutOthers, every other session the list does not name is revoked;
// listed devices stay (they are removed only by a signed list).
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := s.limits.login.allow(s.clientAddr(r)); err != nil {
		return err
	}
	var req passwordChange
	if err := decode(r, &req, 16<<10); err != nil {
		return err
	}
	if !passwordLength(req.NewPassword) {
		return badRequest(fmt.Sprintf("a password has %d to %d characters", minPassword, maxPassword), nil)
	}
	if utf8.RuneCountInString(req.OldPassword) > maxPassword {
		return badRequest(fmt.Sprintf("a password has %d to %d characters", minPassword, maxPassword), nil)
	}
	ls, hasList, err := s.logins(r, c)
	if err != nil {
		return err
	}
	if !trusted(c, ls, hasList) {
		return problem(http.StatusForbidden, CodeForbidden, "only a device in the account's signed device list changes the password", nil)
	}
	u, err := s.store.User(r.Context(), c.user())
	if err != nil {
		return err
	}
	// Charged per device, not per username: wrong guesses here do not
	// spend the account's login allowance.
	if err := s.limits.login.allow("device:" + c.device.ID.String()); err != nil {
		return err
	}
	if !checkPassword(u.PasswordHash, req.OldPassword) {
		return problem(http.StatusForbidden, CodeBadCredentials, "the current password is wrong", nil)
	}
	if err := s.store.SetPassword(r.Context(), u.ID, s.hashPassword(req.NewPassword)); err != nil {
		return err
	}
	revoked := []protocol.DeviceID{}
	if req.SignOutOthers {
		for _, l := range ls {
			if l.Device.ID == c.device.ID || !signOutable(l, hasList) {
				continue
			}
			if err := s.revoke(r, u.ID, l.Device.ID); err != nil {
				return err
			}
			revoked = append(revoked, l.Device.ID)
		}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"revoked": revoked})
	return nil
}

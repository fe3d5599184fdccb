package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Device lists (protocol.md §12): an account's devices are the ones its
// identity key signed into its latest list. The server verifies and stores
// the list, serves it with the account's bundles, serves bundles only for
// the devices it names, and revokes at once the devices it drops.

// CodeStaleDeviceList is a device list made against a list that is no
// longer the account's latest: fetch it and sign the change again.
const CodeStaleDeviceList = "stale_device_list"

type deviceListRequest struct {
	List B64 `json:"list"`
}

type deviceListAnswer struct {
	User protocol.UserID `json:"user"`
	// List is the account's latest signed list; absent when it has none.
	List B64 `json:"list,omitempty"`
}

// deviceListOf returns the encoded latest list of user, or nil.
func (s *Server) deviceListOf(r *http.Request, user protocol.UserID) ([]byte, error) {
	dl, err := s.store.DeviceList(r.Context(), user)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return dl.Encoded, nil
}

// getDeviceList answers GET /api/users/{user}/device-list.
func (s *Server) getDeviceList(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := protocol.ParseUserID(r.PathValue("user"))
	if err != nil {
		return problem(http.StatusNotFound, CodeNotFound, "no such user", err)
	}
	if _, err := s.store.User(r.Context(), id); errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, CodeNotFound, "no such user", err)
	} else if err != nil {
		return err
	}
	enc, err := s.deviceListOf(r, id)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, deviceListAnswer{User: id, List: enc})
	return nil
}

// putDeviceList verifies a list the caller's account signed and stores it,
// revoking also the devices in revoke (§12.3). It returns the devices it
// revoked, whose live connections it has ended.
func (s *Server) putDeviceList(r *http.Request, c *call, enc []byte, revoke []protocol.DeviceID, check func(*protocol.DeviceList) error) ([]protocol.DeviceID, error) {
	l, err := protocol.ParseDeviceList(enc)
	if err != nil {
		return nil, badRequest("device list: "+err.Error(), err)
	}
	if l.User != c.user() {
		return nil, problem(http.StatusForbidden, CodeForbidden, "a device publishes only its own account's device list", nil)
	}
	if check != nil {
		if err := check(l); err != nil {
			return nil, err
		}
	}
	u, err := s.store.User(r.Context(), c.user())
	if err != nil {
		return nil, err
	}
	if u.Identity == nil {
		return nil, problem(http.StatusConflict, CodeConflict, "upload a pre-key bundle first", nil)
	}
	if err := l.Verify(u.ID, *u.Identity); err != nil {
		return nil, problem(http.StatusBadRequest, CodeBadSignature, err.Error(), err)
	}
	var prev uint64
	var prevHash [protocol.HashSize]byte
	if cur, err := s.store.DeviceList(r.Context(), u.ID); err == nil {
		held, err := protocol.ParseDeviceList(cur.Encoded)
		if err != nil {
			return nil, err // the server stored only lists it parsed
		}
		prev, prevHash = cur.Seq, held.Hash()
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	stale := problem(http.StatusConflict, CodeStaleDeviceList, "the account's device list changed; fetch it and sign the change again", nil)
	if l.Seq <= prev || l.Prev != prevHash {
		return nil, stale
	}
	revoked, err := s.store.PutDeviceList(r.Context(), store.DeviceListUpdate{
		User: u.ID, Identity: *u.Identity, PrevSeq: prev, Seq: l.Seq, Encoded: enc, Devices: l.Devices, Revoke: revoke, Now: s.now(),
	})
	switch {
	case errors.Is(err, store.ErrStaleDeviceList):
		return nil, stale
	case errors.Is(err, store.ErrIdentityMismatch):
		return nil, problem(http.StatusConflict, CodeIdentityMismatch, "the account's identity key changed", err)
	case errors.Is(err, store.ErrNotFound):
		return nil, problem(http.StatusNotFound, CodeNotFound, "the list names a device that is not a device of this account", err)
	case err != nil:
		return nil, err
	}
	s.forgetEverywhere() // the devices' listing changed
	// Revoked devices stop receiving events now, not at their next poll.
	s.revokeLive(u.ID, revoked...)
	// The account's devices and its contacts got device events.
	s.notifyContacts(r.Context(), u.ID)
	return revoked, nil
}

// publishDeviceList answers POST /api/devices/list: a new list of the
// caller's account (a device linked, the first list of an account). A
// device that the previous list named and this one does not is revoked.
func (s *Server) publishDeviceList(w http.ResponseWriter, r *http.Request, c *call) error {
	var req deviceListRequest
	if err := decode(r, &req, 64<<10); err != nil {
		return err
	}
	revoked, err := s.putDeviceList(r, c, req.List, nil, nil)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"revoked": nonNil(revoked)})
	return nil
}

// removeDevice answers DELETE /api/devices/{device}: another device of the
// caller's account is removed by a signed list without it. Its tokens,
// bundle and one-time keys are deleted and its live connections end.
func (s *Server) removeDevice(w http.ResponseWriter, r *http.Request, c *call) error {
	dev, err := protocol.ParseDeviceID(r.PathValue("device"))
	if err != nil {
		return problem(http.StatusNotFound, CodeNotFound, "no such device", err)
	}
	if dev == c.device.ID {
		return badRequest("a device removes itself by logging out", nil)
	}
	var req deviceListRequest
	if err := decode(r, &req, 64<<10); err != nil {
		return err
	}
	devs, err := s.store.Devices(r.Context(), c.user())
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(devs, func(d store.Device) bool { return d.ID == dev }) {
		return problem(http.StatusNotFound, CodeNotFound, "no such device of this account", nil)
	}
	_, err = s.putDeviceList(r, c, req.List, []protocol.DeviceID{dev}, func(l *protocol.DeviceList) error {
		if l.Contains(dev) {
			return badRequest("the list still names the device to remove", nil)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// logout answers POST /api/auth/logout. The body is empty, or holds a
// signed list of the account without this device ({"list": …}). Either way
// the device is revoked: its tokens, bundle and one-time keys are deleted
// and its live connections end at once.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, c *call) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 64<<10))
	if err != nil {
		return problem(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body too large", err)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var req deviceListRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || dec.More() {
			return badRequest("request body is not the expected JSON", err)
		}
		self := c.device.ID
		_, err := s.putDeviceList(r, c, req.List, []protocol.DeviceID{self}, func(l *protocol.DeviceList) error {
			if l.Contains(self) {
				return badRequest("the list still names the device logging out", nil)
			}
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		err := s.store.RevokeDevice(r.Context(), c.user(), c.device.ID, s.now())
		if err != nil && !errors.Is(err, store.ErrNotFound) { // revoked meanwhile: done
			return err
		}
		s.revokeLive(c.user(), c.device.ID)
		s.notifyContacts(r.Context(), c.user())
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return slices.Clip(s)
}

// putDeviceName answers PUT /api/devices/{device}/name: a device name
// record (§12.5) of a device of the caller's account, signed by the
// account's identity key, with a seq above the stored one.
func (s *Server) putDeviceName(w http.ResponseWriter, r *http.Request, c *call) error {
	dev, err := protocol.ParseDeviceID(r.PathValue("device"))
	if err != nil {
		return problem(http.StatusNotFound, CodeNotFound, "no such device", err)
	}
	var req struct {
		Record B64 `json:"record"`
	}
	if err := decode(r, &req, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	n, err := protocol.ParseDeviceName(req.Record)
	if err != nil {
		return badRequest("record: "+err.Error(), err)
	}
	u, err := s.store.User(r.Context(), c.user())
	if err != nil {
		return err
	}
	if u.Identity == nil {
		return errKeysRequired
	}
	if err := n.Verify(c.user(), dev, *u.Identity); err != nil {
		return problem(http.StatusBadRequest, CodeBadSignature, err.Error(), err)
	}
	err = s.store.SetDeviceName(r.Context(), c.user(), dev, n.Name, n.Seq, req.Record)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problem(http.StatusNotFound, CodeNotFound, "no such device of this account", err)
	case errors.Is(err, store.ErrConflict):
		return problem(http.StatusConflict, CodeConflict, "the device has a newer name record: fetch it and sign the next", err)
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

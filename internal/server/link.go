package server

import (
	"errors"
	"net/http"
	"time"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// Device linking (protocol.md §11). The server relays a new device's
// temporary public key to the account's other devices and the sealed
// identity seed back; it can open neither.

// LinkLifetime is how long a link request may be approved after the new
// device made it (protocol.md §11): 10 minutes.
const LinkLifetime = 10 * time.Minute

// CodeLinkExpired is the stable problem code (410) of a link request past
// its lifetime (docs/api.md).
const CodeLinkExpired = "link_expired"

// sealedIdentitySize is enc (1120) || sealed 32-byte seed with its tag.
const sealedIdentitySize = protocol.KEMEncSize + 32 + 16

// sealedOfferSize is a sealed seed followed by an 89-byte history
// transfer offer (protocol.md §11, §14.5).
const sealedOfferSize = sealedIdentitySize + 89

// linkTagSize is the size of a link request's tag, an HMAC-SHA256 output.
const linkTagSize = 32

type linkStart struct {
	PublicKey B64 `json:"publicKey"`
	Tag       B64 `json:"tag"`
}

// startLink: POST /api/devices/link, by a new device without keys. A new
// request replaces the device's earlier one.
func (s *Server) startLink(w http.ResponseWriter, r *http.Request, c *call) error {
	var req linkStart
	if err := decode(r, &req, 8<<10); err != nil {
		return err
	}
	if _, err := protocol.ParseKEMPublicKey(req.PublicKey); err != nil {
		return badRequest("publicKey: "+err.Error(), err)
	}
	if len(req.Tag) != linkTagSize {
		return badRequest("tag is the 32-byte link request tag of protocol.md §11", nil)
	}
	now := s.now()
	lr := store.LinkRequest{Device: c.device.ID, User: c.user(), PublicKey: req.PublicKey, Tag: req.Tag, CreatedAt: now, ExpiresAt: now + LinkLifetime.Milliseconds()}
	err := s.store.PutLinkRequest(r.Context(), lr)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusConflict, CodeConflict, "this device already has keys", err)
	}
	if err != nil {
		return err
	}
	s.hub.Notify(c.user())
	s.writeJSON(w, http.StatusCreated, map[string]any{"createdAt": lr.CreatedAt, "expiresAt": lr.ExpiresAt})
	return nil
}

type linkInfo struct {
	Device    protocol.DeviceID `json:"device"`
	Name      string            `json:"name"`
	PublicKey B64               `json:"publicKey"`
	Tag       B64               `json:"tag"`
	CreatedAt int64             `json:"createdAt"`
	ExpiresAt int64             `json:"expiresAt"`
}

// listLinks: GET /api/devices/link, the account's pending requests, for a
// device that holds the account's keys: only such a device can approve
// one, and a device that only knows the password learns nothing from them.
func (s *Server) listLinks(w http.ResponseWriter, r *http.Request, c *call) error {
	if c.device.SignedPreKey == nil {
		return problem(http.StatusForbidden, CodeForbidden, "only a device with the account's keys can list link requests", nil)
	}
	reqs, err := s.store.LinkRequests(r.Context(), c.user(), s.now())
	if err != nil {
		return err
	}
	out := make([]linkInfo, 0, len(reqs))
	for _, lr := range reqs {
		if lr.Device == c.device.ID || lr.Tag == nil {
			continue
		}
		out = append(out, linkInfo{Device: lr.Device, Name: lr.Name, PublicKey: lr.PublicKey, Tag: lr.Tag, CreatedAt: lr.CreatedAt, ExpiresAt: lr.ExpiresAt})
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"requests": out})
	return nil
}

type linkApproval struct {
	Sealed B64 `json:"sealed"`
}

// approveLink: POST /api/devices/link/{device}, by a device of the same
// account that holds the identity key, while the request has not expired.
func (s *Server) approveLink(w http.ResponseWriter, r *http.Request, c *call) error {
	dev, err := protocol.ParseDeviceID(r.PathValue("device"))
	if err != nil {
		return problem(http.StatusNotFound, CodeNotFound, "no such link request", err)
	}
	var req linkApproval
	if err := decode(r, &req, 8<<10); err != nil {
		return err
	}
	if len(req.Sealed) != sealedIdentitySize && len(req.Sealed) != sealedOfferSize {
		return badRequest("sealed is the sealed identity seed of protocol.md §11", nil)
	}
	if c.device.SignedPreKey == nil {
		return problem(http.StatusForbidden, CodeForbidden, "only a device with the account's keys can confirm another", nil)
	}
	if err := s.store.ApproveLink(r.Context(), c.user(), dev, req.Sealed, s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return problem(http.StatusNotFound, CodeNotFound, "no such link request", err)
		}
		if errors.Is(err, store.ErrLinkExpired) {
			return problem(http.StatusGone, CodeLinkExpired, "the link request has expired; start linking again on the new device", err)
		}
		return err
	}
	s.hub.Notify(c.user())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// linkResult: GET /api/devices/link/self, the new device polls for the
// sealed identity ({} while pending; 410 once expired unapproved).
func (s *Server) linkResult(w http.ResponseWriter, r *http.Request, c *call) error {
	lr, err := s.store.LinkRequest(r.Context(), c.device.ID)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, CodeNotFound, "this device has no link request", err)
	}
	if err != nil {
		return err
	}
	if lr.Sealed == nil && lr.ExpiresAt <= s.now() {
		return problem(http.StatusGone, CodeLinkExpired, "the link request has expired; start linking again", nil)
	}
	out := map[string]any{"expiresAt": lr.ExpiresAt}
	if lr.Sealed != nil {
		out["sealed"] = B64(lr.Sealed)
	}
	s.writeJSON(w, http.StatusOK, out)
	return nil
}

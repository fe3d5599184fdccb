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

// linkTTL is how long a link request stays visible to the other devices.
const linkTTL = time.Hour

// sealedIdentitySize is enc (1120) || sealed 32-byte seed with its tag.
const sealedIdentitySize = protocol.KEMEncSize + 32 + 16

type linkStart struct {
	PublicKey B64 `json:"publicKey"`
}

// startLink: POST /api/devices/link, by a new device without keys.
func (s *Server) startLink(w http.ResponseWriter, r *http.Request, c *call) error {
	var req linkStart
	if err := decode(r, &req, 8<<10); err != nil {
		return err
	}
	if _, err := protocol.ParseKEMPublicKey(req.PublicKey); err != nil {
		return badRequest("publicKey: "+err.Error(), err)
	}
	err := s.store.PutLinkRequest(r.Context(), store.LinkRequest{Device: c.device.ID, User: c.user(), PublicKey: req.PublicKey, CreatedAt: s.now()})
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusConflict, CodeConflict, "this device already has keys", err)
	}
	if err != nil {
		return err
	}
	s.hub.Notify(c.user())
	w.WriteHeader(http.StatusCreated)
	return nil
}

type linkInfo struct {
	Device    protocol.DeviceID `json:"device"`
	Name      string            `json:"name"`
	PublicKey B64               `json:"publicKey"`
	CreatedAt int64             `json:"createdAt"`
}

// listLinks: GET /api/devices/link, the account's pending requests.
func (s *Server) listLinks(w http.ResponseWriter, r *http.Request, c *call) error {
	reqs, err := s.store.LinkRequests(r.Context(), c.user(), s.now()-linkTTL.Milliseconds())
	if err != nil {
		return err
	}
	out := make([]linkInfo, 0, len(reqs))
	for _, lr := range reqs {
		if lr.Device == c.device.ID {
			continue
		}
		out = append(out, linkInfo{Device: lr.Device, Name: lr.Name, PublicKey: lr.PublicKey, CreatedAt: lr.CreatedAt})
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"requests": out})
	return nil
}

type linkApproval struct {
	Sealed B64 `json:"sealed"`
}

// approveLink: POST /api/devices/link/{device}, by a device of the same
// account that holds the identity key.
func (s *Server) approveLink(w http.ResponseWriter, r *http.Request, c *call) error {
	dev, err := protocol.ParseDeviceID(r.PathValue("device"))
	if err != nil {
		return problem(http.StatusNotFound, CodeNotFound, "no such link request", err)
	}
	var req linkApproval
	if err := decode(r, &req, 8<<10); err != nil {
		return err
	}
	if len(req.Sealed) != sealedIdentitySize {
		return badRequest("sealed is the sealed identity seed of protocol.md §11", nil)
	}
	if c.device.SignedPreKey == nil {
		return problem(http.StatusForbidden, CodeForbidden, "only a device with the account's keys can confirm another", nil)
	}
	if err := s.store.ApproveLink(r.Context(), c.user(), dev, req.Sealed); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return problem(http.StatusNotFound, CodeNotFound, "no such link request", err)
		}
		return err
	}
	s.hub.Notify(c.user())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// linkResult: GET /api/devices/link/self, the new device polls for the
// sealed identity ({} while pending).
func (s *Server) linkResult(w http.ResponseWriter, r *http.Request, c *call) error {
	lr, err := s.store.LinkRequest(r.Context(), c.device.ID)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, CodeNotFound, "this device has no link request", err)
	}
	if err != nil {
		return err
	}
	out := map[string]any{}
	if lr.Sealed != nil {
		out["sealed"] = B64(lr.Sealed)
	}
	s.writeJSON(w, http.StatusOK, out)
	return nil
}

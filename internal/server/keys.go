package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// B64 is binary data carried in JSON as unpadded base64url.
type B64 []byte

// MarshalJSON implements json.Marshaler.
func (b B64) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

// UnmarshalJSON implements json.Unmarshaler; padding and the standard
// alphabet are refused.
func (b *B64) UnmarshalJSON(p []byte) error {
	var s string
	if err := json.Unmarshal(p, &s); err != nil {
		return err
	}
	v, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return fmt.Errorf("not unpadded base64url: %w", err)
	}
	*b = v
	return nil
}

type bundleRequest struct {
	Bundle B64  `json:"bundle"`
	Reset  bool `json:"reset"`
}

func (s *Server) putBundle(w http.ResponseWriter, r *http.Request, c *call) error {
	var req bundleRequest
	if err := decode(r, &req, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	b, err := protocol.ParseBundle(req.Bundle)
	if err != nil {
		return badRequest("bundle: "+err.Error(), err)
	}
	if b.User != c.user() || b.Device != c.device.ID {
		return problem(http.StatusForbidden, CodeForbidden, "a device uploads only its own bundle", nil)
	}
	if err := s.keyLimits.upload.allow("dev:" + c.device.ID.String()); err != nil {
		return err
	}
	if err := b.Verify(); err != nil {
		return problem(http.StatusBadRequest, CodeBadSignature, err.Error(), err)
	}
	up := store.BundleUpload{
		User: b.User, Device: b.Device, Identity: b.Identity,
		SignedPreKey: b.Signed.Marshal(), LastResort: b.LastResort.Marshal(),
		Reset: req.Reset, MaxOneTime: max(s.cfg.MaxOneTimeKeys, 0), Now: s.now(),
	}
	for i := range b.OneTime {
		up.OneTime = append(up.OneTime, store.PreKeyRow{ID: b.OneTime[i].ID, Encoded: b.OneTime[i].Marshal()})
	}
	if err := s.store.PutBundle(r.Context(), up); err != nil {
		if errors.Is(err, store.ErrIdentityMismatch) {
			return problem(http.StatusConflict, CodeIdentityMismatch, "the bundle's identity key differs from the account's; link this device or reset the identity", err)
		}
		if errors.Is(err, store.ErrTooManyKeys) {
			return tooManyPreKeys(s.cfg.MaxOneTimeKeys, err)
		}
		return err
	}
	s.forgetEverywhere() // the device's keys changed: other nodes' remembered device is stale
	if req.Reset {
		// The reset revoked the account's other devices: end their live
		// connections now.
		s.revokeLiveOthers(c.user(), c.device.ID)
	}
	// A device's first bundle and a reset change the account's devices or
	// identity: the account's devices and its contacts' got events. Any
	// other bundle (a signed pre-key rotation) made no event.
	if c.device.SignedPreKey == nil || req.Reset {
		s.notifyContacts(r.Context(), c.user())
	}
	n, err := s.store.CountOneTimeKeys(r.Context(), c.device.ID)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"identityKey": b.Identity, "oneTimeCount": n})
	return nil
}

type oneTimeRequest struct {
	PreKeys []B64 `json:"preKeys"`
}

func (s *Server) addOneTime(w http.ResponseWriter, r *http.Request, c *call) error {
	var req oneTimeRequest
	if err := decode(r, &req, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	if len(req.PreKeys) == 0 || len(req.PreKeys) > protocol.MaxOneTimePerUpload {
		return badRequest(fmt.Sprintf("upload 1 to %d one-time pre-keys at a time", protocol.MaxOneTimePerUpload), nil)
	}
	if err := s.keyLimits.upload.allow("dev:" + c.device.ID.String()); err != nil {
		return err
	}
	u, err := s.store.User(r.Context(), c.user())
	if err != nil {
		return err
	}
	if u.Identity == nil {
		return problem(http.StatusConflict, CodeConflict, "upload a pre-key bundle first", nil)
	}
	rows := make([]store.PreKeyRow, 0, len(req.PreKeys))
	seen := map[uint32]bool{}
	for _, enc := range req.PreKeys {
		k, err := protocol.ParsePreKey(enc)
		if err != nil {
			return badRequest(err.Error(), err)
		}
		if k.Kind != protocol.OneTimePreKey || seen[k.ID] {
			return badRequest("only one-time pre-keys with distinct ids", nil)
		}
		seen[k.ID] = true
		if err := k.Verify(*u.Identity, c.user(), c.device.ID); err != nil {
			return problem(http.StatusBadRequest, CodeBadSignature, err.Error(), err)
		}
		rows = append(rows, store.PreKeyRow{ID: k.ID, Encoded: enc})
	}
	n, err := s.store.AddOneTimeKeys(r.Context(), c.device.ID, rows, max(s.cfg.MaxOneTimeKeys, 0))
	if errors.Is(err, store.ErrConflict) {
		return problem(http.StatusConflict, CodeConflict, "a pre-key id is already in use", err)
	}
	if errors.Is(err, store.ErrTooManyKeys) {
		return tooManyPreKeys(s.cfg.MaxOneTimeKeys, err)
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, map[string]int{"count": n})
	return nil
}

func (s *Server) countOneTime(w http.ResponseWriter, r *http.Request, c *call) error {
	n, err := s.store.CountOneTimeKeys(r.Context(), c.device.ID)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, map[string]int{"count": n})
	return nil
}

type claimRequest struct {
	Users []protocol.UserID `json:"users"`
}

type claimedBundle struct {
	User   protocol.UserID   `json:"user"`
	Device protocol.DeviceID `json:"device"`
	Bundle B64               `json:"bundle"`
	// OneTime reports whether the bundle carries a one-time pre-key; when
	// false the device's one-time keys ran out, or the claimer's budget
	// for the user was spent (claims.go), and the sealer uses its signed
	// (or last-resort) pre-key.
	OneTime bool `json:"oneTime"`
}

// claim serves bundles to seal to. The limits are in claims.go: the caller
// pays for its claims; one-time keys of others are handed out within
// budgets, and past them the bundle comes with its signed pre-key only.
func (s *Server) claim(w http.ResponseWriter, r *http.Request, c *call) error {
	var req claimRequest
	if err := decode(r, &req, 1<<20); err != nil {
		return err
	}
	if len(req.Users) == 0 || len(req.Users) > maxClaimUsers {
		return tooManyUsers(len(req.Users))
	}
	if err := s.chargeClaimCaller(c); err != nil {
		return err
	}
	// Every check comes before any key is taken, and the keys of all the
	// devices are taken in one store transaction: a refused claim (unknown
	// user, a device changed) takes no key of the users it named, and
	// charges no target's budget.
	var users []protocol.UserID
	seen := map[protocol.UserID]bool{}
	for _, uid := range req.Users {
		if !seen[uid] {
			seen[uid] = true
			users = append(users, uid)
		}
	}
	type target struct {
		user     protocol.UserID
		identity protocol.IdentityKey
		devices  []protocol.DeviceID
		charged  bool // the one-time key budgets were charged for it
	}
	var targets []*target
	var devices []protocol.DeviceID
	lists := []deviceListAnswer{}
	for _, uid := range users {
		u, err := s.store.User(r.Context(), uid)
		if errors.Is(err, store.ErrNotFound) {
			return problem(http.StatusNotFound, CodeNotFound, "no user "+uid.String(), err)
		}
		if err != nil {
			return err
		}
		if u.Identity == nil {
			continue // no device has uploaded keys yet
		}
		devs, err := s.store.Devices(r.Context(), uid)
		if err != nil {
			return err
		}
		tg := &target{user: uid, identity: *u.Identity}
		for _, d := range devs {
			if d.SignedPreKey != nil && !d.Unlisted {
				tg.devices = append(tg.devices, d.ID)
			}
		}
		if len(tg.devices) > 0 {
			targets = append(targets, tg)
			devices = append(devices, tg.devices...)
		}
		// The signed list that says which devices are the account's, so
		// the claimer can check the bundles against it (§12).
		enc, err := s.deviceListOf(r, uid)
		if err != nil {
			return err
		}
		if enc != nil {
			lists = append(lists, deviceListAnswer{User: uid, List: enc})
		}
	}
	out := []claimedBundle{}
	if len(devices) == 0 {
		s.writeJSON(w, http.StatusOK, map[string]any{"bundles": out, "deviceLists": lists})
		return nil
	}
	// The budgets, once per real target: the account's own devices are
	// not limited (each epoch it makes claims them).
	budgets := s.keyLimits.budgets
	var signedOnly map[protocol.DeviceID]bool
	for _, tg := range targets {
		if tg.user == c.user() {
			continue
		}
		if budgets.take(c.user(), tg.user) {
			tg.charged = true
			continue
		}
		if signedOnly == nil {
			signedOnly = map[protocol.DeviceID]bool{}
		}
		for _, d := range tg.devices {
			signedOnly[d] = true
		}
	}
	refund := func(tg *target) {
		if tg.charged {
			budgets.refund(c.user(), tg.user)
			tg.charged = false
		}
	}
	claimed, err := s.store.ClaimBundles(r.Context(), devices, signedOnly, s.cfg.LowPreKeys, s.now())
	if err != nil {
		for _, tg := range targets {
			refund(tg)
		}
		if errors.Is(err, store.ErrNotFound) {
			return problem(http.StatusConflict, CodeConflict, "a device of a named user changed during the claim; claim again", err)
		}
		return err
	}
	if len(claimed) != len(devices) {
		return fmt.Errorf("claim of %d devices returned %d", len(devices), len(claimed))
	}
	for _, tg := range targets {
		took := false
		for _, cl := range claimed[:len(tg.devices)] {
			b, err := assembleBundle(tg.user, tg.identity, cl)
			if err != nil {
				return err
			}
			out = append(out, claimedBundle{User: tg.user, Device: cl.Device, Bundle: b.Marshal(), OneTime: len(b.OneTime) > 0})
			took = took || cl.OneTime != nil
			if cl.Remaining < s.cfg.LowPreKeys {
				s.metrics.lowPreKeys.Inc()
				s.hub.Notify(tg.user)
			}
		}
		if !took {
			refund(tg) // its devices had no key left: nothing was spent
		}
		claimed = claimed[len(tg.devices):]
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"bundles": out, "deviceLists": lists})
	return nil
}

// assembleBundle rebuilds a protocol bundle from stored, already verified
// pre-keys. A stored key that no longer parses is an internal error.
func assembleBundle(user protocol.UserID, id protocol.IdentityKey, cl store.Claimed) (*protocol.Bundle, error) {
	b := &protocol.Bundle{User: user, Device: cl.Device, Identity: id}
	sp, err := protocol.ParsePreKey(cl.SignedPreKey)
	if err != nil {
		return nil, fmt.Errorf("stored signed pre-key: %w", err)
	}
	lr, err := protocol.ParsePreKey(cl.LastResort)
	if err != nil {
		return nil, fmt.Errorf("stored last-resort key: %w", err)
	}
	b.Signed, b.LastResort = *sp, *lr
	if cl.OneTime != nil {
		ot, err := protocol.ParsePreKey(cl.OneTime.Encoded)
		if err != nil {
			return nil, fmt.Errorf("stored one-time key: %w", err)
		}
		b.OneTime = []protocol.PreKey{*ot}
	}
	return b, nil
}

type deviceInfo struct {
	ID           protocol.DeviceID `json:"id"`
	Name         string            `json:"name"`
	CreatedAt    int64             `json:"createdAt"`
	SignedPreKey B64               `json:"signedPreKey,omitempty"`
	LastResort   B64               `json:"lastResort,omitempty"`
	// NameRecord is the device's signed name (§12.5), served to the
	// account's own devices only.
	NameRecord B64 `json:"nameRecord,omitempty"`
}

type userInfo struct {
	ID          protocol.UserID       `json:"id"`
	Username    string                `json:"username"`
	IdentityKey *protocol.IdentityKey `json:"identityKey,omitempty"`
	Devices     []deviceInfo          `json:"devices"`
	// DeviceList is the account's latest signed device list (§12), if it
	// has one; Devices are then only the devices it names.
	DeviceList B64 `json:"deviceList,omitempty"`
}

func (s *Server) userInfo(r *http.Request, u store.User) (userInfo, error) {
	devs, err := s.store.Devices(r.Context(), u.ID)
	if err != nil {
		return userInfo{}, err
	}
	info := userInfo{ID: u.ID, Username: u.Username, IdentityKey: u.Identity, Devices: []deviceInfo{}}
	if info.DeviceList, err = s.deviceListOf(r, u.ID); err != nil {
		return userInfo{}, err
	}
	for _, d := range devs {
		if d.SignedPreKey == nil || d.Unlisted {
			continue // not usable until it has uploaded keys, or not the account's
		}
		info.Devices = append(info.Devices, deviceInfo{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt, SignedPreKey: d.SignedPreKey, LastResort: d.LastResort})
	}
	return info, nil
}

// getUser returns a user's public key and devices. Public keys are public:
// any signed-in device may look any user up, as it must to start a
// conversation.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := protocol.ParseUserID(r.PathValue("user"))
	if err != nil {
		return problem(http.StatusNotFound, CodeNotFound, "no such user", err)
	}
	u, err := s.store.User(r.Context(), id)
	if err != nil || id != c.user() {
		return s.writeUser(w, r, u, err)
	}
	// The account's own devices also get the signed names of its devices.
	info, err := s.userInfo(r, u)
	if err != nil {
		return err
	}
	names, err := s.store.DeviceNames(r.Context(), id)
	if err != nil {
		return err
	}
	for i := range info.Devices {
		info.Devices[i].NameRecord = names[info.Devices[i].ID]
	}
	s.writeJSON(w, http.StatusOK, info)
	return nil
}

// findUser looks a user up by exact username: GET /api/users?username=NAME.
func (s *Server) findUser(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := canonicalUsername(r.URL.Query().Get("username"))
	if err != nil {
		return err
	}
	u, err := s.store.UserByName(r.Context(), name)
	return s.writeUser(w, r, u, err)
}

// writeUser answers with the user a lookup found (or its error).
func (s *Server) writeUser(w http.ResponseWriter, r *http.Request, u store.User, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, CodeNotFound, "no such user", err)
	}
	if err != nil {
		return err
	}
	info, err := s.userInfo(r, u)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, info)
	return nil
}

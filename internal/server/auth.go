package server

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

const (
	// A password has minPassword to maxPassword characters (Unicode code
	// points, not bytes: "éééé" is 4 characters in 8 bytes).
	minPassword = 8
	maxPassword = 1024
	maxUsername = 32
)

// passwordLength reports whether a password has an allowed number of
// characters.
func passwordLength(pw string) bool {
	n := utf8.RuneCountInString(pw)
	return n >= minPassword && n <= maxPassword
}

// canonicalUsername lower-cases a username and checks its form: 3 to 32
// characters, letters, digits, '.', '_' or '-', starting with a letter.
func canonicalUsername(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if len(n) < 3 || len(n) > maxUsername {
		return "", badRequest("a username has 3 to 32 characters", nil)
	}
	for i, r := range n {
		ok := r < unicode.MaxASCII && (unicode.IsLetter(r) || (i > 0 && (unicode.IsDigit(r) || r == '.' || r == '_' || r == '-')))
		if !ok {
			return "", badRequest("a username starts with a letter and has only letters, digits, '.', '_' and '-'", nil)
		}
	}
	return n, nil
}

// hashPassword returns an argon2id PHC string.
func (s *Server) hashPassword(pw string) string {
	var salt [16]byte
	protocol.Random(salt[:])
	c := s.cfg
	key := argon2.IDKey([]byte(pw), salt[:], c.Argon2Time, c.Argon2MemKiB, c.Argon2Threads, 32)
	collectAfter(uint64(c.Argon2MemKiB) << 10)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, c.Argon2MemKiB, c.Argon2Time, c.Argon2Threads,
		base64.RawStdEncoding.EncodeToString(salt[:]), base64.RawStdEncoding.EncodeToString(key))
}

// checkPassword compares pw with a PHC string in constant time.
func checkPassword(phc, pw string) bool {
	var v int
	var m, t uint32
	var p uint8
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	collectAfter(uint64(m) << 10)
	return subtle.ConstantTimeCompare(got, want) == 1
}

// newToken returns a random bearer token and its stored hash.
func newToken() (string, []byte) {
	tok := "sandi_" + rand.Text() + rand.Text()
	return tok, hashToken(tok)
}

type credentials struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	DeviceName string `json:"deviceName"`
}

type session struct {
	UserID      protocol.UserID       `json:"userId"`
	DeviceID    protocol.DeviceID     `json:"deviceId"`
	Username    string                `json:"username"`
	Token       string                `json:"token,omitempty"`
	IdentityKey *protocol.IdentityKey `json:"identityKey,omitempty"`
	Cursor      int64                 `json:"cursor"`
}

func (s *Server) readCredentials(r *http.Request) (credentials, string, error) {
	var cr credentials
	if err := decode(r, &cr, 8<<10); err != nil {
		return cr, "", err
	}
	name, err := canonicalUsername(cr.Username)
	if err != nil {
		return cr, "", err
	}
	if !passwordLength(cr.Password) {
		return cr, "", badRequest(fmt.Sprintf("a password has %d to %d characters", minPassword, maxPassword), nil)
	}
	if len(cr.DeviceName) > 64 {
		return cr, "", badRequest("a device name has at most 64 characters", nil)
	}
	if cr.DeviceName == "" {
		cr.DeviceName = "device"
	}
	return cr, name, nil
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, _ *call) error {
	if err := s.limits.register.allow(s.clientKey(r)); err != nil {
		return err
	}
	cr, name, err := s.readCredentials(r)
	if err != nil {
		return err
	}
	var phc string
	if err := s.hashes.run(r.Context(), func() { phc = s.hashPassword(cr.Password) }); err != nil {
		return err
	}
	now := s.now()
	u := store.User{ID: protocol.NewUserID(), Username: name, PasswordHash: phc, CreatedAt: now}
	d := store.Device{ID: protocol.NewDeviceID(), User: u.ID, Name: cr.DeviceName, CreatedAt: now}
	tok, h := newToken()
	cursor, err := s.store.LastEventID(r.Context())
	if err != nil {
		return err
	}
	if err := s.store.CreateUser(r.Context(), u, d, h); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return problem(http.StatusConflict, CodeUsernameTaken, "that username is taken", err)
		}
		return err
	}
	s.writeJSON(w, http.StatusCreated, session{UserID: u.ID, DeviceID: d.ID, Username: name, Token: tok, Cursor: cursor})
	return nil
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ *call) error {
	addr := s.clientKey(r)
	if err := s.limits.login.allow(addr); err != nil {
		return err
	}
	cr, name, err := s.readCredentials(r)
	if err != nil {
		return err
	}
	// Limited per address and per address and username, never per
	// username alone: failures from other addresses slow a login for
	// this username down (loginFailures) but never refuse it.
	if err := s.limits.loginUser.allow(loginKey(addr, name)); err != nil {
		return err
	}
	if d := s.limits.loginFails.delay(name); d > 0 {
		s.lm.loginDelayed.Inc()
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the client has gone: nobody reads the answer
			t.Stop()
			return problem(http.StatusServiceUnavailable, CodeOverloaded, "the server is busy; try again shortly", r.Context().Err())
		}
	}
	u, err := s.store.UserByName(r.Context(), name)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// Exactly one hash whether or not the username exists: an unknown one
	// is checked against the dummy hash of the same cost, so neither the
	// time nor the load of a login tells whether the account exists.
	phc := s.dummyHash
	if known {
		phc = u.PasswordHash
	}
	var ok bool
	if err := s.hashes.run(r.Context(), func() { ok = checkPassword(phc, cr.Password) }); err != nil {
		return err
	}
	if !ok || !known {
		if n := s.limits.loginFails.failed(name); n == s.cfg.LoginDelayAfter {
			s.log.Warn("login: repeated failures for one username; its logins are delayed from now on",
				"username", name, "failures", n, "window", loginFailWindow)
		}
		return problem(http.StatusUnauthorized, CodeBadCredentials, "unknown username or wrong password", nil)
	}
	s.limits.loginFails.succeeded(name)
	d := store.Device{ID: protocol.NewDeviceID(), User: u.ID, Name: cr.DeviceName, CreatedAt: s.now()}
	tok, h := newToken()
	cursor, err := s.store.LastEventID(r.Context())
	if err != nil {
		return err
	}
	// The revoked devices that nothing names any more go first, so that
	// signing in and out again and again leaves one row behind, not one
	// per turn. A failure (a row named meanwhile) only leaves them for the
	// next login.
	if n, err := s.store.PurgeDevices(r.Context(), u.ID); err != nil {
		s.log.Warn("login: revoked devices not purged", "user", u.ID, "err", err)
	} else if n > 0 {
		s.log.Debug("login: revoked devices purged", "user", u.ID, "devices", n)
	}
	limit := max(s.cfg.MaxDevices, 0)
	switch err := s.store.AddDevice(r.Context(), d, h, limit); {
	case errors.Is(err, store.ErrTooManyDevices):
		return problem(http.StatusConflict, CodeTooManyDevices, fmt.Sprintf("this account already has %d devices signed in, the most this server allows; nothing was changed. Remove a device you no longer use (sandi devices remove ID or sandi sessions remove ID, or Devices in the web client), then sign in again", limit), err)
	case err != nil:
		return err
	}
	s.hub.Notify(u.ID) // the account's devices are told of the login (session_added)
	s.writeJSON(w, http.StatusOK, session{UserID: u.ID, DeviceID: d.ID, Username: u.Username, Token: tok, IdentityKey: u.Identity, Cursor: cursor})
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, c *call) error {
	u, err := s.store.User(r.Context(), c.user())
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, session{UserID: u.ID, DeviceID: c.device.ID, Username: u.Username, IdentityKey: u.Identity})
	return nil
}

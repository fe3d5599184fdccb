package server_test

import (
	"testing"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

type linkList struct {
	Requests []struct {
		Device    protocol.DeviceID `json:"device"`
		PublicKey string            `json:"publicKey"`
		Tag       string            `json:"tag"`
		CreatedAt int64             `json:"createdAt"`
		ExpiresAt int64             `json:"expiresAt"`
	} `json:"requests"`
}

// startLinkOf posts a link request for d (a device without keys) and
// returns its link key and temporary key.
func startLinkOf(t *testing.T, d *device) (secret.LinkKey, *secret.KEMPrivateKey) {
	t.Helper()
	k, tmp := secret.NewLinkKey(), secret.NewKEMKey()
	d.must("POST", "/api/devices/link", map[string]string{"publicKey": b64(tmp.Public().Bytes()), "tag": b64(k.Tag(d.user, d.dev, tmp.Public()))}, nil)
	return k, tmp
}

// TestLinkRequests: a new device's request is listed to the account's
// devices that hold keys, with its tag, for server.LinkLifetime; a device
// that only knows the password cannot list requests; an approval after
// the lifetime is refused, and the new device is told so.
func TestLinkRequests(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice := e.register("alice")
		e.register("bob")
		newDev := e.login("alice", nil)
		snoop := e.login("alice", nil) // a session of the account with the password only

		// The request must carry a 32-byte tag.
		tmp := secret.NewKEMKey()
		for _, tag := range []string{"", b64(make([]byte, 31)), b64(make([]byte, 33))} {
			wantCode(t, newDev.do("POST", "/api/devices/link", map[string]string{"publicKey": b64(tmp.Public().Bytes()), "tag": tag}, nil), 400, server.CodeBadRequest)
		}
		k, tmp := startLinkOf(t, newDev)

		// Only a device with keys lists requests.
		wantCode(t, snoop.do("GET", "/api/devices/link", nil, nil), 403, server.CodeKeysRequired)
		wantCode(t, newDev.do("GET", "/api/devices/link", nil, nil), 403, server.CodeKeysRequired)
		var list linkList
		alice.must("GET", "/api/devices/link", nil, &list)
		if len(list.Requests) != 1 || list.Requests[0].Device != newDev.dev || list.Requests[0].ExpiresAt != list.Requests[0].CreatedAt+server.LinkLifetime.Milliseconds() {
			t.Fatalf("alice lists %+v", list.Requests)
		}
		r := list.Requests[0]
		pub, err := protocol.ParseKEMPublicKey(unb64(t, r.PublicKey))
		if err != nil || !k.Verifies(alice.user, r.Device, pub, unb64(t, r.Tag)) || pub != tmp.Public() {
			t.Fatalf("the listed request does not carry the new device's key and tag: %v", err)
		}

		// Just before the lifetime ends it is listed; at its end it is not,
		// and an approval is refused with link_expired.
		start := e.clock.now
		e.clock.now = start.Add(server.LinkLifetime).Add(-1e6)
		alice.must("GET", "/api/devices/link", nil, &list)
		if len(list.Requests) != 1 {
			t.Fatalf("a request is gone before its lifetime ends: %+v", list.Requests)
		}
		e.clock.now = start.Add(server.LinkLifetime)
		alice.must("GET", "/api/devices/link", nil, &list)
		if len(list.Requests) != 0 {
			t.Fatalf("an expired request is listed: %+v", list.Requests)
		}
		sealed, err := secret.SealIdentity(alice.id, tmp.Public(), alice.user, newDev.dev, k)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, alice.do("POST", "/api/devices/link/"+newDev.dev.String(), map[string]string{"sealed": b64(sealed)}, nil), 410, server.CodeLinkExpired)
		wantCode(t, newDev.do("GET", "/api/devices/link/self", nil, nil), 410, server.CodeLinkExpired)

		// A new request lives again; approved in time, the sealed identity
		// is handed to the new device even after the lifetime.
		k, tmp = startLinkOf(t, newDev)
		if sealed, err = secret.SealIdentity(alice.id, tmp.Public(), alice.user, newDev.dev, k); err != nil {
			t.Fatal(err)
		}
		alice.must("POST", "/api/devices/link/"+newDev.dev.String(), map[string]string{"sealed": b64(sealed)}, nil)
		e.clock.now = e.clock.now.Add(2 * server.LinkLifetime)
		var res struct {
			Sealed string `json:"sealed"`
		}
		newDev.must("GET", "/api/devices/link/self", nil, &res)
		if id, err := secret.OpenIdentity(tmp, unb64(t, res.Sealed), alice.user, newDev.dev, k); err != nil || !id.Equal(alice.id) {
			t.Fatalf("the new device's sealed identity: %v", err)
		}
	})
}

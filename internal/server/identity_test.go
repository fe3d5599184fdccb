package server_test

import (
	"testing"

	"sandi.dev/internal/server"
	"sandi.dev/protocol/secret"
)

// The server caches each device's identity key for verifying envelopes. A
// reset on the same device must take effect at once: a message signed with
// the old key is refused, one signed with the new key is taken.
func TestIdentityCacheAfterReset(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob := e.register("alice"), e.register("bob")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.send(conv, 1, "with the first key"); err != nil {
			t.Fatal(err)
		}
		ep, err := alice.epoch(conv, 1)
		if err != nil {
			t.Fatal(err)
		}
		old := alice.id
		stale, err := ep.Encrypt(old, []byte("signed with the old key"))
		if err != nil {
			t.Fatal(err)
		}
		alice.id = secret.NewIdentity()
		if err := alice.uploadBundle(true); err != nil {
			t.Fatal(err)
		}
		path := "/api/conversations/" + conv.String() + "/messages"
		wantCode(t, alice.do("POST", path, map[string]string{"clientId": "stale-0001", "envelope": b64(stale.Marshal())}, nil), 400, server.CodeBadSignature)
		fresh, err := ep.Encrypt(alice.id, []byte("signed with the new key"))
		if err != nil {
			t.Fatal(err)
		}
		// The signature now verifies; the epoch is stale after the reset.
		wantCode(t, alice.do("POST", path, map[string]string{"clientId": "fresh-0001", "envelope": b64(fresh.Marshal())}, nil), 409, server.CodeRotationRequired)
	})
}

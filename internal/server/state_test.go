package server_test

import (
	"testing"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// TestPutState: the server stores a member's state record for the
// current epoch and refuses what it can tell is wrong: another device's
// signature, a forged one, another epoch, an older version. A refused
// state leaves the stored one as it was.
func TestPutState(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob, eve := e.register("alice"), e.register("bob"), e.register("eve")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		var k secret.StateKey // the server cannot tell a key: any will do
		state := func(d *device, signer *secret.IdentityPrivateKey, epoch, version uint64, title string) map[string]string {
			rec, err := secret.SealState(signer, &k, protocol.StateHeader{Conversation: conv, Epoch: epoch, StateVersion: version, Signer: d.ref()},
				protocol.StateContent{Title: title})
			if err != nil {
				t.Fatal(err)
			}
			return map[string]string{"state": b64(rec.Marshal())}
		}
		path := "/api/conversations/" + conv.String() + "/state"
		stored := func() string {
			var ci struct {
				State string `json:"state"`
			}
			bob.must("GET", "/api/conversations/"+conv.String(), nil, &ci)
			return ci.State
		}
		bob.must("PUT", path, state(bob, bob.id, 1, 1, "lunch"), nil)
		first := stored()
		if first == "" {
			t.Fatal("the state was not stored")
		}
		wantCode(t, alice.do("PUT", path, state(bob, bob.id, 1, 2, "bob's name"), nil), 403, server.CodeForbidden)
		wantCode(t, alice.do("PUT", path, state(alice, eve.id, 1, 2, "forged"), nil), 400, server.CodeBadSignature)
		wantCode(t, alice.do("PUT", path, state(alice, alice.id, 2, 2, "next epoch"), nil), 400, server.CodeBadRequest)
		wantCode(t, alice.do("PUT", path, state(alice, alice.id, 1, 1, "same version"), nil), 409, server.CodeStaleState)
		wantCode(t, alice.do("PUT", path, map[string]string{"state": b64([]byte{1, 2, 3})}, nil), 400, server.CodeBadRequest)
		wantCode(t, eve.do("PUT", path, state(eve, eve.id, 1, 2, "outsider"), nil), 404, server.CodeNotFound)
		if got := stored(); got != first {
			t.Fatal("a refused state replaced the stored one")
		}
		alice.must("PUT", path, state(alice, alice.id, 1, 2, "dinner"), nil)
		if stored() == first {
			t.Fatal("a newer version was not stored")
		}
	})
}

package server_test

// The server checks membership records with package protocol, so it
// refuses what a client refuses: identity keys of small order, and rekeys
// whose co-signature does not come from the member's current key or from
// the key it had before a rekey it did not co-sign (protocol.md §2.3, §6.2).

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	var a *apiError
	if !errors.As(err, &a) || a.Status != status {
		t.Fatalf("%s: got %v, want status %d", what, err, status)
	}
}

// roleOf returns u's role as the server lists it ("" if not a member).
func roleOf(t *testing.T, d *device, conv protocol.ConversationID, u protocol.UserID) string {
	t.Helper()
	var info struct {
		Members []struct {
			User protocol.UserID `json:"user"`
			Role string          `json:"role"`
		} `json:"members"`
	}
	d.must("GET", "/api/conversations/"+conv.String(), nil, &info)
	for _, m := range info.Members {
		if m.User == u {
			return m.Role
		}
	}
	return ""
}

// postRekey posts a rekey by d announcing newID with role: signed by newID
// alone when cosigner is nil, else co-signed by it; tamper may alter the
// record after signing.
func postRekey(t *testing.T, d *device, conv protocol.ConversationID, newID, cosigner *secret.IdentityPrivateKey, role protocol.Role, tamper func(*protocol.Record) []byte) error {
	t.Helper()
	chain, err := d.fetchChain(conv)
	if err != nil {
		t.Fatal(err)
	}
	rec := &protocol.Record{Op: protocol.OpRekey, Conversation: conv, Seq: chain.Seq + 1, Prev: chain.Head, Time: d.e.clock.now.UnixMilli(), Author: d.user,
		Members: []protocol.Member{{User: d.user, Identity: newID.Public(), Role: role}}}
	if cosigner == nil {
		secret.SignRecord(newID, rec)
	} else {
		secret.SignRekey(newID, cosigner, rec)
	}
	enc := rec.Marshal()
	if tamper != nil {
		enc = tamper(rec)
	}
	return d.do("POST", "/api/conversations/"+conv.String()+"/members", map[string]string{"record": b64(enc)}, nil)
}

// TestServerForgedRekeyUndone: the server forges a rekey of a
// conversation's only admin (it resets the account's key to one of its own
// and posts the rekey with the account's session). The admin is demoted;
// the forged key cannot co-sign itself back to admin, nor can any key but
// the admin's earlier one; the real admin's rekey co-signed by that key is
// accepted and restores admin, after which it adds a member.
func TestServerForgedRekeyUndone(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		conv, err := alice.create([]*device{bob})
		if err != nil {
			t.Fatal(err)
		}
		genuine, forged := alice.id, secret.NewIdentity()
		alice.id = forged
		if err := alice.uploadBundle(true); err != nil {
			t.Fatal(err)
		}
		if err := postRekey(t, alice, conv, forged, nil, protocol.RoleMember, nil); err != nil {
			t.Fatalf("forged rekey: %v", err)
		}
		if r := roleOf(t, bob, conv, alice.user); r != "member" {
			t.Fatalf("after the forged rekey alice is %q", r)
		}
		wantStatus(t, "forged key co-signing itself to admin", postRekey(t, alice, conv, forged, forged, protocol.RoleAdmin, nil), http.StatusBadRequest)
		wantStatus(t, "forged key claiming admin alone", postRekey(t, alice, conv, forged, nil, protocol.RoleAdmin, nil), http.StatusBadRequest)

		// The real alice: her device puts her key back on the account,
		// then rekeys back, co-signed by it.
		alice.id = genuine
		if err := alice.uploadBundle(true); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "co-signed by another member", postRekey(t, alice, conv, genuine, bob.id, protocol.RoleAdmin, nil), http.StatusBadRequest)
		wantStatus(t, "co-signed by a stranger", postRekey(t, alice, conv, genuine, secret.NewIdentity(), protocol.RoleAdmin, nil), http.StatusBadRequest)
		highS := func(rec *protocol.Record) []byte {
			enc := rec.Marshal()
			for i := len(enc) - 96; i < len(enc)-64; i++ {
				enc[i] = 0xff // the co-signature's S
			}
			return enc
		}
		err = postRekey(t, alice, conv, genuine, genuine, protocol.RoleAdmin, highS)
		wantStatus(t, "co-signature with S >= L", err, http.StatusBadRequest)
		if !strings.Contains(err.Error(), "co-signature") {
			t.Fatalf("S >= L refused for another reason: %v", err)
		}
		if r := roleOf(t, bob, conv, alice.user); r != "member" {
			t.Fatalf("after the refused records alice is %q", r)
		}
		if err := postRekey(t, alice, conv, genuine, genuine, protocol.RoleAdmin, nil); err != nil {
			t.Fatalf("rekey back: %v", err)
		}
		if r := roleOf(t, bob, conv, alice.user); r != "admin" {
			t.Fatalf("after rekeying back alice is %q", r)
		}
		if err := alice.change(conv, protocol.OpAdd, []protocol.Member{carol.member(protocol.RoleMember)}, nil); err != nil {
			t.Fatalf("add after rekeying back: %v", err)
		}
		chain, err := bob.fetchChain(conv)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := chain.Member(carol.user); !ok {
			t.Fatal("carol is not a member")
		}
	})
}

// TestServerRefusesSmallOrderKeys: an account that uploads a bundle under
// the identity point, every pre-key "signed" with the signature that
// verifies for any message, is refused; so is a conversation whose genesis
// names that key for its creator with that signature.
func TestServerRefusesSmallOrderKeys(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		mallory, bob := e.register("mallory"), e.register("bob")
		var weak protocol.IdentityKey
		weak[0] = 1
		var universal [protocol.SignatureSize]byte
		universal[0] = 1
		genuine, _, err := secret.NewBundle(mallory.id, mallory.user, mallory.dev, 100, 1, e.clock.now.Unix())
		if err != nil {
			t.Fatal(err)
		}
		b := *genuine
		b.OneTime = []protocol.PreKey{genuine.OneTime[0]}
		b.Identity = weak
		b.Signed.Signature, b.LastResort.Signature, b.OneTime[0].Signature = universal, universal, universal
		err = mallory.do("POST", "/api/keys/prekey-bundle", map[string]any{"bundle": b64(b.Marshal()), "reset": true}, nil)
		wantStatus(t, "bundle under a small-order key", err, http.StatusBadRequest)

		g := &protocol.Record{Op: protocol.OpCreate, Conversation: protocol.NewConversationID(), Time: e.clock.now.UnixMilli(), Author: mallory.user,
			Members: []protocol.Member{{User: mallory.user, Identity: weak, Role: protocol.RoleAdmin}, bob.member(protocol.RoleMember)}, Signature: universal}
		session := []byte("no session")
		if chain, err := protocol.Genesis(g); err == nil {
			// Only where the genesis passes: a distribution under the
			// same universal signature. It is made under mallory's real
			// key (nothing else can seal), then named for the weak genesis.
			real := *g
			real.Members = []protocol.Member{mallory.member(protocol.RoleAdmin), bob.member(protocol.RoleMember)}
			secret.SignRecord(mallory.id, &real)
			realChain, err := protocol.Genesis(&real)
			if err != nil {
				t.Fatal(err)
			}
			mb, bb := *genuine, *bob.bundle
			mb.OneTime, bb.OneTime = nil, bb.OneTime[:1]
			d, _, err := secret.NewDistribution(mallory.id, secret.EpochRequest{Chain: realChain, Epoch: 1, Creator: mallory.ref(), Time: e.clock.now.UnixMilli(),
				Bundles: []*protocol.Bundle{&mb, &bb}})
			if err != nil {
				t.Logf("distribution: %v", err)
			} else {
				d.ChainHead, d.Signature = chain.Head, universal
				session = d.Marshal()
			}
		}
		err = mallory.do("POST", "/api/conversations", map[string]string{"genesis": b64(g.Marshal()), "session": b64(session)}, nil)
		wantStatus(t, "genesis under a small-order key", err, http.StatusBadRequest)
		if !strings.Contains(err.Error(), "genesis") {
			t.Fatalf("refused for another reason: %v", err)
		}
	})
}

//go:build !js

package client_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/store"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// appendRecord is the malicious server writing a record of its own making
// at the end of conv's chain, straight to its database; sign completes
// rec (seq, prev and time are set).
func appendRecord(t *testing.T, n *node, conv protocol.ConversationID, rec *protocol.Record, sign func(*protocol.Record)) {
	t.Helper()
	ctx := context.Background()
	rows, err := n.st.Records(ctx, conv, 0)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*protocol.Record
	for _, row := range rows {
		r, err := protocol.ParseRecord(row.Encoded)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	chain, err := protocol.VerifyChain(recs)
	if err != nil {
		t.Fatal(err)
	}
	rec.Conversation, rec.Seq, rec.Prev, rec.Time = conv, chain.Seq+1, chain.Head, time.Now().UnixMilli()
	sign(rec)
	next, err := chain.Apply(rec)
	if err != nil {
		t.Fatal(err)
	}
	var members []store.MemberRow
	for _, m := range next.Members() {
		members = append(members, store.MemberRow{User: m.User, Role: m.Role})
	}
	if err := n.st.ChangeMembership(ctx, store.MembershipChange{Conversation: conv, Record: store.RecordRow{Seq: rec.Seq, Encoded: rec.Marshal()},
		PrevSeq: chain.Seq, Head: next.Head, Members: members, Now: time.Now().UnixMilli()}); err != nil {
		t.Fatal(err)
	}
}

// TestCosignedRekeyOfVerifiedContact: bob verified alice; alice resets her
// identity on the device that holds her key, so her rekey is co-signed by
// the key bob verified. Bob's pin follows without blocking: alice stays
// verified, with a notice and the new safety number. A co-signed rekey
// whose cosigner is a key the server made (after a rekey it forged) moves
// nothing: sending stays blocked until bob decides.
func TestCosignedRekeyOfVerifiedContact(t *testing.T) {
	forEachDB(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		alice, bob := register(t, n, "alice"), register(t, n, "bob")
		conv, err := alice.CreateConversation(ctx, "", "bob")
		if err != nil {
			t.Fatal(err)
		}
		mustSend(t, alice, conv, "hi")
		syncTexts(t, bob)
		verify(t, bob, alice)
		before := safety(t, bob, "alice")

		if err := alice.ResetIdentity(ctx); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, bob); len(got) != 0 {
			t.Fatalf("bob read %q", got)
		}
		mustSend(t, bob, conv, "sending is not blocked")
		if got := syncTexts(t, alice); !slices.Equal(got, []string{"bob: sending is not blocked"}) {
			t.Fatalf("alice read %q", got)
		}
		mustSend(t, alice, conv, "with my new key")
		if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: with my new key"}) {
			t.Fatalf("bob read %q", got)
		}
		ct, err := bob.Contact(ctx, "alice")
		if err != nil || !ct.Verified || ct.Pending != nil || ct.PreviousKeys != 1 || ct.SafetyNumber == before || ct.SafetyNumber != safety(t, alice, "bob") {
			t.Fatalf("contact %+v %v (before %s)", ct, err, before)
		}
		notice := false
		for _, a := range alarmsOf(t, bob, conv, client.AlarmIdentityChanged) {
			notice = notice || strings.Contains(a.Detail, "co-signed") && strings.Contains(a.Detail, "stays verified")
		}
		if !notice {
			all, _ := bob.Alarms(conv)
			t.Fatalf("no notice of the co-signed change: %+v", all)
		}
		ws, err := bob.Warnings()
		if err != nil || !slices.ContainsFunc(ws, func(w client.Warning) bool { return w.Kind == client.WarnIdentityChanged && w.User == alice.UserID() }) {
			t.Fatalf("warnings %+v %v", ws, err)
		}

		// The server forges a rekey of alice to its key F, then a rekey to
		// N co-signed by F: neither is co-signed by the key bob holds.
		forged, next := secret.NewIdentity(), secret.NewIdentity()
		appendRecord(t, n, conv, &protocol.Record{Op: protocol.OpRekey, Author: alice.UserID(),
			Members: []protocol.Member{{User: alice.UserID(), Identity: forged.Public(), Role: protocol.RoleMember}}},
			func(r *protocol.Record) { secret.SignRecord(forged, r) })
		appendRecord(t, n, conv, &protocol.Record{Author: alice.UserID(),
			Members: []protocol.Member{{User: alice.UserID(), Identity: next.Public(), Role: protocol.RoleMember}}},
			func(r *protocol.Record) { secret.SignRekey(next, forged, r) })
		pinned := ct.SafetyNumber
		if _, err := bob.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		_, err = bob.Send(ctx, conv, "to the server?")
		wantNotAccepted(t, err, alice.UserID())
		if ct, err := bob.Contact(ctx, "alice"); err != nil || !ct.Verified || ct.SafetyNumber != pinned || ct.Pending == nil {
			t.Fatalf("contact after the forged rekeys %+v %v", ct, err)
		}
		if len(alarmsOf(t, bob, conv, client.AlarmIdentityBlocked)) == 0 {
			t.Fatal("no identity_blocked alarm")
		}
	})
}

// TestRekeyBackVouchesForNoForgedKey: the server forges a rekey of alice,
// a contact bob verified, to its key F; alice rekeys back, co-signed by
// her genuine key. The co-signed record replaces F in the chain, but F
// signed nothing for alice: it must not join bob's history of alice's
// keys (what F signs would then verify). Bob rejects F and goes on.
func TestRekeyBackVouchesForNoForgedKey(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	alice, bob := register(t, n, "alice"), register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	syncTexts(t, bob)
	verify(t, bob, alice)
	before := safety(t, bob, "alice")
	forgeRekey(t, n, conv, alice.UserID(), secret.NewIdentity())
	if _, err := bob.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := alice.RekeyBack(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bob.RejectIdentity("alice"); err != nil {
		t.Fatal(err)
	}
	ct, err := bob.Contact(ctx, "alice")
	if err != nil || ct.PreviousKeys != 0 || ct.SafetyNumber != before || !ct.Verified || ct.Pending != nil {
		t.Fatalf("contact %+v %v", ct, err)
	}
	mustSend(t, bob, conv, "back to normal")
	if got := syncTexts(t, alice); !slices.Equal(got, []string{"bob: back to normal"}) {
		t.Fatalf("alice read %q", got)
	}
}

// TestRekeyBackUnverifiedContact: the server forges a rekey of alice, a
// contact bob has not verified, so bob's pin follows it (§10.1 rule 3);
// alice rekeys back to her key. Bob's pin returns to her key, whether he
// saw the forged rekey before the rekey back or both at once, and the
// conversation works both ways.
func TestRekeyBackUnverifiedContact(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	for _, between := range []bool{true, false} {
		t.Run(map[bool]string{true: "synced between", false: "both at once"}[between], func(t *testing.T) {
			suffix := map[bool]string{true: "1", false: "2"}[between]
			alice, bob := register(t, n, "alice"+suffix), register(t, n, "bob"+suffix)
			conv, err := alice.CreateConversation(ctx, "", bob.Username())
			if err != nil {
				t.Fatal(err)
			}
			syncTexts(t, bob)
			before := safety(t, bob, alice.Username())
			forgeRekey(t, n, conv, alice.UserID(), secret.NewIdentity())
			if between {
				if _, err := bob.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if safety(t, bob, alice.Username()) == before {
					t.Fatal("the pin of an unverified contact did not follow the rekey")
				}
				// The contact says its key came through a rekey nobody
				// co-signed, in which conversation.
				if ct, err := bob.Contact(ctx, alice.Username()); err != nil || !slices.Equal(ct.Rekeyed, []protocol.ConversationID{conv}) {
					t.Fatalf("contact after the forged rekey %+v %v", ct, err)
				}
			}
			if err := alice.RekeyBack(ctx, nil); err != nil {
				t.Fatal(err)
			}
			mustSend(t, alice, conv, "it was not me")
			if got := syncTexts(t, bob); !slices.Equal(got, []string{alice.Username() + ": it was not me"}) {
				t.Fatalf("bob read %q", got)
			}
			if after := safety(t, bob, alice.Username()); after != before {
				t.Fatal("bob's pin did not return to alice's key")
			}
			if ct, err := bob.Contact(ctx, alice.Username()); err != nil || len(ct.Rekeyed) != 0 {
				t.Fatalf("contact after the rekey back %+v %v", ct, err)
			}
			mustSend(t, bob, conv, "welcome back")
			if got := syncTexts(t, alice); !slices.Equal(got, []string{bob.Username() + ": welcome back"}) {
				t.Fatalf("alice read %q", got)
			}
		})
	}
}

//go:build !js

package client

import (
	"encoding/json"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// FuzzParseHeldBlocks: the block statements a device keeps and a link
// brings (record blocks.v1, §16.2) are decoded strictly: every statement
// parses, is the account's and is kept under the account it is about;
// what parses encodes to bytes that parse to the same statements.
func FuzzParseHeldBlocks(f *testing.F) {
	user, other := protocol.UserID{1}, protocol.UserID{2}
	st := &protocol.Block{User: user, Other: other, Blocked: true, Time: 1_700_000_000_000}
	secret.SignBlock(secret.NewIdentity(), st)
	good, err := json.Marshal(map[protocol.UserID]*heldBlock{other: {Statement: st.Marshal(), Username: "bob"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"02000000000000000000000000000000":null}`))
	f.Add([]byte(`{"03000000000000000000000000000000":{"statement":""}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		held, err := parseHeldBlocks(in, user)
		if err != nil {
			return
		}
		for id, h := range held {
			if h.st == nil || h.st.User != user || h.st.Other != id {
				t.Fatalf("kept under %s: %+v", id, h.st)
			}
		}
		out, err := json.Marshal(held)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseHeldBlocks(out, user)
		if err != nil || len(again) != len(held) {
			t.Fatalf("an encoded set does not parse back: %v\n%s", err, out)
		}
		for id, h := range held {
			if a := again[id]; a == nil || string(a.Statement) != string(h.Statement) || a.Username != h.Username {
				t.Fatalf("round trip changed %s", id)
			}
		}
	})
}

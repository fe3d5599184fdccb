//go:build !js

package client

import (
	"bytes"
	"reflect"
	"testing"

	"sandi.dev/protocol"
)

// FuzzParseRequestState: the request state a link brings (§16.1) is
// decoded strictly: what parses encodes to bytes that parse to the same
// state, and encoding that again gives the same bytes; a state that
// parses has its lists in order, without repeats, zero ids or a
// conversation both accepted and a request.
func FuzzParseRequestState(f *testing.F) {
	u1, u2 := protocol.UserID{1}, protocol.UserID{2}
	c1, c2 := protocol.ConversationID{1}, protocol.ConversationID{2}
	for _, rs := range []requestState{
		{},
		{Known: []protocol.UserID{u2, u1}, Accepted: []protocol.ConversationID{c1}, Requests: []protocol.ConversationID{c2}},
	} {
		b, err := rs.marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"known":[],"accepted":["01000000000000000000000000000000"],"requests":["01000000000000000000000000000000"]}`))
	f.Add([]byte(`{"version":2,"known":[],"accepted":[],"requests":[]}`))
	f.Add([]byte(`{"version":1,"known":[],"accepted":[],"requests":[]} {}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		rs, err := parseRequestState(in)
		if err != nil {
			return
		}
		for _, id := range rs.Accepted {
			if request, decided := rs.decided(id); !decided || request {
				t.Fatalf("accepted %s decided %v, request %v", id, decided, request)
			}
		}
		out, err := rs.marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseRequestState(out)
		if err != nil {
			t.Fatalf("an encoded state does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normal(again), normal(rs)) {
			t.Fatalf("round trip changed the state: %+v, then %+v", rs, again)
		}
		if out2, err := again.marshal(); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not stable: %s, then %s (%v)", out, out2, err)
		}
	})
}

// normal replaces nil lists with empty ones.
func normal(rs *requestState) requestState {
	out := *rs
	if out.Known == nil {
		out.Known = []protocol.UserID{}
	}
	if out.Accepted == nil {
		out.Accepted = []protocol.ConversationID{}
	}
	if out.Requests == nil {
		out.Requests = []protocol.ConversationID{}
	}
	return out
}

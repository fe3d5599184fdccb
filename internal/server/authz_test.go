package server_test

import (
	"errors"
	"fmt"
	"testing"

	"sandi.dev/internal/server"
	"sandi.dev/protocol"
)

// authzCase builds a request for one route against the fixture.
type authzCase func(f *authzFixture) (path string, body any)

type authzFixture struct {
	conv                                    protocol.ConversationID
	member, nonMember, removed, otherDevice *device
	// keyless signed in to member's account with the password only.
	keyless *device
}

// authzTable has an entry for every route of the server. A route that is
// added without an entry here fails TestAuthorization.
var authzTable = map[string]authzCase{
	"POST /api/auth/register":    func(f *authzFixture) (string, any) { return "/api/auth/register", map[string]string{} },
	"POST /api/auth/login":       func(f *authzFixture) (string, any) { return "/api/auth/login", map[string]string{} },
	"POST /api/auth/logout":      nil, // run last, separately: it revokes the token
	"GET /api/me":                func(f *authzFixture) (string, any) { return "/api/me", nil },
	"POST /api/devices/link":     func(f *authzFixture) (string, any) { return "/api/devices/link", map[string]string{} },
	"GET /api/devices/link":      func(f *authzFixture) (string, any) { return "/api/devices/link", nil },
	"GET /api/devices/link/self": func(f *authzFixture) (string, any) { return "/api/devices/link/self", nil },
	"POST /api/devices/link/{device}": func(f *authzFixture) (string, any) {
		return "/api/devices/link/" + f.member.dev.String(), map[string]string{}
	},
	"POST /api/devices/list": func(f *authzFixture) (string, any) { return "/api/devices/list", map[string]string{} },
	"DELETE /api/devices/{device}": func(f *authzFixture) (string, any) {
		return "/api/devices/" + f.otherDevice.dev.String(), map[string]string{}
	},
	"PUT /api/devices/{device}/name": func(f *authzFixture) (string, any) {
		return "/api/devices/" + f.otherDevice.dev.String() + "/name", map[string]string{}
	},
	"GET /api/sessions": func(f *authzFixture) (string, any) { return "/api/sessions", nil },
	"DELETE /api/sessions/{device}": func(f *authzFixture) (string, any) {
		return "/api/sessions/" + f.keyless.dev.String(), nil
	},
	"POST /api/auth/password": func(f *authzFixture) (string, any) { return "/api/auth/password", map[string]string{} },
	"GET /api/users/{user}/device-list": func(f *authzFixture) (string, any) {
		return "/api/users/" + f.member.user.String() + "/device-list", nil
	},
	"POST /api/keys/prekey-bundle": func(f *authzFixture) (string, any) { return "/api/keys/prekey-bundle", map[string]string{} },
	"POST /api/keys/one-time":      func(f *authzFixture) (string, any) { return "/api/keys/one-time", map[string]string{} },
	"GET /api/keys/count":          func(f *authzFixture) (string, any) { return "/api/keys/count", nil },
	"POST /api/keys/claim":         func(f *authzFixture) (string, any) { return "/api/keys/claim", map[string]any{"users": []string{}} },
	"GET /api/users":               func(f *authzFixture) (string, any) { return "/api/users?username=member", nil },
	"GET /api/users/{user}":        func(f *authzFixture) (string, any) { return "/api/users/" + f.member.user.String(), nil },
	// The block routes name the caller's account only: TestBlocks checks
	// that one account's list is not another's.
	"POST /api/blocks": func(f *authzFixture) (string, any) {
		return "/api/blocks", map[string]string{"user": f.nonMember.user.String()}
	},
	"GET /api/blocks": func(f *authzFixture) (string, any) { return "/api/blocks", nil },
	"DELETE /api/blocks/{user}": func(f *authzFixture) (string, any) {
		return "/api/blocks/" + f.nonMember.user.String(), nil
	},
	"POST /api/conversations":     func(f *authzFixture) (string, any) { return "/api/conversations", map[string]string{} },
	"GET /api/conversations":      func(f *authzFixture) (string, any) { return "/api/conversations", nil },
	"GET /api/conversations/{id}": func(f *authzFixture) (string, any) { return "/api/conversations/" + f.conv.String(), nil },
	"GET /api/conversations/{id}/records": func(f *authzFixture) (string, any) {
		return "/api/conversations/" + f.conv.String() + "/records", nil
	},
	"POST /api/conversations/{id}/members": func(f *authzFixture) (string, any) {
		return "/api/conversations/" + f.conv.String() + "/members", map[string]string{}
	},
	"DELETE /api/conversations/{id}/members/{user}": func(f *authzFixture) (string, any) {
		return "/api/conversations/" + f.conv.String() + "/members/" + f.member.user.String(), map[string]string{}
	},
	"POST /api/conversations/{id}/sessions": func(f *authzFixture) (string, any) {
		return "/api/conversations/" + f.conv.String() + "/sessions", map[string]string{}
	},
	"PUT /api/conversations/{id}/state": func(f *authzFixture) (string, any) {
		return "/api/conversations/" + f.conv.String() + "/state", map[string]string{}
	},
	"POST /api/conversations/{id}/typing": func(f *authzFixture) (string, any) {
		return "/api/conversations/" + f.conv.String() + "/typing", map[string]string{}
	},
	"GET /api/conversations/{id}/sessions/{epoch}/initial-session": func(f *authzFixture) (string, any) {
		return fmt.Sprintf("/api/conversations/%s/sessions/1/initial-session", f.conv), nil
	},
	"POST /api/conversations/{id}/messages": func(f *authzFixture) (string, any) {
		return "/api/conversations/" + f.conv.String() + "/messages", map[string]string{}
	},
	"GET /api/conversations/{id}/messages": func(f *authzFixture) (string, any) {
		return "/api/conversations/" + f.conv.String() + "/messages", nil
	},
	"POST /api/conversations/{id}/blobs": func(f *authzFixture) (string, any) {
		return "/api/conversations/" + f.conv.String() + "/blobs", map[string]any{}
	},
	// The blob routes name a blob, not a conversation: TestBlobAuthorization
	// checks who may use one.
	"PUT /api/blobs/{blob}/parts/{n}": func(f *authzFixture) (string, any) { return "/api/blobs/" + someBlob + "/parts/0", []byte("x") },
	"GET /api/blobs/{blob}/upload":    func(f *authzFixture) (string, any) { return "/api/blobs/" + someBlob + "/upload", nil },
	"POST /api/blobs/{blob}/complete": func(f *authzFixture) (string, any) { return "/api/blobs/" + someBlob + "/complete", nil },
	"GET /api/blobs/{blob}":           func(f *authzFixture) (string, any) { return "/api/blobs/" + someBlob, nil },
	"DELETE /api/blobs/{blob}":        func(f *authzFixture) (string, any) { return "/api/blobs/" + someBlob, nil },
	// The archive routes name the caller's account only: TestArchives.
	"PUT /api/archives/{kind}":       func(f *authzFixture) (string, any) { return "/api/archives/backup", []byte("x") },
	"GET /api/archives":              func(f *authzFixture) (string, any) { return "/api/archives", nil },
	"GET /api/archives/{archive}":    func(f *authzFixture) (string, any) { return "/api/archives/" + someBlob, nil },
	"DELETE /api/archives/{archive}": func(f *authzFixture) (string, any) { return "/api/archives/" + someBlob, nil },
	"GET /api/sync":                  func(f *authzFixture) (string, any) { return "/api/sync", nil },
	"GET /api/ws":                    nil, // a WebSocket handshake; covered by the WebSocket tests
}

// TestAuthorization runs every route as a member, a non-member, a removed
// member, another account's device, a device of the member's account
// that signed in with the password but holds no keys, and anonymously.
func TestAuthorization(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		member, nonMember, removed := e.register("member"), e.register("outsider"), e.register("removed")
		other := e.register("other") // another account, with its own conversation
		conv, err := member.create([]*device{removed})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.create([]*device{nonMember}); err != nil {
			t.Fatal(err)
		}
		if err := member.change(conv, protocol.OpRemove, nil, []protocol.UserID{removed.user}); err != nil {
			t.Fatal(err)
		}
		f := &authzFixture{conv: conv, member: member, nonMember: nonMember, removed: removed, otherDevice: other}
		f.keyless = e.login("member", nil)

		for _, rt := range e.srv.Routes() {
			key := rt.Method + " " + rt.Pattern
			build, ok := authzTable[key]
			if !ok {
				t.Errorf("route %s has no entry in authzTable", key)
				continue
			}
			if build == nil {
				continue
			}
			path, body := build(f)
			t.Run(key, func(t *testing.T) {
				// Anonymous: refused unless the route is public.
				err := e.do("", rt.Method, path, body, nil)
				if rt.Access != server.Public {
					wantCode(t, err, 401, server.CodeUnauthenticated)
				}
				// A device without keys: refused alike on every route
				// but those of signing in, linking and its own session,
				// whatever the route names (so it learns nothing).
				if rt.Access != server.Public {
					err := f.keyless.do(rt.Method, path, body, nil)
					var a *apiError
					if rt.Access != server.AnyDevice {
						wantCode(t, err, 403, server.CodeKeysRequired)
					} else if errors.As(err, &a) && (a.Status == 401 || a.Code == server.CodeKeysRequired) {
						t.Fatalf("a device without keys refused on %s: %v", key, err)
					}
				}
				if rt.Access != server.Member && rt.Access != server.FormerMember {
					return
				}
				// The member passes the authorization check (its request
				// may still be malformed: any answer but 401/404 is a pass).
				if err := member.do(rt.Method, path, body, nil); err != nil {
					var a *apiError
					if !errors.As(err, &a) || a.Status == 401 || a.Status == 404 && a.Code == server.CodeNotFound && rt.Method != "GET" {
						t.Fatalf("member refused: %v", err)
					}
				}
				outsiders := []*device{nonMember, removed, other}
				if rt.Access == server.FormerMember {
					// A removed member keeps what it saw as a member.
					if err := removed.do(rt.Method, path, body, nil); err != nil {
						t.Fatalf("removed member refused its own past: %v", err)
					}
					outsiders = outsiders[:1:1]
					outsiders = append(outsiders, other)
				}
				for _, d := range outsiders {
					wantCode(t, d.do(rt.Method, path, body, nil), 404, server.CodeNotFound)
				}
			})
		}
		// The removed member's view of the chain ends with its removal.
		var ra struct {
			Records []string `json:"records"`
		}
		if err := member.change(conv, protocol.OpAdd, []protocol.Member{nonMember.member(protocol.RoleMember)}, nil); err != nil {
			t.Fatal(err)
		}
		removed.must("GET", "/api/conversations/"+conv.String()+"/records", nil, &ra)
		if len(ra.Records) != 2 {
			t.Fatalf("removed member sees %d records, want 2 (genesis, its removal)", len(ra.Records))
		}
		// Logout revokes exactly the caller's token.
		wantCode(t, e.do("", "POST", "/api/auth/logout", nil, nil), 401, server.CodeUnauthenticated)
		nonMember.must("POST", "/api/auth/logout", nil, nil)
		f.keyless.must("POST", "/api/auth/logout", nil, nil)
		wantCode(t, f.keyless.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		wantCode(t, nonMember.do("GET", "/api/me", nil, nil), 401, server.CodeUnauthenticated)
		member.must("GET", "/api/me", nil, nil)
	})
}

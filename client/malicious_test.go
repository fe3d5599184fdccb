//go:build !js

package client_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"sandi.dev/client"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// The malicious-server harness: a proxy in front of a real server rewrites
// answers, or the test edits the server's database directly. The clients
// must refuse, report ErrServerMisbehaved, and wrap nothing for an
// injected party.

// proxy forwards to a node and lets a test rewrite JSON answers.
type proxy struct {
	mu      sync.Mutex
	rewrite func(r *http.Request, body map[string]any) // may edit body
	// lose: the server handled the request, but its answer is lost (the
	// connection drops before any byte of it).
	lose func(r *http.Request) bool
	srv  *httptest.Server
}

var errAnswerLost = errors.New("answer lost")

func newProxy(t *testing.T, n *node) *proxy {
	target, err := url.Parse(n.url())
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(err, errAnswerLost) {
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(http.StatusBadGateway)
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		rw, lose := p.rewrite, p.lose
		p.mu.Unlock()
		if lose != nil && lose(resp.Request) {
			resp.Body.Close()
			return errAnswerLost
		}
		if rw == nil || resp.StatusCode >= 300 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			return nil
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var body map[string]any
		if err := json.Unmarshal(data, &body); err == nil {
			rw(resp.Request, body)
			if data, err = json.Marshal(body); err != nil {
				return err
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(data))
		resp.ContentLength = int64(len(data))
		resp.Header.Del("Content-Length")
		return nil
	}
	p.srv = httptest.NewServer(rp)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *proxy) set(f func(r *http.Request, body map[string]any)) {
	p.mu.Lock()
	p.rewrite = f
	p.mu.Unlock()
}

// setLose makes the proxy lose the answers to the requests f picks (nil:
// none).
func (p *proxy) setLose(f func(r *http.Request) bool) {
	p.mu.Lock()
	p.lose = f
	p.mu.Unlock()
}

// clientVia opens a client that talks to the server through p.
// registerVia registers name, with the password "password of NAME" as
// register gives, on a client that talks to the server through p.
// opts may change the client's options.
func registerVia(t *testing.T, p *proxy, name string, opts ...func(*client.Options)) *client.Client {
	t.Helper()
	c := clientVia(t, p, opts...)
	if err := c.Register(context.Background(), name, "password of "+name); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return c
}

func clientVia(t *testing.T, p *proxy, opts ...func(*client.Options)) *client.Client {
	st, err := client.NewDirStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := client.Options{Server: p.srv.URL, Storage: st, OneTimeBatch: 5}
	for _, f := range opts {
		f(&o)
	}
	c, err := client.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64u(t *testing.T, v any) []byte {
	s, _ := v.(string)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantMisbehaved(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, client.ErrServerMisbehaved) {
		t.Fatalf("got %v, want ErrServerMisbehaved", err)
	}
}

func listCount(t *testing.T, c *client.Client) int {
	convs, err := c.Conversations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(convs)
}

func TestMaliciousServer(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})

	// A device for bob that bob never had: its pre-keys are signed by an
	// identity the server made. Alice must wrap nothing for it.
	t.Run("injected device", func(t *testing.T) {
		p := newProxy(t, n)
		alice := clientVia(t, p)
		if err := alice.Register(ctx, "alice1", "password alice"); err != nil {
			t.Fatal(err)
		}
		bob := register(t, n, "bob1")
		fake := secret.NewIdentity()
		ghost, _, err := secret.NewBundle(fake, bob.UserID(), protocol.NewDeviceID(), 1, 1, 1_780_000_000)
		if err != nil {
			t.Fatal(err)
		}
		ghost.OneTime = ghost.OneTime[:1]
		p.set(func(r *http.Request, body map[string]any) {
			if r.URL.Path == "/api/keys/claim" {
				bs := body["bundles"].([]any)
				body["bundles"] = append(bs, map[string]any{"user": bob.UserID().String(), "device": ghost.Device.String(), "bundle": b64u(ghost.Marshal()), "oneTime": true})
			}
		})
		_, err = alice.CreateConversation(ctx, "", "bob1")
		wantMisbehaved(t, err)
		p.set(nil)
		if listCount(t, alice) != 0 {
			t.Fatal("a conversation was created despite the injected device")
		}
	})

	// A device's pre-key swapped for one of the server's: the signature no
	// longer verifies.
	t.Run("swapped pre-key", func(t *testing.T) {
		p := newProxy(t, n)
		alice := clientVia(t, p)
		if err := alice.Register(ctx, "alice2", "password alice"); err != nil {
			t.Fatal(err)
		}
		bob := register(t, n, "bob2")
		p.set(func(r *http.Request, body map[string]any) {
			if r.URL.Path != "/api/keys/claim" {
				return
			}
			for _, x := range body["bundles"].([]any) {
				e := x.(map[string]any)
				if e["user"] != bob.UserID().String() {
					continue
				}
				b, err := protocol.ParseBundle(unb64u(t, e["bundle"]))
				if err != nil {
					t.Error(err)
					return
				}
				b.Signed.Public = secret.NewKEMKey().Public()
				b.OneTime = nil
				e["bundle"] = b64u(b.Marshal())
			}
		})
		_, err := alice.CreateConversation(ctx, "", "bob2")
		wantMisbehaved(t, err)
		p.set(nil)
		if listCount(t, alice) != 0 {
			t.Fatal("a conversation was created with a swapped pre-key")
		}
	})

	// A member added by a record the server forged: bob's client refuses
	// the chain, and sends nothing that mallory could read.
	t.Run("forged member", func(t *testing.T) {
		p := newProxy(t, n)
		alice := register(t, n, "alice3")
		bob := clientVia(t, p)
		if err := bob.Register(ctx, "bob3", "password bob"); err != nil {
			t.Fatal(err)
		}
		mallory := register(t, n, "mallory3")
		conv, err := alice.CreateConversation(ctx, "", "bob3")
		if err != nil {
			t.Fatal(err)
		}
		mk, _ := mallory.IdentityKey()
		forgedBy := secret.NewIdentity() // the server's own key, posing as alice's
		p.set(func(r *http.Request, body map[string]any) {
			if !strings.HasSuffix(r.URL.Path, "/records") {
				return
			}
			recs := body["records"].([]any)
			last, err := protocol.ParseRecord(unb64u(t, recs[len(recs)-1]))
			if err != nil {
				t.Error(err)
				return
			}
			add := &protocol.Record{Op: protocol.OpAdd, Conversation: conv, Seq: last.Seq + 1, Prev: last.Hash(), Author: alice.UserID(),
				Members: []protocol.Member{{User: mallory.UserID(), Identity: mk, Role: protocol.RoleMember}}}
			secret.SignRecord(forgedBy, add)
			body["records"] = append(recs, b64u(add.Marshal()))
		})
		_, err = bob.Send(ctx, conv, "for members only")
		wantMisbehaved(t, err)
		p.set(nil)
		if got := syncTexts(t, mallory); len(got) != 0 {
			t.Fatalf("mallory read %q", got)
		}
	})

	// The membership chain rolled back in the database: a client that held
	// the newer chain refuses.
	t.Run("rolled-back chain", func(t *testing.T) {
		alice, bob := register(t, n, "alice4"), register(t, n, "bob4")
		register(t, n, "carol4")
		conv, err := alice.CreateConversation(ctx, "", "bob4", "carol4")
		if err != nil {
			t.Fatal(err)
		}
		if err := alice.RemoveMembers(ctx, conv, "carol4"); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, conv, "carol is out"); err != nil {
			t.Fatal(err)
		}
		// The server forgets carol's removal.
		db, err := sql.Open("sqlite", n.db)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var genesis []byte
		if err := db.QueryRow(`SELECT encoded FROM records WHERE conversation_id = ? AND seq = 0`, conv[:]).Scan(&genesis); err != nil {
			t.Fatal(err)
		}
		g, err := protocol.ParseRecord(genesis)
		if err != nil {
			t.Fatal(err)
		}
		h := g.Hash()
		for _, q := range []string{`DELETE FROM records WHERE conversation_id = ? AND seq = 1`} {
			if _, err := db.Exec(q, conv[:]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec(`UPDATE conversations SET chain_seq = 0, chain_head = ? WHERE id = ?`, h[:], conv[:]); err != nil {
			t.Fatal(err)
		}
		_, err = bob.Send(ctx, conv, "after the rollback")
		wantMisbehaved(t, err)
	})

	// A wrapped key replayed from another conversation or another epoch.
	t.Run("replayed wrapped key", func(t *testing.T) {
		p := newProxy(t, n)
		alice := register(t, n, "alice5")
		bob := clientVia(t, p)
		if err := bob.Register(ctx, "bob5", "password bob"); err != nil {
			t.Fatal(err)
		}
		convA, err := alice.CreateConversation(ctx, "", "bob5")
		if err != nil {
			t.Fatal(err)
		}
		convB, err := alice.CreateConversation(ctx, "", "bob5")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Send(ctx, convA, "in A"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Send(ctx, convB, "in B"); err != nil {
			t.Fatal(err)
		}
		var saved map[string]any
		p.set(func(r *http.Request, body map[string]any) {
			if strings.Contains(r.URL.Path, convA.String()) && strings.HasSuffix(r.URL.Path, "/initial-session") {
				saved = body
			}
			if strings.Contains(r.URL.Path, convB.String()) && strings.HasSuffix(r.URL.Path, "/initial-session") && saved != nil {
				for k, v := range saved {
					body[k] = v
				}
				body["conversation"] = convB.String()
			}
		})
		res, err := bob.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) != 1 || res.Messages[0].Text != "in A" {
			t.Fatalf("bob read %+v", res.Messages)
		}
		if len(res.Failures) != 1 || res.Failures[0].Reason != "server_misbehaved" || res.Failures[0].Conversation != convB {
			t.Fatalf("failures %+v", res.Failures)
		}
	})

	// Two members shown different member lists: the server hides carol's
	// addition from bob. Bob refuses the epoch made for the list he was not
	// shown rather than trust it, and says so.
	t.Run("different member lists", func(t *testing.T) {
		p := newProxy(t, n)
		alice, carol := register(t, n, "alice6"), register(t, n, "carol6")
		bob := clientVia(t, p)
		if err := bob.Register(ctx, "bob6", "password bob"); err != nil {
			t.Fatal(err)
		}
		conv, err := alice.CreateConversation(ctx, "", "bob6")
		if err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, bob); len(got) != 0 {
			t.Fatal(got)
		}
		if err := alice.AddMembers(ctx, conv, "carol6"); err != nil {
			t.Fatal(err)
		}
		p.set(func(r *http.Request, body map[string]any) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/records"):
				recs := body["records"].([]any)
				var keep []any
				for _, x := range recs {
					if rec, err := protocol.ParseRecord(unb64u(t, x)); err == nil && rec.Seq == 0 {
						keep = append(keep, x)
					}
				}
				body["records"] = keep
			case r.URL.Path == "/api/conversations/"+conv.String():
				body["chainSeq"] = 0
			}
		})
		if _, err := alice.Send(ctx, conv, "hello bob and carol"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, carol); len(got) != 1 {
			t.Fatalf("carol read %q", got)
		}
		res, err := bob.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) != 0 || len(res.Failures) != 1 || res.Failures[0].Reason != "server_misbehaved" {
			t.Fatalf("bob: messages %+v failures %+v", res.Messages, res.Failures)
		}
		_ = carol
	})
}

// A sync answer that says more events follow but does not advance the
// cursor would have the device ask for the same page for ever; it is
// refused, with an alarm.
func TestSyncMoreWithoutProgress(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	p := newProxy(t, n)
	alice := clientVia(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := alice.Register(ctx, "alice", "password alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	p.set(func(r *http.Request, body map[string]any) {
		if r.URL.Path == "/api/sync" {
			body["more"] = true
		}
	})
	_, err := alice.Sync(ctx)
	wantMisbehaved(t, err)
	as, err := alice.Alarms(protocol.ConversationID{})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].Kind != client.AlarmServerData {
		t.Fatalf("alarms %+v, want one server_data", as)
	}
}

//go:build !js

package client_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// failSessions fails requests for initial sessions while armed, as a
// dropped connection would.
type failSessions struct {
	base  http.RoundTripper
	armed atomic.Bool
}

func (f *failSessions) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.armed.Load() && strings.HasSuffix(r.URL.Path, "/initial-session") {
		return nil, errors.New("connection reset")
	}
	return f.base.RoundTrip(r)
}

// TestUnreachableIsNotADecryptFailure: a message whose epoch cannot be
// fetched because the server is unreachable is not a decrypt failure; the
// sync stops before it and the next one decrypts it.
func TestUnreachableIsNotADecryptFailure(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	ctx := context.Background()
	tr := &failSessions{base: http.DefaultTransport}
	bob := registerWith(t, n, "bob", tr, "")
	alice := register(t, n, "alice")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, conv, "hello"); err != nil {
		t.Fatal(err)
	}
	tr.armed.Store(true)
	res, err := bob.Sync(ctx)
	if err == nil || len(res.Failures) != 0 || len(res.Messages) != 0 {
		t.Fatalf("sync with the server unreachable: %+v, %v", res, err)
	}
	tr.armed.Store(false)
	if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: hello"}) {
		t.Fatalf("bob read %q", got)
	}
	if s := bob.Stats(); len(s.DecryptFailed) != 0 {
		t.Fatalf("counted as decrypt failures: %v", s.DecryptFailed)
	}
}

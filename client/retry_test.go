//go:build !js

package client_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"

	"sandi.dev/client"
)

// loseAnswers passes requests to the server but, while armed, loses the
// answers to message posts: the client cannot know whether they were
// stored.
type loseAnswers struct {
	base  http.RoundTripper
	armed atomic.Bool
}

func (l *loseAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(r)
	if err == nil && l.armed.Load() && r.Method == "POST" && len(r.URL.Path) > 9 && r.URL.Path[len(r.URL.Path)-9:] == "/messages" {
		resp.Body.Close()
		return nil, errors.New("connection lost after the request was sent")
	}
	return resp, err
}

// TestRetryStoresOnce: a send whose answer is lost is retried with the
// same client message id; the message is stored, and read, exactly once.
func TestRetryStoresOnce(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	ctx := context.Background()
	tr := &loseAnswers{base: http.DefaultTransport}
	alice := registerWith(t, n, "alice", tr, "")
	bob := register(t, n, "bob")
	conv, err := alice.CreateConversation(ctx, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	id := client.NewClientID()
	tr.armed.Store(true)
	if _, err := alice.SendWithID(ctx, conv, id, "only once"); err == nil {
		t.Fatal("the send succeeded although every answer was lost")
	}
	tr.armed.Store(false)
	m, err := alice.SendWithID(ctx, conv, id, "only once")
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 1 {
		t.Fatalf("the retry got seq %d, want the first attempt's 1", m.Seq)
	}
	if _, err := alice.Send(ctx, conv, "next"); err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, bob); !slices.Equal(got, []string{"alice: only once", "alice: next"}) {
		t.Fatalf("bob read %q", got)
	}
	h, err := alice.History(conv)
	if err != nil || len(h) != 2 {
		t.Fatalf("alice's history %+v %v", h, err)
	}
	if _, err := alice.SendWithID(ctx, conv, "x", "bad id"); err == nil {
		t.Fatal("a short client id was accepted")
	}
}

//go:build !js

package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/protocol"
)

// signedPreKeys lists the signed pre-keys a device stores: id -> retired.
func signedPreKeys(t *testing.T, st *client.MemStorage) map[string]int64 {
	keys, err := st.List("prekey/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, k := range keys {
		b, err := st.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Kind    protocol.PreKeyKind `json:"kind"`
			Retired int64               `json:"retired"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == protocol.SignedPreKey {
			out[strings.TrimPrefix(k, "prekey/")] = e.Retired
		}
	}
	return out
}

// TestSignedPreKeyRotation: the signed pre-key is replaced after 7 days,
// the replaced private half is kept for the 30-day grace period and then
// forgotten, and the device stays reachable throughout, also once its
// one-time keys have run out.
func TestSignedPreKeyRotation(t *testing.T) {
	n := startNode(t, t.TempDir()+"/sandi.db", serverConfig())
	ctx := context.Background()
	now := time.Now()
	st := client.NewMemStorage()
	alice, err := client.Open(client.Options{Server: n.url(), Storage: st, OneTimeBatch: 1, Now: func() time.Time { return now },
		HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Register(ctx, "alice", "password of alice"); err != nil {
		t.Fatal(err)
	}
	first := signedPreKeys(t, st)
	if len(first) != 1 {
		t.Fatalf("signed pre-keys after register: %v", first)
	}
	bob := register(t, n, "bob")

	now = now.Add(8 * 24 * time.Hour)
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	second := signedPreKeys(t, st)
	if len(second) != 2 {
		t.Fatalf("signed pre-keys 8 days later: %v", second)
	}
	for id := range first {
		if second[id] == 0 {
			t.Fatalf("the replaced signed pre-key %s is not marked retired: %v", id, second)
		}
	}
	// Two conversations: the first uses alice's one-time key, the second
	// (none left) her new signed pre-key.
	for i := range 2 {
		conv, err := bob.CreateConversation(ctx, "", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, conv, "hello"); err != nil {
			t.Fatal(err)
		}
		if got := syncTexts(t, alice); !slices.Equal(got, []string{"bob: hello"}) {
			t.Fatalf("conversation %d: alice read %q", i, got)
		}
	}

	now = now.Add(31 * 24 * time.Hour)
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	third := signedPreKeys(t, st)
	for id := range first {
		if _, kept := third[id]; kept {
			t.Fatalf("the signed pre-key %s replaced 31 days ago is still kept: %v", id, third)
		}
	}
	if len(third) != 2 { // the one from day 8 (retired at day 39) and today's
		t.Fatalf("signed pre-keys at day 39: %v", third)
	}
}

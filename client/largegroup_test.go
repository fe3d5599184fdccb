//go:build !js

package client_test

import (
	"context"
	"fmt"
	"testing"

	"sandi.dev/client"
	"sandi.dev/internal/server"
)

// A conversation with more members than one claim may name (200) is
// created in one go: the client claims its members' bundles in parts, and
// the last member reads the first message.
func TestLargeConversation(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, t.TempDir()+"/sandi.db", server.Config{})
	open := func(name string) *client.Client {
		c, err := client.Open(client.Options{Server: n.url(), Storage: client.NewMemStorage(), OneTimeBatch: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Register(ctx, name, "password of "+name); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		return c
	}
	admin := open("admin")
	var names []string
	var last *client.Client
	for i := range 205 {
		name := fmt.Sprintf("member%03d", i)
		last = open(name)
		names = append(names, name)
	}
	conv, err := admin.CreateConversation(ctx, "", names...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Send(ctx, conv, "hello, all 206 of us"); err != nil {
		t.Fatal(err)
	}
	if got := syncTexts(t, last); len(got) != 1 || got[0] != "admin: hello, all 206 of us" {
		t.Fatalf("the last member read %q", got)
	}
}

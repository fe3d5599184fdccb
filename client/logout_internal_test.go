package client

import (
	"errors"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// failDelete is a storage whose Delete of one key fails.
type failDelete struct {
	Storage
	key string
}

func (f failDelete) Delete(k string) error {
	if k == f.key {
		return errors.New("disk failure")
	}
	return f.Storage.Delete(k)
}

// TestLogoutInterrupted: a logout whose erasure stops half-way leaves a
// device that is logged out (it names no account), and the next Open
// finishes the erasure; the alarm log and the server URL stay.
func TestLogoutInterrupted(t *testing.T) {
	mem := NewMemStorage()
	c, err := Open(Options{Server: "http://127.0.0.1:1", Storage: mem})
	if err != nil {
		t.Fatal(err)
	}
	c.acct = account{Server: "http://127.0.0.1:1", Username: "alice", User: protocol.NewUserID(), Device: protocol.NewDeviceID(), Token: "t"}
	if err := c.saveAccount(); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string][]byte{"identity": secret.NewIdentity().Seed(), "conv/x": []byte("{}"), "prekey/1": []byte("{}"), "alarms": []byte("{}\n")} {
		if err := mem.Put(k, v); err != nil {
			t.Fatal(err)
		}
	}
	c.st = failDelete{Storage: mem, key: "identity"}
	if err := c.forgetDevice(); err == nil {
		t.Fatal("the erasure did not fail")
	}
	again, err := Open(Options{Storage: mem})
	if err != nil {
		t.Fatal(err)
	}
	if again.Username() != "" || again.id != nil || again.Server() != "http://127.0.0.1:1" {
		t.Fatalf("after an interrupted logout: user %q, identity %v, server %q", again.Username(), again.id != nil, again.Server())
	}
	keys, err := mem.List("")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != "account" || keys[1] != "alarms" {
		t.Fatalf("left after the logout: %q", keys)
	}
}
